// The PaymentService RPCs: thin handlers over the payment store, converting money and states at the edge.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Money } from "#gen/meshmart/common/v1/money_pb.js";
import { DeclineReason, type PaymentSchema, type PaymentService, PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { decodePageToken, encodePageToken, invalidArgument, money, pageSize, toCents } from "#kit";
import { PaymentNotFoundError } from "./errors.js";
import type { PaymentRecord, PaymentStore } from "./payments.js";

export interface Deps {
  payments: PaymentStore;
}

/** A positive whole number of cents, or INVALID_ARGUMENT naming `field`. */
function positiveCents(m: Money, field: string): number {
  const cents = toCents(m);
  if (cents === undefined) throw invalidArgument([{ field, description: "must be a whole number of cents" }]);
  if (cents <= 0) throw invalidArgument([{ field, description: "must be more than zero" }]);
  return cents;
}

export function paymentService({ payments }: Deps): ServiceImpl<typeof PaymentService> {
  return {
    async charge({ idempotencyKey, orderId, amount, card }, ctx) {
      // amount and card are required by the contract; the kit's validation has rejected calls without them.
      const cents = positiveCents(amount!, "amount");
      const { number, expMonth, expYear } = card!;
      const payment = await payments.charge(
        { idempotencyKey, orderId, cents, currency: amount!.currencyCode, card: { number, expMonth, expYear } },
        ctx.signal,
      );
      return { payment: paymentToProto(payment) };
    },

    async refund({ idempotencyKey, paymentId, amount, reason }) {
      const requested = amount ? { cents: positiveCents(amount, "amount"), currency: amount.currencyCode } : {};
      return { payment: paymentToProto(await payments.refund({ idempotencyKey, paymentId, reason, ...requested })) };
    },

    async getPayment({ paymentId }) {
      const p = await payments.get(paymentId);
      if (!p) throw new PaymentNotFoundError(paymentId);
      return { payment: paymentToProto(p) };
    },

    async listPayments({ orderId, pageSize: requested, pageToken }) {
      const size = pageSize(requested);
      const after = decodePageToken(pageToken, { seq: "number", id: "string" });
      const rows = await payments.page(orderId, size, after);
      const last = rows[size - 1];
      return {
        payments: rows.slice(0, size).map(paymentToProto),
        nextPageToken: rows.length > size ? encodePageToken({ seq: last.seq, id: last._id }) : "",
      };
    },
  };
}

const STATES = {
  APPROVED: PaymentState.APPROVED,
  DECLINED: PaymentState.DECLINED,
  PARTIALLY_REFUNDED: PaymentState.PARTIALLY_REFUNDED,
  REFUNDED: PaymentState.REFUNDED,
} as const;

const DECLINES = {
  CARD_DECLINED: DeclineReason.CARD_DECLINED,
  INSUFFICIENT_FUNDS: DeclineReason.INSUFFICIENT_FUNDS,
  EXPIRED_CARD: DeclineReason.EXPIRED_CARD,
} as const;

export function paymentToProto(p: PaymentRecord): MessageInitShape<typeof PaymentSchema> {
  return {
    paymentId: p._id,
    orderId: p.orderId,
    amount: money(p.amountCents, p.currency),
    state: STATES[p.state],
    declineReason: p.declineReason ? DECLINES[p.declineReason] : DeclineReason.UNSPECIFIED,
    cardLast4: p.cardLast4,
    refundedAmount: money(p.refundedCents ?? 0, p.currency),
    createTime: timestampFromDate(p.createdAt),
    updateTime: timestampFromDate(p.updatedAt),
  };
}
