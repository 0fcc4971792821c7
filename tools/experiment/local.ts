// The local side of an experiment: the process-level fault approximating the mesh one, driven on the local
// stack while the load runs (kill and restart a service, stop the database for a while, the kit's delay and
// abort knobs, a rolling restart). Records when each thing really happened, in ms since the load started.
import { setTimeout as sleep } from "node:timers/promises";
import { waitForHealth } from "../health-wait.js";
import type { Stack } from "../stack.js";
import type { FaultTimes } from "./evaluate.js";
import type { Hypothesis } from "./hypothesis.js";

export interface FaultLog extends FaultTimes {
  events: { atMs: number; what: string }[];
}

/** Runs the hypothesis's local fault on `stack`, timed from `t0` (the load's start, Date.now()). */
export async function driveLocalFault(stack: Stack, h: Hypothesis, t0: number, timing = h.fault): Promise<FaultLog> {
  const fault = h.fault.local;
  if (!fault) throw new Error(`experiment "${h.name}" has no local fault (fault.local)`);
  const events: FaultLog["events"] = [];
  const now = () => Date.now() - t0;
  const note = (what: string) => events.push({ atMs: now(), what });
  const until = async (ms: number) => {
    const wait = ms - now();
    if (wait > 0) await sleep(wait);
  };

  await until(timing.startAfterMs);
  const startMs = now();
  let endMs: number;
  let restoredMs: number | undefined;
  switch (fault.action) {
    case "kill": {
      await stack.kill(fault.unit, fault.signal ?? "SIGKILL");
      note(`${fault.unit} killed (${fault.signal ?? "SIGKILL"})`);
      await until(timing.startAfterMs + timing.durationMs);
      endMs = now();
      note(`${fault.unit} starting again`);
      await stack.start(fault.unit);
      restoredMs = now();
      note(`${fault.unit} SERVING`);
      break;
    }
    case "stop-db": {
      await stack.stopDb();
      note("database stopped");
      await until(timing.startAfterMs + timing.durationMs);
      endMs = now();
      await stack.startDb();
      note("database started");
      await waitForHealth(stack.endpoints.orders.grpc, { timeoutMs: 60_000 });
      restoredMs = now();
      note("orders SERVING again (its readiness is the database)");
      break;
    }
    case "faults": {
      const { delayMs, delayPercent, errorPercent, methods } = fault;
      await stack.setFaults(fault.unit, { delayMs, delayPercent, errorPercent, methods });
      note(`${fault.unit} fault knobs on: ${JSON.stringify({ delayMs, delayPercent, errorPercent, methods })}`);
      await until(timing.startAfterMs + timing.durationMs);
      endMs = now();
      await stack.setFaults(fault.unit, {});
      restoredMs = now();
      note(`${fault.unit} fault knobs off`);
      break;
    }
    case "rolling-restart": {
      for (const unit of fault.units) {
        note(`${unit}: SIGTERM, then a new process`);
        await stack.restart(unit);
        note(`${unit} SERVING again`);
      }
      endMs = now();
      restoredMs = endMs;
      break;
    }
    case "none":
      await until(timing.startAfterMs + timing.durationMs);
      endMs = now();
      break;
  }
  return { startMs, endMs, restoredMs, events };
}
