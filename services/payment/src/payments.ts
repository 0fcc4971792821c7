// Payments: charge a card, refund it, read it back, in payment's own database. There are no transactions
// (FerretDB v1 has none, and applies conditional updates as read-modify-write), so idempotency rests on
// _ids derived from the idempotency key: a charge is two inserts keyed that way (no lock needed), and a
// refund, a read-check-write, runs under a lease lock per payment. Writes go payment first, ledger second;
// a repeated call finishes whatever an interrupted one left half-done.
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Connection, type Model, Schema } from "mongoose";
import { invalidArgument, type Locks } from "#kit";
import { authorize, type CardDetails, type DeclineReasonName } from "./cards.js";
import { CardDeclinedError, IdempotencyKeyReusedError, PaymentNotFoundError, PaymentNotRefundableError, RefundExceedsPaymentError } from "./errors.js";
import { chargeEntryId, type LedgerTotals, ledgerBook, refundEntryId } from "./ledger.js";

export type PaymentStateName = "APPROVED" | "DECLINED" | "PARTIALLY_REFUNDED" | "REFUNDED";

export interface PaymentRecord {
  _id: string; // "pay_" + hash of the idempotency key: one key, one payment, even across processes
  orderId: string;
  idempotencyKey: string;
  /** Hash of order, amount, currency and card (last four, expiry): tells a repeat from a reuse of the key. */
  requestHash: string;
  amountCents: number;
  currency: string;
  state: PaymentStateName;
  declineReason?: DeclineReasonName;
  cardLast4: string; // all that is kept of the card
  refundedCents: number;
  /** Creation order finer than createdAt's milliseconds, for "oldest first" paging. */
  seq: number;
  createdAt: Date;
  updatedAt: Date;
}

const paymentRecord = new Schema<PaymentRecord>(
  {
    _id: String,
    orderId: { type: String, required: true },
    idempotencyKey: { type: String, required: true },
    requestHash: { type: String, required: true },
    amountCents: { type: Number, required: true, min: 1 },
    currency: { type: String, required: true },
    state: { type: String, required: true, enum: ["APPROVED", "DECLINED", "PARTIALLY_REFUNDED", "REFUNDED"] },
    declineReason: { type: String, enum: ["CARD_DECLINED", "INSUFFICIENT_FUNDS", "EXPIRED_CARD"] },
    cardLast4: { type: String, required: true },
    refundedCents: { type: Number, default: 0 },
    seq: { type: Number, required: true },
  },
  { versionKey: false, timestamps: true },
);
paymentRecord.index({ orderId: 1, seq: 1 });

export interface ChargeInput {
  idempotencyKey: string;
  orderId: string;
  cents: number;
  currency: string;
  card: CardDetails;
}

export interface RefundInput {
  idempotencyKey: string;
  paymentId: string;
  /** Unset: everything not yet refunded. */
  cents?: number;
  currency?: string;
  reason: string;
}

const hashOf = (parts: (string | number)[]) => createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 32);
export const paymentIdFor = (key: string) => `pay_${hashOf(["payment", key]).slice(0, 24)}`;

let lastSeq = 0;
/** Date.now() in microseconds, never repeating within this process. */
const nextSeq = () => (lastSeq = Math.max(Date.now() * 1000, lastSeq + 1));

function modelOf(db: Connection): Model<PaymentRecord> {
  return (db.models.Payment as Model<PaymentRecord> | undefined) ?? db.model<PaymentRecord>("Payment", paymentRecord);
}

/** Read-only audit of one order's ledger, for tests and tools holding their own connection to payment's database. */
export function ledgerTotals(db: Connection, orderId: string): Promise<LedgerTotals> {
  return ledgerBook(db).totals(orderId);
}

export type PaymentStore = ReturnType<typeof paymentStore>;

export function paymentStore(db: Connection, locks: Locks, now: () => Date = () => new Date()) {
  const Payment = modelOf(db);
  // A charge's insert goes through the driver's collection, as a complete typed record with the timestamps
  // mongoose would add: a mongoose document per insert (build, cast, validate, save) costs more CPU than the command.
  const raw = db.collection<PaymentRecord>(Payment.collection.collectionName);
  const ledger = ledgerBook(db);
  const get = (id: string) => Payment.findById(id).lean<PaymentRecord>();

  /** Inserts a new payment; when another process inserted it first, returns theirs. */
  async function insertOrFind(fields: Omit<PaymentRecord, "createdAt" | "updatedAt">): Promise<PaymentRecord> {
    const now = new Date();
    const record: PaymentRecord = { ...fields, createdAt: now, updatedAt: now };
    try {
      await raw.insertOne(record);
      return record;
    } catch (err) {
      if ((err as { code?: number }).code !== 11000) throw err;
      return (await get(record._id)) as PaymentRecord;
    }
  }

  /** Brings the payment's refunded amount and state in line with its ledger entries. */
  async function settle(id: string): Promise<PaymentRecord> {
    const p = await get(id);
    if (!p) throw new PaymentNotFoundError(id);
    const refundedCents = await ledger.refunded(id);
    const state: PaymentStateName = refundedCents === 0 ? p.state : refundedCents < p.amountCents ? "PARTIALLY_REFUNDED" : "REFUNDED";
    if (refundedCents === p.refundedCents && state === p.state) return p; // a repeat leaves update_time alone
    return (await Payment.findOneAndUpdate({ _id: id }, { $set: { refundedCents, state } }, { new: true }).lean<PaymentRecord>()) as PaymentRecord;
  }

  return {
    get,
    ledgerTotals: (orderId: string) => ledger.totals(orderId),

    /** One page of an order's payments, oldest first, after `after`; one extra row says whether more follow. */
    page: (orderId: string, limit: number, after?: { seq: number; id: string }) =>
      Payment.find({ orderId, ...(after ? { $or: [{ seq: { $gt: after.seq } }, { seq: after.seq, _id: { $gt: after.id } }] } : {}) })
        .sort({ seq: 1, _id: 1 })
        .limit(limit + 1)
        .lean<PaymentRecord[]>(),

    /** Charges once per idempotency key. A decline is stored too, and a repeat gets the same decline. */
    async charge(input: ChargeInput, caller?: AbortSignal): Promise<PaymentRecord> {
      const { idempotencyKey: key, orderId, cents, currency } = input;
      const auth = authorize(input.card, now()); // a Luhn failure is thrown before anything is written
      // The card as the request shows it, without the number: even a hash of a full card number can be
      // reversed by trying the few numbers that fit a known prefix and last four.
      const requestHash = hashOf(["charge", orderId, cents, currency, auth.last4, input.card.expMonth, input.card.expYear]);
      // No lock: the payment's _id comes from the key, so the insert alone decides which of two racing calls
      // charges (the other reads what it stored), and the ledger entry's _id does the same for the entry.
      const id = paymentIdFor(key);
      const record = {
        _id: id,
        orderId,
        idempotencyKey: key,
        requestHash,
        amountCents: cents,
        currency,
        state: auth.decline ? ("DECLINED" as const) : ("APPROVED" as const),
        ...(auth.decline ? { declineReason: auth.decline } : {}),
        cardLast4: auth.last4,
        refundedCents: 0,
        seq: nextSeq(),
      };
      // A charge whose caller has gone (deadline passed, cancelled) is not made: the caller may already have
      // given up and compensated, and a charge landing after that would never be refunded.
      const p = caller?.aborted ? await get(id) : await insertOrFind(record);
      if (!p) throw new ConnectError("the caller is gone (deadline passed or cancelled): nothing was charged", Code.DeadlineExceeded);
      if (p.requestHash !== requestHash) throw new IdempotencyKeyReusedError(key);
      if (p.state === "DECLINED") throw new CardDeclinedError(p._id, p.declineReason ?? "CARD_DECLINED");
      // Also finishes a charge interrupted between its payment and its ledger entry.
      await ledger.record({
        _id: chargeEntryId(key),
        kind: "CHARGE",
        paymentId: id,
        orderId,
        amountCents: cents,
        currency,
        idempotencyKey: key,
        requestHash,
        reason: "",
      });
      return p;
    },

    /**
     * Writes what interrupted calls left out, for payments created before `before` (older than any Charge
     * still running): the CHARGE entry of a payment stored without one (a crash between the two inserts;
     * orders' recovery then finds the payment through ListPayments and never repeats the Charge), and a
     * payment's refunded amount and state when they lag its REFUND entries (a crash between the entry and
     * the payment's update). Returns what it found missing.
     */
    async reconcile(before: Date): Promise<{ chargeEntries: number; refundsSettled: number }> {
      const [payments, entries] = await Promise.all([
        Payment.find({ state: { $ne: "DECLINED" }, createdAt: { $lt: before } }).lean<PaymentRecord[]>(),
        ledger.all(),
      ]);
      const ids = new Set(entries.map((e) => e._id));
      const refunded = new Map<string, number>();
      for (const e of entries) if (e.kind === "REFUND") refunded.set(e.paymentId, (refunded.get(e.paymentId) ?? 0) + e.amountCents);
      let chargeEntries = 0;
      let refundsSettled = 0;
      for (const p of payments) {
        if (!ids.has(chargeEntryId(p.idempotencyKey))) {
          await ledger.record({
            _id: chargeEntryId(p.idempotencyKey),
            kind: "CHARGE",
            paymentId: p._id,
            orderId: p.orderId,
            amountCents: p.amountCents,
            currency: p.currency,
            idempotencyKey: p.idempotencyKey,
            requestHash: p.requestHash,
            reason: "",
          });
          chargeEntries++;
        }
        // Under the payment's lock, as Refund settles: a refund in progress finishes first.
        if ((refunded.get(p._id) ?? 0) !== (p.refundedCents ?? 0)) {
          await locks.withLock(`payment:${p._id}`, () => settle(p._id));
          refundsSettled++;
        }
      }
      return { chargeEntries, refundsSettled };
    },

    /** Refunds once per idempotency key; never more than the payment has left. */
    async refund(input: RefundInput): Promise<PaymentRecord> {
      const { idempotencyKey: key, paymentId } = input;
      const requestHash = hashOf(["refund", paymentId, input.cents ?? "rest", input.currency ?? ""]);
      return locks.withLock(`payment:${paymentId}`, async () => {
        const prior = await ledger.get(refundEntryId(key));
        if (prior) {
          if (prior.requestHash !== requestHash) throw new IdempotencyKeyReusedError(key);
          return settle(paymentId); // a repeat: the payment as it is now, finishing an interrupted refund
        }
        const p = await get(paymentId);
        if (!p) throw new PaymentNotFoundError(paymentId);
        if (p.state === "DECLINED") throw new PaymentNotRefundableError(paymentId, "DECLINED");
        if (input.currency !== undefined && input.currency !== p.currency)
          throw invalidArgument([{ field: "amount.currency_code", description: `must be the payment's currency, ${p.currency}` }]);
        // From the ledger, not p.refundedCents: an interrupted refund may not have reached the payment yet.
        const left = p.amountCents - (await ledger.refunded(paymentId));
        if (left <= 0) throw new PaymentNotRefundableError(paymentId, "REFUNDED");
        const cents = input.cents ?? left;
        if (cents > left) throw new RefundExceedsPaymentError(paymentId, left, cents, p.currency);
        const entry = await ledger.record({
          _id: refundEntryId(key),
          kind: "REFUND",
          paymentId,
          orderId: p.orderId,
          amountCents: cents,
          currency: p.currency,
          idempotencyKey: key,
          requestHash,
          reason: input.reason,
        });
        // The same key may have raced in for another payment (that call held another payment's lock).
        if (entry.requestHash !== requestHash) throw new IdempotencyKeyReusedError(key);
        return settle(paymentId);
      });
    },
  };
}
