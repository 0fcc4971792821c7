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

/**
 * A free TCP port on 127.0.0.1, released for the caller to bind. Drawn below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range): a port from listen(0) lies in that range, where any outgoing
 * connection may take it as its local port before the caller binds it (seen in CI: a service's auto port was
 * EADDRINUSE). Ports are handed out from a cursor that starts at a random place and moves on, so one process
 * never gets the same port twice in a row of stack starts; where there is no room below the range, the kernel picks.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low - PORTS_FROM >= 2000) {
    cursor ??= Math.floor(Math.random() * (low - PORTS_FROM));
    for (let tries = 0; tries < 100; tries++) {
      const port = PORTS_FROM + (cursor++ % (low - PORTS_FROM));
      if (await canListen(port)) return port;
    }
  }
  return listenOn(0);
}

/** Below the registered ports of common servers (8080, 9090, 15010...) is crowded; above it, until the range. */
const PORTS_FROM = 20000;
let cursor: number | undefined;

function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
}

async function canListen(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

async function listenOn(port: number): Promise<number> {
  const srv = createServer();
  srv.listen(port, "127.0.0.1");
  await Promise.race([once(srv, "listening"), once(srv, "error").then(([err]) => Promise.reject(err))]);
  const bound = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return bound;
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
  /** The server's process id while it runs. */
  pid(): number | undefined;
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
    pid: () => child?.pid,
  };
  await db.start();
  return db;
}
