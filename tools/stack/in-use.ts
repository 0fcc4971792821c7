// Is a local stack already running here? npm start asks before it deletes (--fresh) or opens anything: a
// second `npm start -- --fresh` used to delete the data directory under the running database, then fail on
// the port, leaving the first stack answering reads from open files and failing every write.
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { resolve, sep } from "node:path";

/** The file next to a data directory naming the npm start that owns it (outside it, so --fresh keeps it). */
export const ownerFile = (dataDir: string) => `${resolve(dataDir)}.owner`;

export interface InUse {
  /** Processes that have the data directory: its owner (npm start) or anything with a file open in it. */
  dataDir: { pid: number; command: string }[];
  /** Ports on 127.0.0.1 something already listens on. */
  ports: number[];
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, someone else's
  }
};

const commandOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "?";
  }
};

/** Processes with a file open under `dir`, from /proc (Linux; elsewhere only the owner file tells). */
function openersOf(dir: string): number[] {
  const root = resolve(dir);
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target === root || target.startsWith(root + sep)) {
        found.push(Number(pid));
        break;
      }
    }
  }
  return found;
}

async function portTaken(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => done(err.code === "EADDRINUSE" || err.code === "EACCES"));
    probe.listen({ port, host: "127.0.0.1", exclusive: true }, () => probe.close(() => done(false)));
  });
}

/** What is in use of `dataDir` and `ports` (pass no ports when they are picked free). */
export async function inUse(dataDir: string, ports: number[]): Promise<InUse> {
  const pids = new Set(openersOf(dataDir));
  try {
    const owner = Number(readFileSync(ownerFile(dataDir), "utf8").trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) pids.add(owner);
  } catch {
    // no owner file: nobody started a stack on it, or it stopped
  }
  const taken: number[] = [];
  for (const p of ports) if (await portTaken(p)) taken.push(p);
  return { dataDir: [...pids].sort((a, b) => a - b).map((pid) => ({ pid, command: commandOf(pid) })), ports: taken };
}

/** Why not to start, naming what is in use; "" when nothing is. */
export function refusal(dataDir: string, found: InUse): string {
  const lines: string[] = [];
  if (found.dataDir.length > 0)
    lines.push(`the data directory ${resolve(dataDir)} is in use by ${found.dataDir.map((p) => `pid ${p.pid} (${p.command})`).join(", ")}`);
  if (found.ports.length > 0) lines.push(`these ports on 127.0.0.1 are in use: ${found.ports.join(", ")}`);
  if (lines.length === 0) return "";
  return `${lines.join("; ")}.\nIs meshmart already running (another terminal)? Stop it first, or use --data-dir and --ports auto for a second stack. Nothing was deleted or started.`;
}

/** Marks `dataDir` as this process's; returns the function that gives it up. */
export function claim(dataDir: string): () => void {
  const file = ownerFile(dataDir);
  writeFileSync(file, `${process.pid}\n`);
  return () => rmSync(file, { force: true });
}
