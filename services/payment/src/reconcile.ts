// The reconcile loop: every payment and refund ends with exactly its ledger entries, even when the call that
// made it was interrupted between its two writes and never repeated (PaymentStore.reconcile says how).
import type { Logger } from "#kit";
import type { PaymentStore } from "./payments.js";

export interface ReconcileOptions {
  payments: Pick<PaymentStore, "reconcile">;
  log: Logger;
  intervalMs: number;
  /** Payments younger than this are left to the call still writing them. */
  afterMs: number;
}

export function reconcileLoop({ payments, log, intervalMs, afterMs }: ReconcileOptions) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;

  async function pass() {
    const found = await payments.reconcile(new Date(Date.now() - afterMs));
    if (found.chargeEntries + found.refundsSettled > 0) log.warn(found, "ledger reconciled: wrote what interrupted calls left out");
    return found;
  }

  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().catch((err) => log.warn({ err: (err as Error).message }, "reconcile pass failed; will retry"));
      void running.finally(() => schedule(intervalMs));
    }, delayMs);
    timer.unref();
  };

  return {
    pass,
    /** First pass soon after start (a restart after a crash is when something is most likely missing). */
    start: () => {
      stopped = false;
      schedule(Math.min(intervalMs, 1000));
    },
    /** Stops scheduling and waits for a pass in progress. */
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
