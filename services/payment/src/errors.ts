// payment's domain errors, each with its gRPC code and a stable ErrorInfo reason. Messages name ids and
// amounts, never a card number.
import { Code } from "@connectrpc/connect";
import { DomainError, formatMoney } from "#kit";
import type { DeclineReasonName } from "./cards.js";

const DECLINE_TEXT: Record<DeclineReasonName, string> = {
  CARD_DECLINED: "the card was declined",
  INSUFFICIENT_FUNDS: "insufficient funds",
  EXPIRED_CARD: "the card has expired",
};

/** The card was refused; the reason is the decline reason itself, so clients branch on it directly. */
export class CardDeclinedError extends DomainError {
  constructor(paymentId: string, reason: DeclineReasonName) {
    super(Code.FailedPrecondition, reason, `payment "${paymentId}" declined: ${DECLINE_TEXT[reason]}`, { payment_id: paymentId });
  }
}

export class PaymentNotFoundError extends DomainError {
  constructor(id: string) {
    super(Code.NotFound, "PAYMENT_NOT_FOUND", `payment "${id}" not found`, { payment_id: id });
  }
}

export class IdempotencyKeyReusedError extends DomainError {
  constructor(key: string) {
    super(Code.AlreadyExists, "IDEMPOTENCY_KEY_REUSED", `idempotency key "${key}" was already used for a different request`, { idempotency_key: key });
  }
}

export class RefundExceedsPaymentError extends DomainError {
  constructor(paymentId: string, leftCents: number, wantedCents: number, currency: string) {
    super(
      Code.FailedPrecondition,
      "REFUND_EXCEEDS_PAYMENT",
      `payment "${paymentId}": ${formatMoney(leftCents, currency)} left to refund, ${formatMoney(wantedCents, currency)} wanted`,
      { payment_id: paymentId, left_cents: String(leftCents), wanted_cents: String(wantedCents) },
    );
  }
}

export class PaymentNotRefundableError extends DomainError {
  constructor(paymentId: string, state: string) {
    super(Code.FailedPrecondition, "PAYMENT_NOT_REFUNDABLE", `payment "${paymentId}" is ${state}; nothing to refund`, { payment_id: paymentId, state });
  }
}
