// The OrderService RPCs. PlaceOrder opens the order (one per caller and idempotency key) and runs the saga.
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { FailureReason, type OrderSchema, type OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { annotate, currentUser, decodePageToken, detached, encodePageToken, forward, type Locks, money, pageSize, serverStoppingKey } from "#kit";
import { DuplicateSkuError, IdempotencyKeyReusedError, OrderNotFoundError } from "./errors.js";
import { type OrderRecord, type OrderStore, orderIdFor, requestHashOf } from "./orders.js";
import type { Saga } from "./saga.js";

export interface Deps {
  orders: OrderStore;
  saga: Saga;
  locks: Locks;
}

/** Lease of an order's lock (renewed while its holder works): how long a crashed process blocks recovery. */
export const ORDER_LOCK_TTL_MS = 3_000;
/** How long a repeated PlaceOrder waits for another repeat's run of the saga: longer than a whole saga with its retries. */
export const ORDER_LOCK_WAIT_MS = 60_000;
/**
 * Lease of the run that created an order (order.leaseUntil, renewed every third of it while the saga runs):
 * how long a repeat or recovery waits after that process died.
 */
export const ORDER_LEASE_MS = 3_000;

export function orderService({ orders, saga, locks }: Deps): ServiceImpl<typeof OrderService> {
  // The first runs under way in this process, by order id: a repeat arriving here waits on the promise
  // instead of polling the order.
  const firstRuns = new Map<string, Promise<unknown>>();

  /**
   * Runs the saga of an order this call has just created, renewing its lease while it works. The insert is
   * the claim (only one caller can make the order), so the run takes no lock: two database commands fewer
   * per order. A run that ends with the order still PENDING drops its lease, so a repeat may resume at once.
   */
  async function firstRun(order: OrderRecord, run: () => Promise<OrderRecord>): Promise<OrderRecord> {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let renewing: Promise<unknown> = Promise.resolve();
    const renewLater = () => {
      if (done) return;
      timer = setTimeout(() => {
        // A database hiccup: the lease still runs a while; the next renewal tries again.
        renewing = orders
          .renewLease(order._id, new Date(Date.now() + ORDER_LEASE_MS))
          .catch(() => undefined)
          .then(renewLater);
      }, ORDER_LEASE_MS / 3);
    };
    renewLater();
    let result: OrderRecord | undefined;
    try {
      result = await run();
      return result;
    } finally {
      done = true;
      clearTimeout(timer);
      await renewing; // a renewal in flight must not land after the lease is dropped
      if (result?.state !== "CONFIRMED" && result?.state !== "FAILED") await orders.update(order._id, { leaseUntil: null }).catch(() => undefined);
    }
  }

  /** The order once no first run holds it: polls while its lease is alive (a run in another process). */
  async function whenFree(order: OrderRecord, signal: AbortSignal): Promise<OrderRecord> {
    let current = order;
    for (let delay = 5; current.state === "PENDING" && current.leaseUntil && current.leaseUntil.getTime() > Date.now(); delay = Math.min(delay * 2, 100)) {
      await sleep(delay);
      signal.throwIfAborted(); // the caller's deadline passed: DEADLINE_EXCEEDED, as for a waiter on a lock
      current = (await orders.get(current._id)) ?? current;
    }
    return current;
  }

  return {
    async placeOrder({ idempotencyKey, items, card }, ctx) {
      const user = currentUser(ctx);
      const seen = new Set<string>();
      for (const i of items) {
        if (seen.has(i.sku)) throw new DuplicateSkuError(i.sku);
        seen.add(i.sku);
      }
      const cardLast4 = card?.number.slice(-4) ?? "";
      const id = orderIdFor(user.id, idempotencyKey);
      annotate({ "meshmart.order.id": id }); // `npm run trace -- <order id>` finds the trace by it
      const requestHash = requestHashOf(items, cardLast4);
      const lines = items.map(({ sku, quantity }) => ({ sku, quantity, name: "", unitPriceCents: 0 }));
      // Steps with a fresh deadline outlive the caller, not the process: a shutdown cancels them too.
      const stopping = ctx.values.get(serverStoppingKey);
      const plan = { call: () => forward(ctx), fresh: () => ({ ...detached(ctx), signal: stopping }), stopping };

      // Whoever creates the order runs its saga first, holding it by the order's lease rather than a lock.
      const running = firstRuns.get(id);
      if (running) await running.catch(() => undefined);
      else {
        const attempt = orders.open({ _id: id, userId: user.id, idempotencyKey, requestHash, items: lines, cardLast4 }, ORDER_LEASE_MS).then((opened) => {
          if (opened === "exists") return opened;
          if (!card) return opened;
          return firstRun(opened, () => saga.run(opened, card, plan));
        });
        firstRuns.set(id, attempt);
        try {
          const first = await attempt;
          if (first !== "exists") return { order: toProto(first) };
        } finally {
          if (firstRuns.get(id) === attempt) firstRuns.delete(id);
        }
      }

      // A repeat. One at a time per order (the lock), and only once the first run is over (its lease): then it
      // answers with the outcome, or, if the order was left PENDING, runs the saga again with its card.
      const order = await locks.withLock(
        `order:${id}`,
        async () => {
          const stored = await orders.get(id);
          if (!stored) throw new ConnectError(`order "${id}" is not stored yet; retry`, Code.Aborted); // its insert failed
          if (stored.requestHash !== requestHash) throw new IdempotencyKeyReusedError(idempotencyKey);
          const current = await whenFree(stored, ctx.signal);
          if (current.state !== "PENDING" || !card) return current; // a repeat gets the first answer
          return saga.run(current, card, plan);
        },
        // A caller whose deadline passed while queued gets DEADLINE_EXCEEDED before anything is written.
        { ttlMs: ORDER_LOCK_TTL_MS, waitMs: ORDER_LOCK_WAIT_MS, signal: ctx.signal },
      );
      return { order: toProto(order) };
    },

    async getOrder({ orderId }, ctx) {
      const user = currentUser(ctx);
      const order = await orders.get(orderId);
      // Another user's order gets the very answer an unknown id gets: saying "not yours" would confirm it exists.
      if (!order || order.userId !== user.id) throw new OrderNotFoundError(orderId);
      return { order: toProto(order) };
    },

    async listOrders({ pageSize: requested, pageToken }, ctx) {
      const user = currentUser(ctx);
      const size = pageSize(requested);
      const after = decodePageToken(pageToken, { t: "number", id: "string" });
      const rows = await orders.page(user.id, size, after);
      const last = rows[size - 1];
      return {
        orders: rows.slice(0, size).map(toProto),
        nextPageToken: rows.length > size ? encodePageToken({ t: last.createdAt.getTime(), id: last._id }) : "",
      };
    },
  };
}

const STATES = { PENDING: OrderState.PENDING, CONFIRMED: OrderState.CONFIRMED, FAILED: OrderState.FAILED } as const;

export function toProto(o: OrderRecord): MessageInitShape<typeof OrderSchema> {
  const priced = o.totalCents > 0 || o.step !== "CREATED";
  return {
    orderId: o._id,
    userId: o.userId,
    state: STATES[o.state],
    items: (o.items ?? []).map((i) => ({
      sku: i.sku,
      name: i.name,
      quantity: i.quantity,
      ...(priced ? { unitPrice: money(i.unitPriceCents, o.currency) } : {}),
    })),
    ...(priced ? { total: money(o.totalCents, o.currency) } : {}),
    failureReason: o.state === "FAILED" && o.failureReason ? FailureReason[o.failureReason] : FailureReason.UNSPECIFIED,
    failureMessage: o.state === "FAILED" ? o.failureMessage : "",
    paymentId: o.paymentId,
    cardLast4: o.cardLast4,
    createTime: timestampFromDate(o.createdAt),
    updateTime: timestampFromDate(o.updatedAt),
  };
}
