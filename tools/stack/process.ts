// Runs a project entry point as a real child process: used by the benchmark and by the shutdown, crash and end-to-end tests.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { ROOT } from "../root.js";
import { compiledOf, SERVICE_NODE_FLAGS } from "../setup/entries.js";

export interface ServiceProcess {
  child: ChildProcess;
  output: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns `entry` with `env`: its compiled file (`node dist/<name>.js`, tools/setup/build.ts) when it is one of the
 * built entry points, as the images and npm start run it; else `node --import tsx <entry>`. Output is kept
 * for assertions and failure messages.
 */
export function startProcess(entry: string, env: Record<string, string>, args: string[] = []): ServiceProcess {
  const compiled = compiledOf(entry);
  const child = spawn(process.execPath, [...(compiled ? [...SERVICE_NODE_FLAGS, compiled] : ["--import", "tsx", join(ROOT, entry)]), ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    output: () => out,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
