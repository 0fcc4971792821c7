// The local side of an experiment: the process-level fault approximating the mesh one, driven on the local
// stack while the load runs (kill and restart a service, stop the database for a while, the kit's delay and
// abort knobs, a rolling restart). Records when each thing really happened, in ms since the load started.
import { setTimeout as sleep } from "node:timers/promises";
import { waitForHealth } from "../../stack/health-wait.js";
import { type Stack, UNITS } from "../../stack/launcher.js";
import type { FaultTimes } from "./evaluate.js";
import type { Hypothesis } from "./hypothesis.js";

export interface FaultLog extends FaultTimes {
  events: { atMs: number; what: string }[];
}

/** Runs the hypothesis's local fault on `stack`, timed from `t0` (the load's start, Date.now()). */
export async function driveLocalFault(stack: Stack, h: Hypothesis, t0: number, timing = h.fault, signal?: AbortSignal): Promise<FaultLog> {
  const fault = h.fault.local;
  if (!fault) throw new Error(`experiment "${h.name}" has no local fault (fault.local)`);
  const events: FaultLog["events"] = [];
  const now = () => Date.now() - t0;
  const note = (what: string) => events.push({ atMs: now(), what });
  // Aborted (the load failed): stop waiting, but still put back what the fault took away.
  const until = async (ms: number) => {
    const wait = ms - now();
    if (wait > 0 && !signal?.aborted) await sleep(wait, undefined, { signal }).catch(() => undefined);
  };

  await until(timing.startAfterMs);
  if (signal?.aborted) return { startMs: now(), endMs: now(), events: [{ atMs: now(), what: "not started: the load ended first" }] };
  // A start later than planned (a slow first second makes the estimated t0 early) still gets the whole
  // planned duration: the fault ends durationMs after it really began, not at the planned end.
  const startMs = now();
  let endMs: number;
  let restoredMs: number | undefined;
  switch (fault.action) {
    case "kill": {
      await stack.kill(fault.unit, fault.signal ?? "SIGKILL");
      note(`${fault.unit} killed (${fault.signal ?? "SIGKILL"})`);
      await until(startMs + timing.durationMs);
      endMs = now();
      note(`${fault.unit} starting again`);
      await stack.start(fault.unit);
      restoredMs = now();
      note(`${fault.unit} SERVING`);
      break;
    }
    case "stop-db": {
      await stack.stopDb(); // a graceful stop takes seconds: the outage is counted from when it is down
      note("database stopped");
      await until(now() + timing.durationMs);
      endMs = now();
      await stack.startDb();
      note("database started");
      // Every service's readiness includes the database: restored once all of them say SERVING again.
      await Promise.all(
        UNITS.map((u) => waitForHealth(stack.endpoints[u].grpc, { timeoutMs: 60_000 }).catch((err: Error) => note(`${u} NOT back: ${err.message}`))),
      );
      restoredMs = now();
      note("every service SERVING again (their readiness includes the database)");
      break;
    }
    case "faults": {
      const { delayMs, delayPercent, errorPercent, methods } = fault;
      await stack.setFaults(fault.unit, { delayMs, delayPercent, errorPercent, methods });
      note(`${fault.unit} fault knobs on: ${JSON.stringify({ delayMs, delayPercent, errorPercent, methods })}`);
      await until(startMs + timing.durationMs);
      endMs = now();
      await stack.setFaults(fault.unit, {});
      restoredMs = now();
      note(`${fault.unit} fault knobs off`);
      break;
    }
    case "rolling-restart": {
      for (const unit of fault.units) {
        if (signal?.aborted) break;
        note(`${unit}: SIGTERM, then a new process`);
        await stack.restart(unit);
        note(`${unit} SERVING again`);
      }
      endMs = now();
      restoredMs = endMs;
      break;
    }
    case "none":
      await until(startMs + timing.durationMs);
      endMs = now();
      break;
  }
  return { startMs, endMs, restoredMs, events };
}
