// The OrderService RPCs. PlaceOrder opens the order (one per caller and idempotency key) and runs the saga.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
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

/** Lease of an order's lock (renewed while a saga runs): how long a crashed process blocks recovery. */
export const ORDER_LOCK_TTL_MS = 3_000;
/** How long a repeated PlaceOrder waits for the first one's saga: longer than a whole saga with its retries. */
export const ORDER_LOCK_WAIT_MS = 60_000;

export function orderService({ orders, saga, locks }: Deps): ServiceImpl<typeof OrderService> {
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
      // One saga run per order at a time; a repeat waits for the first, then answers with its outcome. The lock
      // is taken before the order is opened, so whoever creates it runs its saga first and needs no re-read.
      const order = await locks.withLock(
        `order:${id}`,
        async () => {
          const opened = await orders.open({ _id: id, userId: user.id, idempotencyKey, requestHash, items: lines, cardLast4 });
          const current = opened === "exists" ? ((await orders.get(id)) as OrderRecord) : opened;
          if (current.requestHash !== requestHash) throw new IdempotencyKeyReusedError(idempotencyKey);
          if (current.state !== "PENDING" || !card) return current; // a repeat gets the first answer
          // Steps with a fresh deadline outlive the caller, not the process: a shutdown cancels them too.
          const stopping = ctx.values.get(serverStoppingKey);
          return saga.run(current, card, { call: () => forward(ctx), fresh: () => ({ ...detached(ctx), signal: stopping }), stopping });
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
