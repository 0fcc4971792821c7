// Starts and stops the embedded FerretDB (tools/setup/devdb, built by tools/setup/setup.sh) from Node.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT } from "../root.js";

export { ROOT };
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

/** Starts devdb on `port` (free one by default) with its SQLite files in `dir`; resolves once it accepts connections. */
export async function startDevDb(opts: { dir: string; port?: number; log?: (line: string) => void }): Promise<DevDb> {
  const bin = join(BIN, "devdb");
  if (!existsSync(bin)) throw new Error(`devdb is not built: run tools/setup/setup.sh (or npm run setup) first (${bin})`);
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
