// Starts and stops the embedded FerretDB (tools/setup/devdb, built by tools/setup/setup.sh) from Node.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT } from "../root.js";

export const BIN = join(ROOT, ".cache", "bin");

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

export interface DevDb {
  /** mongodb://127.0.0.1:PORT (add a database name). */
  uri: string;
  port: number;
  dir: string;
  /** (Re)starts the server on the same port and data dir. */
  start(): Promise<void>;
  /** Stops it (SIGTERM) and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * The hash of devdb's source that tools/setup/setup.sh writes next to the binary when it builds it (devdb.stamp):
 * go.mod, go.sum, then the .go files in name order. The services rely on devdb's behaviour (e.g. atomic
 * single-document writes), so a binary older than its source must not run the tests.
 */
export function devDbSourceStamp(): string {
  const dir = join(ROOT, "tools", "setup", "devdb");
  const files = [
    "go.mod",
    "go.sum",
    ...readdirSync(dir)
      .filter((f) => f.endsWith(".go"))
      .sort(),
  ];
  const h = createHash("sha256");
  for (const f of files) h.update(readFileSync(join(dir, f)));
  return h.digest("hex").slice(0, 16);
}

/** Starts devdb on `port` (free one by default) with its SQLite files in `dir`; resolves once it accepts connections. */
export async function startDevDb(opts: { dir: string; port?: number; log?: (line: string) => void }): Promise<DevDb> {
  const bin = join(BIN, "devdb");
  if (!existsSync(bin)) throw new Error(`devdb is not built: run tools/setup/setup.sh (or npm run setup) first (${bin})`);
  const stampFile = join(BIN, "devdb.stamp");
  const built = existsSync(stampFile) ? readFileSync(stampFile, "utf8").trim() : "";
  if (built !== devDbSourceStamp())
    throw new Error(`devdb is older than its source (tools/setup/devdb changed since it was built): run npm run setup (tools/setup/setup.sh) to rebuild it`);
  const port = opts.port ?? (await freePort());
  let child: ChildProcess | undefined;

  const db: DevDb = {
    uri: `mongodb://127.0.0.1:${port}`,
    port,
    dir: opts.dir,
    async start() {
      const proc = spawn(bin, ["-listen", `127.0.0.1:${port}`, "-dir", opts.dir], { stdio: ["ignore", "pipe", "pipe"] });
      child = proc;
      const stderr: string[] = [];
      createInterface({ input: proc.stderr! }).on("line", (l) => {
        stderr.push(l);
        opts.log?.(l);
      });
      const lines = createInterface({ input: proc.stdout! });
      await new Promise<void>((ok, fail) => {
        lines.on("line", (l) => l.startsWith("devdb ready") && ok());
        proc.once("exit", (code) => fail(new Error(`devdb exited with ${code} before ready:\n${stderr.slice(-10).join("\n")}`)));
      });
    },
    async stop() {
      const proc = child;
      child = undefined;
      if (!proc || proc.exitCode !== null) return;
      const exited = once(proc, "exit");
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  await db.start();
  return db;
}
