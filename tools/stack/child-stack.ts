// The local stack in a child process: npm start (tools/stack/start.ts --ports auto, which runs startStack of
// launcher.ts in every mode) for a load run, a benchmark or a test, and its "meshmart ready {json}" line turned
// into load targets. A child process rather than startStack in the caller: the benchmark measures the stack's
// processes apart from its own, and the end-to-end tests run the README's way. The ready line names every process
// the stack spawned (`pids`), so nothing here asks the OS who the children are.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { LoadTargets } from "../traffic/load/shopper.js";
import { type ServiceProcess, startProcess } from "./process.js";
import { parseReadyLine } from "./ready-line.js";

export type Mode = "services" | "monolith" | "mesh";
/** What tools/stack/start.ts prints: each unit's gRPC and admin address, and the database (and in mesh mode, the mesh). */
export type Ready = Record<string, { grpc: string; admin: string }> & { mongodb?: unknown; mesh?: ReadyMesh; pids?: Record<string, number> };
/** tools/stack/start.ts's ready line in mesh mode: istiod's debug URL and xDS address, the xds targets, client bootstraps. */
export interface ReadyMesh {
  /** istiod's HTTP (debug) URL, xDS address, pid and config directory. */
  istiod: string;
  xds: string;
  pid: number;
  configDir: string;
  targets: { identity: string; catalog: string; orders: string; payment: string };
  bootstrap: Record<string, unknown>;
}

export interface LocalStack {
  mode: Mode;
  ready: Ready;
  targets: LoadTargets;
  process: ServiceProcess;
  /** The stack's own data directory (removed by stop()). */
  dataDir: string;
  /**
   * Ctrl-C to the stack (it stops its services and database), then removes the data directory. A stack
   * still up after `graceMs` (default 30 s) is killed, processes and all; `forced` then says so. `code` is
   * start.ts's exit code (0: everything stopped cleanly).
   */
  stop(graceMs?: number): Promise<{ forced: boolean; code: number | null }>;
}

const killQuietly = (pid: number) => {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
};

/** Every process of a started stack by name: start.ts itself ("start") and what it spawned (Stack.pids). */
export function processesOf(stack: LocalStack): Record<string, number> {
  return { start: stack.process.child.pid as number, ...(stack.ready.pids as Record<string, number> | undefined) };
}

/**
 * The load targets from a ready line: in monolith mode, every service at the one address; in mesh mode the
 * xds targets, the load generator being the mesh client "load".
 */
export function targetsOf(ready: Ready): LoadTargets {
  const mesh = ready.mesh as ReadyMesh | undefined;
  if (mesh) return { ...mesh.targets, xdsBootstrap: JSON.stringify(mesh.bootstrap.load) };
  if (ready.monolith) {
    const at = ready.monolith.grpc;
    return { identity: at, catalog: at, orders: at, payment: at };
  }
  for (const unit of ["identity", "catalog-v1", "orders", "payment"])
    if (!ready[unit]?.grpc) throw new Error(`the ready line has no gRPC address for ${unit}: ${JSON.stringify(ready)}`);
  return { identity: ready.identity.grpc, catalog: ready["catalog-v1"].grpc, orders: ready.orders.grpc, payment: ready.payment.grpc };
}

/**
 * Starts the stack on free ports with a fresh data directory (or on `env.MONGODB_URI`) and waits for its
 * ready line (printed once every service is healthy). `env` reaches every service process too
 * (e.g. NODE_OPTIONS=--cpu-prof for a profile).
 */
export async function startLocalStack(mode: Mode, o: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<LocalStack> {
  const dataDir = mkdtempSync(join(tmpdir(), "meshmart-load-"));
  // Tracing off unless `env` turns it on: the benchmark measures its cost as a variant of its own.
  const proc = startProcess("tools/stack/start.ts", { LOG_FORMAT: "json", LOG_LEVEL: "warn", OTEL_SDK_DISABLED: "true", ...o.env }, [
    "--ports",
    "auto",
    "--mode",
    mode,
    "--data-dir",
    dataDir,
  ]);
  let pids: Record<string, number> = {};
  const stop = async (graceMs = 30_000) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), graceMs)));
    const stopped = await Promise.race([proc.stop("SIGINT"), late]);
    const forced = stopped === "late";
    clearTimeout(timer);
    if (forced) {
      for (const pid of Object.values(pids)) killQuietly(pid);
      killQuietly(proc.child.pid!);
      await proc.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
    return { forced, code: forced ? null : stopped };
  };
  try {
    const ready = await new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${mode} stack was not ready within ${o.timeoutMs ?? 90_000} ms`)), o.timeoutMs ?? 90_000);
      createInterface({ input: proc.child.stdout! }).on("line", (line) => {
        const found = parseReadyLine<Ready>(line);
        if (!found) return;
        clearTimeout(timer);
        pids = (found.pids as Record<string, number> | undefined) ?? {};
        resolve(found);
      });
      proc.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the ${mode} stack exited (${code}) before it was ready:\n${proc.output().slice(-3000)}`));
      });
    });
    return { mode, ready, targets: targetsOf(ready), process: proc, dataDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
