// The PlaceOrder saga: reserve stock → charge the card → commit the reservation → CONFIRMED, or undo what
// was done (refund, release) → FAILED with a reason. Catalog and payment are idempotent per order id, so
// repeating a step after a timeout or a crash is always safe.
//
// What is written, and when: only what recovery needs to choose its next move. CREATED (the order's insert)
// and CHARGING (with the reservation's lines and total, written before the charge is sent) are the two
// states a crash can leave a running saga in, then DONE. Recovery from CREATED releases the stock (any
// reservation, made or still on its way); from CHARGING it asks payment whether the charge happened and
// commits or releases accordingly. RESERVING, RESERVED, CHARGED and COMMITTING would each cost a database
// write per order and lead recovery to the same move as the state before them, so they are not written;
// they remain saga points for the crash-test hook, and recover() still handles them in orders written
// before this change.
import type { CallOptions, Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { type CatalogService, ReservationState } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import type { Card, PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { annotate, errorReason, inSpan, type Logger, money, toCents } from "#kit";
import type { FailureReasonName, OrderRecord, OrderStore, SagaStep } from "./orders.js";

export interface SagaDeps {
  orders: OrderStore;
  catalog: Client<typeof CatalogService>;
  payment: Client<typeof PaymentService>;
  log: Logger;
  /**
   * Test hook, off unless set: runs at each saga point (the crash test stops the process here): after CHARGING,
   * COMPENSATING and DONE are written, after RESERVED and CHARGED are reached (the reply is in, nothing written
   * yet), before the calls that RESERVING and COMMITTING name.
   */
  afterStep?: (step: SagaStep, order: OrderRecord) => void | Promise<void>;
}

/**
 * How to call the other services: `call()` for the forward steps (what is left of the caller's deadline,
 * worked out again for each step), `fresh()` for work that must finish anyway (its own deadline).
 */
export interface CallPlan {
  call: () => CallOptions;
  fresh: () => CallOptions;
  /**
   * Aborted when the process is shutting down (past its grace period): the saga sends nothing more and leaves
   * the order at the step last written (CREATED, CHARGING, COMPENSATING), which recovery resumes.
   */
  stopping?: AbortSignal;
}

/** Codes after which a step may or may not have happened on the other side. */
const UNCERTAIN = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Unknown, Code.Internal, Code.Aborted, Code.ResourceExhausted]);

interface Failure {
  reason: FailureReasonName;
  message: string;
  uncertain: boolean;
}

/**
 * ReserveStock repeated for a reservation that was released meanwhile answers OK with the RELEASED
 * reservation (a repeat gets the reservation as it stands): no stock is held, so the order must not be charged.
 */
class ReservationReleasedError extends Error {
  constructor(id: string) {
    super(`reservation "${id}" was already released; no stock is held for this order`);
  }
}

function classify(err: unknown): Failure {
  if (err instanceof ReservationReleasedError) return { reason: "ABANDONED", message: err.message, uncertain: false };
  const e = ConnectError.from(err);
  const reason = errorReason(e);
  if (reason === "OUT_OF_STOCK") return { reason: "OUT_OF_STOCK", message: e.rawMessage, uncertain: false };
  if (reason === "PRODUCT_NOT_FOUND") return { reason: "PRODUCT_NOT_FOUND", message: e.rawMessage, uncertain: false };
  if (reason === "INSUFFICIENT_FUNDS") return { reason: "INSUFFICIENT_FUNDS", message: e.rawMessage, uncertain: false };
  if (reason === "CARD_DECLINED" || reason === "EXPIRED_CARD" || e.code === Code.InvalidArgument)
    return { reason: "PAYMENT_DECLINED", message: e.rawMessage, uncertain: false };
  if (UNCERTAIN.has(e.code)) return { reason: "DEPENDENCY_UNAVAILABLE", message: `${Code[e.code]}: ${e.rawMessage}`, uncertain: true };
  return { reason: "DEPENDENCY_UNAVAILABLE", message: `${Code[e.code]}: ${e.rawMessage}`, uncertain: false };
}

export type Saga = ReturnType<typeof orderSaga>;

/** Each saga step is a span (when tracing is on), so a PlaceOrder's trace reads as its steps. */
function traced<T>(step: string, order: OrderRecord, fn: () => Promise<T>): Promise<T> {
  return inSpan(`saga ${step}`, { "meshmart.order.id": order._id, "meshmart.saga.step": step }, fn);
}

export function orderSaga({ orders, catalog, payment, log, afterStep }: SagaDeps) {
  /** Records the step (with `fields`) in the database. */
  async function step(order: OrderRecord, next: SagaStep, fields: Partial<OrderRecord> = {}): Promise<OrderRecord> {
    const updated = await orders.update(order._id, { ...fields, step: next });
    await afterStep?.(next, updated);
    return updated;
  }

  /** Moves the order to `next` in memory only: recovery would take the same path from the step last written. */
  async function pass(order: OrderRecord, next: SagaStep, fields: Partial<OrderRecord> = {}): Promise<OrderRecord> {
    const moved = { ...order, ...fields, step: next };
    await afterStep?.(next, moved);
    return moved;
  }

  const reserve = (order: OrderRecord, opts: CallOptions) => traced("reserve", order, () => reserveStep(order, opts));
  async function reserveStep(order: OrderRecord, opts: CallOptions) {
    await afterStep?.("RESERVING", order);
    const { reservation } = await catalog.reserveStock({ reservationId: order._id, items: order.items.map(({ sku, quantity }) => ({ sku, quantity })) }, opts);
    if (reservation?.state === ReservationState.RELEASED) throw new ReservationReleasedError(order._id);
    const items = (reservation?.items ?? []).map((i) => ({
      sku: i.sku,
      name: i.name,
      quantity: i.quantity,
      unitPriceCents: toCents(i.unitPrice ?? { units: 0n, nanos: 0 }) ?? 0,
    }));
    return pass(order, "RESERVED", {
      items,
      totalCents: toCents(reservation?.total ?? { units: 0n, nanos: 0 }) ?? 0,
      currency: reservation?.total?.currencyCode || "USD",
    });
  }

  const charge = (order: OrderRecord, card: Card, opts: CallOptions) => traced("charge", order, () => chargeStep(order, card, opts));
  async function chargeStep(order: OrderRecord, card: Card, opts: CallOptions) {
    // Written before the charge is sent, with what was reserved: the one write between the order's insert and DONE.
    if (order.step !== "CHARGING") order = await step(order, "CHARGING", { items: order.items, totalCents: order.totalCents, currency: order.currency });
    const res = await payment.charge({ idempotencyKey: order._id, orderId: order._id, amount: money(order.totalCents, order.currency), card }, opts);
    return pass(order, "CHARGED", { paymentId: res.payment?.paymentId ?? "" });
  }

  const commit = (order: OrderRecord, opts: CallOptions) => traced("commit", order, () => commitStep(order, opts));
  async function commitStep(order: OrderRecord, opts: CallOptions) {
    await afterStep?.("COMMITTING", order);
    await catalog.commitReservation({ reservationId: order._id }, opts);
    return step(order, "DONE", { state: "CONFIRMED", paymentId: order.paymentId });
  }

  /**
   * Undoes what reached the other services: releases the stock (which also blocks a reservation still on its
   * way), then refunds any approved payment for the order (known, or found in payment's records). Stock
   * first: if catalog says the reservation was already committed, the sale happened, and the order is
   * confirmed rather than refunded.
   */
  const compensate = (order: OrderRecord, reason: FailureReasonName, message: string, plan: CallPlan) =>
    traced("compensate", order, () => compensateStep(order, reason, message, plan));
  async function compensateStep(order: OrderRecord, reason: FailureReasonName, message: string, plan: CallPlan): Promise<OrderRecord> {
    if (plan.stopping?.aborted) return order; // recovery compensates from the step last written
    order = await step(order, "COMPENSATING", { failureReason: order.failureReason ?? reason, failureMessage: order.failureMessage || message });
    try {
      const released = await catalog.releaseStock({ reservationId: order._id }, plan.fresh()).then(
        () => true,
        (err) => {
          if (errorReason(err) === "RESERVATION_STATE") return false; // committed: the sale is final
          throw err;
        },
      );
      const { payments } = await payment.listPayments({ orderId: order._id, pageSize: 100 }, plan.fresh());
      const approved = payments.filter((p) => p.state === PaymentState.APPROVED || p.state === PaymentState.PARTIALLY_REFUNDED);
      if (!released && approved.length > 0) {
        log.warn({ orderId: order._id }, "compensation found the stock committed and the card charged: confirming the order");
        return step(order, "DONE", { state: "CONFIRMED", paymentId: approved[0].paymentId });
      }
      if (!released) log.error({ orderId: order._id }, "stock was committed but no payment was approved: inconsistent, needs a look");
      for (const p of approved) {
        await payment.refund(
          { idempotencyKey: `refund-${p.paymentId}`, paymentId: p.paymentId, reason: `order ${order._id} failed: ${order.failureReason}` },
          plan.fresh(),
        );
      }
      log.info({ orderId: order._id, reason: order.failureReason }, "order failed; compensated");
      return step(order, "DONE", { state: "FAILED" });
    } catch (err) {
      log.warn({ orderId: order._id, err: ConnectError.from(err).message }, "compensation incomplete; the recovery loop will finish it");
      return order;
    }
  }

  /** A step that may have happened: try it once more with a fresh deadline; the callee's idempotency gives the real outcome. */
  async function settleUncertain<T>(attempt: () => Promise<T>): Promise<T | Failure> {
    try {
      return await attempt();
    } catch (err) {
      return classify(err);
    }
  }

  /** Cannot tell what happened: keep the order PENDING (with why) for the recovery loop, which asks once nothing is in flight. */
  async function leavePending(order: OrderRecord, why: Failure): Promise<OrderRecord> {
    annotate({ "meshmart.order.left_pending": why.message });
    log.warn({ orderId: order._id, step: order.step, why: why.message }, "outcome unknown; order left PENDING for recovery");
    return orders.update(order._id, { failureReason: why.reason, failureMessage: why.message, ...(order.paymentId ? { paymentId: order.paymentId } : {}) });
  }

  /**
   * Recovery's commit of a paid order: a refusal (catalog released the stock meanwhile, so the sale cannot
   * complete) is undone now — refund and FAILED — instead of retried on every pass forever; an uncertain
   * failure leaves the order PENDING for the next pass.
   */
  async function commitOrUndo(order: OrderRecord, plan: CallPlan): Promise<OrderRecord> {
    const done = await settleUncertain(() => commit(order, plan.fresh()));
    if (!isFailure(done)) return done;
    if (!done.uncertain) return compensate(order, done.reason, done.message, plan);
    log.warn({ orderId: order._id, err: done.message }, "commit failed during recovery; will retry");
    return order;
  }

  const isFailure = (v: unknown): v is Failure => typeof v === "object" && v !== null && "reason" in v && "uncertain" in v;

  return {
    /** Runs the order forward from wherever it stands, with the caller's card. Ends CONFIRMED, FAILED, or PENDING for recovery. */
    async run(start: OrderRecord, card: Card, plan: CallPlan): Promise<OrderRecord> {
      let order = start;
      const stopping = () => plan.stopping?.aborted === true;
      try {
        if (order.step === "COMPENSATING") return compensate(order, order.failureReason ?? "ABANDONED", order.failureMessage, plan);
        if (order.step === "CREATED" || order.step === "RESERVING") order = await reserve(order, plan.call());
        if (order.step === "RESERVED" || order.step === "CHARGING") {
          const charged = await settleUncertain(() => charge(order, card, plan.call()));
          if (isFailure(charged) && charged.uncertain) {
            if (stopping()) return order; // CHARGING is written: recovery asks payment whether it charged
            const again = await settleUncertain(() => charge(order, card, plan.fresh()));
            if (isFailure(again)) return again.uncertain ? leavePending(order, again) : compensate(order, again.reason, again.message, plan);
            order = again;
          } else if (isFailure(charged)) {
            return compensate(order, charged.reason, charged.message, plan);
          } else {
            order = charged;
          }
        }
        if (order.step === "CHARGED" || order.step === "COMMITTING") {
          const done = await settleUncertain(() => commit(order, plan.call()));
          if (!isFailure(done)) return done;
          if (stopping()) return order; // recovery finds the charge and commits
          const again = await settleUncertain(() => commit(order, plan.fresh()));
          if (!isFailure(again)) return again;
          // Paid and held but not committed: recovery commits later; a refusal (the stock was released) is undone now.
          return again.uncertain ? leavePending(order, again) : compensate(order, again.reason, again.message, plan);
        }
        return order;
      } catch (err) {
        // Only reserve throws here (the other steps settle their errors): release undoes it whether or not the
        // reservation was made.
        const failure = classify(err);
        if (stopping()) return order; // CREATED is written: recovery releases whatever was reserved
        return compensate(await orders.get(order._id).then((o) => o ?? order), failure.reason, failure.message, plan);
      }
    },

    /**
     * Refunds what a FAILED order was charged after its compensation listed the payments (a Charge still
     * being written then: payment refuses one whose caller is gone, but not one already past that check).
     * Returns how many it refunded. Each refund has the compensation's idempotency key: never twice.
     */
    async refundLateCharges(order: OrderRecord, plan: CallPlan): Promise<number> {
      const { payments } = await payment.listPayments({ orderId: order._id, pageSize: 100 }, plan.fresh());
      const approved = payments.filter((p) => p.state === PaymentState.APPROVED || p.state === PaymentState.PARTIALLY_REFUNDED);
      for (const p of approved) {
        log.warn({ orderId: order._id, paymentId: p.paymentId }, "a charge landed after the order failed: refunding it");
        await payment.refund(
          { idempotencyKey: `refund-${p.paymentId}`, paymentId: p.paymentId, reason: `order ${order._id} failed: ${order.failureReason}` },
          plan.fresh(),
        );
      }
      return approved.length;
    },

    /** Finishes an interrupted order without the card (which orders never stores). */
    async recover(order: OrderRecord, plan: CallPlan): Promise<OrderRecord> {
      switch (order.step) {
        case "CREATED":
        case "RESERVING":
        case "RESERVED": // the charge was never sent: CHARGING is recorded before it
          return compensate(order, "ABANDONED", "interrupted before payment; stock released", plan);
        case "CHARGING": {
          // The charge may have happened: payment's records say.
          const { payments } = await payment.listPayments({ orderId: order._id, pageSize: 100 }, plan.fresh());
          const paid = payments.find((p) => p.state === PaymentState.APPROVED);
          if (!paid) return compensate(order, "ABANDONED", "interrupted during payment; no charge was made", plan);
          return commitOrUndo(await pass(order, "CHARGED", { paymentId: paid.paymentId }), plan);
        }
        case "CHARGED":
        case "COMMITTING":
          return commitOrUndo(order, plan);
        case "COMPENSATING":
          return compensate(order, order.failureReason ?? "ABANDONED", order.failureMessage, plan);
        default:
          return order;
      }
    },
  };
}
