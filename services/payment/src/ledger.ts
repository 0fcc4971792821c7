// The ledger: one append-only entry per money movement (a charge or a refund). An entry's _id is derived
// from the call's idempotency key, so a retried call, even one racing in from another process, can never
// write a second entry: a duplicate _id fails atomically on every Mongo-wire server.
import { type Connection, type Model, Schema } from "mongoose";

export type LedgerKind = "CHARGE" | "REFUND";

export interface LedgerEntry {
  _id: string; // "charge:<key>" or "refund:<key>"
  kind: LedgerKind;
  paymentId: string;
  orderId: string;
  amountCents: number; // integer minor units, always positive; kind says which way the money went
  currency: string;
  idempotencyKey: string;
  /** Hash of the request that wrote it: the same key with another request is a reuse, not a repeat. */
  requestHash: string;
  reason: string;
  createdAt: Date;
}

const ledgerEntry = new Schema<LedgerEntry>(
  {
    _id: String,
    kind: { type: String, required: true, enum: ["CHARGE", "REFUND"] },
    paymentId: { type: String, required: true },
    orderId: { type: String, required: true },
    amountCents: { type: Number, required: true, min: 1 },
    currency: { type: String, required: true },
    idempotencyKey: { type: String, required: true },
    requestHash: { type: String, required: true },
    reason: { type: String, default: "" },
  },
  { versionKey: false, timestamps: { createdAt: true, updatedAt: false } },
);
// The lookups below, each with its filter and sort (refunds of a payment; an order's entries, oldest first).
// MongoDB serves them from these; FerretDB v1 (devdb) scans for any filter but a lone _id (see orders.ts).
ledgerEntry.index({ paymentId: 1, kind: 1 });
ledgerEntry.index({ orderId: 1, createdAt: 1, _id: 1 });

export const chargeEntryId = (key: string) => `charge:${key}`;
export const refundEntryId = (key: string) => `refund:${key}`;

export interface LedgerTotals {
  /** Per currency: amounts in different currencies are never added up. */
  byCurrency: Record<string, { chargedCents: number; refundedCents: number }>;
  entries: LedgerEntry[];
}

export type LedgerBook = ReturnType<typeof ledgerBook>;

export function ledgerBook(db: Connection) {
  // Reuses the model when a second reader (an audit in a test) binds the same connection.
  const Ledger = (db.models.LedgerEntry as Model<LedgerEntry> | undefined) ?? db.model<LedgerEntry>("LedgerEntry", ledgerEntry, "ledger");
  const raw = db.collection<LedgerEntry>(Ledger.collection.collectionName);
  const sum = (entries: LedgerEntry[], kind: LedgerKind) => entries.filter((e) => e.kind === kind).reduce((s, e) => s + e.amountCents, 0);

  return {
    get: (id: string) => Ledger.findById(id).lean<LedgerEntry>(),

    /** Writes the entry once; returns what is stored under its _id (the earlier entry when it exists already). */
    async record(fields: Omit<LedgerEntry, "createdAt">): Promise<LedgerEntry> {
      // Through the driver's collection, with the creation time mongoose would add: one per charge, and a
      // mongoose document per insert costs more CPU than the command.
      const entry: LedgerEntry = { ...fields, createdAt: new Date() };
      try {
        await raw.insertOne(entry);
        return entry;
      } catch (err) {
        if ((err as { code?: number }).code !== 11000) throw err;
        return (await Ledger.findById(fields._id).lean<LedgerEntry>()) as LedgerEntry;
      }
    },

    /** Cents refunded so far on a payment: the ledger is the truth, the payment's refundedCents a copy. */
    refunded: async (paymentId: string) => sum(await Ledger.find({ paymentId, kind: "REFUND" }).lean<LedgerEntry[]>(), "REFUND"),

    /** Read-only audit of one order: what was charged and refunded per currency, and every entry, oldest first. */
    async totals(orderId: string): Promise<LedgerTotals> {
      const entries = await Ledger.find({ orderId }).sort({ createdAt: 1, _id: 1 }).lean<LedgerEntry[]>();
      const currencies = [...new Set(entries.map((e) => e.currency))].sort();
      const byCurrency = Object.fromEntries(
        currencies.map((c) => {
          const mine = entries.filter((e) => e.currency === c);
          return [c, { chargedCents: sum(mine, "CHARGE"), refundedCents: sum(mine, "REFUND") }];
        }),
      );
      return { byCurrency, entries };
    },

    /** Every entry's identity and amount (no reasons or hashes), for the reconcile pass. */
    all: () => Ledger.find({}, { _id: 1, kind: 1, paymentId: 1, amountCents: 1 }).lean<Pick<LedgerEntry, "_id" | "kind" | "paymentId" | "amountCents">[]>(),
  };
}
