// The recovery loop: finishes or undoes orders left PENDING by a crash or an unreachable peer.
// An order counts as stuck once it has not moved for `afterMs` — longer than any deadline the saga
// uses, so no call of the original run can still be in flight.
import { detached, inSpan, type Locks, type Logger } from "#kit";
import { ORDER_LOCK_TTL_MS } from "./order-service.js";
import type { OrderStore } from "./orders.js";
import type { Saga } from "./saga.js";

export interface RecoveryOptions {
  orders: OrderStore;
  saga: Saga;
  locks: Locks;
  log: Logger;
  intervalMs: number;
  afterMs: number;
}

export function recoveryLoop({ orders, saga, locks, log, intervalMs, afterMs }: RecoveryOptions) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;
  // Aborted by stop(): the order being recovered stops at its recorded step, its calls cancelled.
  let halt = new AbortController();

  /** One pass: every stuck order gets one recovery attempt. Returns how many were finished. */
  async function pass(): Promise<number> {
    let finished = 0;
    for (const stuck of await orders.stuck(new Date(Date.now() - afterMs))) {
      if (stopped) break;
      try {
        const order = await locks.withLock(
          `order:${stuck._id}`,
          async () => {
            const current = await orders.get(stuck._id);
            if (current?.state !== "PENDING") return current; // gone or finished meanwhile
            // The run that created the order is still at work (its lease is renewed while it lives).
            if (current.leaseUntil && current.leaseUntil.getTime() > Date.now()) return current;
            // Still quiet? The lock may have been held (and waited for) by a PlaceOrder retry that ran the saga
            // again and left the order PENDING with a Charge still being written: acting on the old snapshot
            // would fail the order and release its stock while the charge lands, never to be refunded. Any
            // write moves updatedAt, and the order counts as stuck again only `afterMs` after that.
            if (current.updatedAt.getTime() !== stuck.updatedAt.getTime()) return current;
            // warn: an interrupted saga is worth seeing at the default test/experiment log level.
            log.warn({ orderId: current._id, step: current.step }, "recovering interrupted order");
            // A trace of its own: the caller that opened the order is long gone.
            return inSpan("orders recover", { "meshmart.order.id": current._id, "meshmart.saga.step": current.step }, () =>
              saga.recover(current, {
                call: () => ({ ...detached(undefined), signal: halt.signal }),
                fresh: () => ({ ...detached(undefined), signal: halt.signal }),
                stopping: halt.signal,
              }),
            );
          },
          { ttlMs: ORDER_LOCK_TTL_MS, waitMs: 1000 },
        );
        if (order && order.state !== "PENDING") {
          finished++;
          log.info({ orderId: order._id, state: order.state }, "order recovered");
        }
      } catch (err) {
        log.warn({ orderId: stuck._id, err: (err as Error).message }, "recovery attempt failed; will retry");
      }
    }
    // Then FAILED orders, once each: a charge that landed after their compensation listed the payments is
    // refunded. Past `afterMs` no call of the saga is in flight any more.
    for (const failed of await orders.failedUnchecked(new Date(Date.now() - afterMs))) {
      if (stopped) break;
      try {
        await saga.refundLateCharges(failed, {
          call: () => ({ ...detached(undefined), signal: halt.signal }),
          fresh: () => ({ ...detached(undefined), signal: halt.signal }),
        });
        await orders.update(failed._id, { lateChargesChecked: true });
      } catch (err) {
        log.warn({ orderId: failed._id, err: (err as Error).message }, "late-charge check failed; will retry");
      }
    }
    return finished;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().catch((err) => {
        log.warn({ err: (err as Error).message }, "recovery pass failed");
        return 0;
      });
      void running.finally(schedule);
    }, intervalMs);
    timer.unref();
  };

  return {
    pass,
    start: () => {
      stopped = false;
      halt = new AbortController();
      schedule();
    },
    /** Stops scheduling and waits for a pass in progress. */
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      halt.abort();
      await running;
    },
  };
}
