// Stock reservations: reserve, release, commit, each idempotent per reservation id and safe to repeat
// after a crash. There are no transactions (FerretDB v1 has none), so: calls for one reservation id run
// one at a time under a lease lock; each product records which reservations hold its stock
// (products.holds), so taking or giving back twice is a no-op and a repeated call finishes whatever an
// interrupted one left half-done. A stock change is one conditional update of one product document, which
// the database applies atomically (MongoDB does; devdb serialises such commands to match), so products
// need no lock of their own.
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Connection, Schema } from "mongoose";
import type { Locks } from "#kit";
import {
  DuplicateSkuError,
  OutOfStockError,
  ProductNotFoundError,
  ReservationConflictError,
  ReservationNotFoundError,
  ReservationStateError,
} from "./errors.js";
import type { ProductStore } from "./products.js";

export type ReservationStateName = "RESERVING" | "RESERVED" | "RELEASED" | "COMMITTED";

export interface ReservedLine {
  sku: string;
  name: string;
  quantity: number;
  unitPriceCents: number;
}

export interface ReservationRecord {
  _id: string;
  state: ReservationStateName;
  /** Hash of the requested items: the same id with other items is a conflict, not a repeat. */
  requestHash: string;
  items: ReservedLine[];
  totalCents: number;
  currency: string;
  createdAt: Date;
  updatedAt: Date;
}

const reservationRecord = new Schema<ReservationRecord>(
  {
    _id: String,
    state: { type: String, required: true, enum: ["RESERVING", "RESERVED", "RELEASED", "COMMITTED"] },
    requestHash: { type: String, default: "" },
    items: { type: [{ _id: false, sku: String, name: String, quantity: Number, unitPriceCents: Number }], default: [] },
    totalCents: { type: Number, default: 0 },
    currency: { type: String, default: "USD" },
  },
  { versionKey: false, timestamps: true },
);

export interface LineRequest {
  sku: string;
  quantity: number;
}

function hashOf(items: LineRequest[]): string {
  const canonical = [...items].sort((a, b) => a.sku.localeCompare(b.sku)).map((i) => `${i.sku}:${i.quantity}`);
  return createHash("sha256").update(canonical.join(",")).digest("hex").slice(0, 32);
}

export type ReservationBook = ReturnType<typeof reservationBook>;

export function reservationBook(db: Connection, products: ProductStore, locks: Locks) {
  const Reservation = db.model<ReservationRecord>("Reservation", reservationRecord);
  const exclusive = <T>(id: string, fn: () => Promise<T>) => locks.withLock(`reservation:${id}`, fn);

  async function giveBackAll(id: string, lines: { sku: string; quantity: number }[] | undefined) {
    for (const line of lines ?? []) await products.give(line.sku, line.quantity, id); // lean reads may omit an empty array
  }

  /**
   * Takes every line's stock for the reservation, or none: on a shortage or an unknown SKU what was taken goes
   * back. Answers the lines priced from the products as taken.
   */
  async function takeAll(id: string, lines: LineRequest[]): Promise<{ lines: ReservedLine[]; currency: string }> {
    const taken: ReservedLine[] = [];
    let currency = "USD";
    for (const line of lines) {
      const result = await products.take(line.sku, line.quantity, id);
      if (result === "missing" || "short" in result) {
        await giveBackAll(id, taken);
        if (result === "missing") throw new ProductNotFoundError(line.sku);
        throw new OutOfStockError(line.sku, result.short, line.quantity);
      }
      const p = result.taken;
      if (taken.length === 0) currency = p.currency;
      taken.push({ sku: line.sku, name: p.name, quantity: line.quantity, unitPriceCents: p.priceCents });
    }
    return { lines: taken, currency };
  }

  return {
    get: async (id: string) => {
      const r = await Reservation.findById(id).lean<ReservationRecord>();
      if (!r || r.state === "RESERVING") throw new ReservationNotFoundError(id);
      return r;
    },

    async reserve(id: string, items: LineRequest[]): Promise<ReservationRecord> {
      const seen = new Set<string>();
      for (const i of items) {
        if (seen.has(i.sku)) throw new DuplicateSkuError(i.sku);
        seen.add(i.sku);
      }
      const requestHash = hashOf(items);
      return exclusive(id, async () => {
        // The insert comes first, before any stock moves, so a crash leaves a record that a repeat or a release
        // can finish; a read only when it collides (a new id, nearly every call, costs no lookup). Names and
        // prices are filled in from the stock takes' answers, so the products are not read beforehand.
        const requested: ReservedLine[] = items.map((i) => ({ sku: i.sku, name: "", quantity: i.quantity, unitPriceCents: 0 }));
        let record: ReservationRecord | undefined = await Reservation.create({ _id: id, state: "RESERVING", requestHash, items: requested }).then(
          (r) => r.toObject(),
          (err) => {
            if ((err as { code?: number }).code !== 11000) throw err;
            return undefined; // made before: read below
          },
        );
        if (!record) {
          const existing = await Reservation.findById(id).lean<ReservationRecord>();
          if (!existing) throw new ConnectError(`reservation "${id}" changed meanwhile; retry`, Code.Aborted); // gone since the insert collided
          if (existing.state === "RELEASED" && existing.requestHash === "") throw new ReservationStateError(id, "RELEASED", "reserve"); // released before it was made
          if (existing.requestHash !== requestHash) throw new ReservationConflictError(id);
          if (existing.state !== "RESERVING") return existing; // a repeat gets the first answer
          // RESERVING: an earlier call was interrupted; finish it (taking is idempotent per reservation).
          record = existing;
        }
        let taken: Awaited<ReturnType<typeof takeAll>>;
        try {
          taken = await takeAll(id, record.items);
        } catch (err) {
          // Nothing is held now (takeAll gave back what it took) and the lock is ours: the id is free for a retry.
          if (err instanceof OutOfStockError || err instanceof ProductNotFoundError) await Reservation.deleteOne({ _id: id });
          throw err;
        }
        const totalCents = taken.lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);
        return (await Reservation.findOneAndUpdate(
          { _id: id },
          { $set: { state: "RESERVED", items: taken.lines, totalCents, currency: taken.currency } },
          { new: true },
        ).lean<ReservationRecord>()) as ReservationRecord;
      });
    },

    async release(id: string): Promise<ReservationRecord> {
      return exclusive(id, async () => {
        const existing = await Reservation.findById(id).lean<ReservationRecord>();
        if (existing?.state === "COMMITTED") throw new ReservationStateError(id, "COMMITTED", "release");
        if (!existing) {
          // Unknown id: leave a tombstone, so a ReserveStock arriving late (a retry, a slow network) takes nothing.
          return (await Reservation.create({ _id: id, state: "RELEASED", requestHash: "", items: [], totalCents: 0 })).toObject();
        }
        await giveBackAll(id, existing.items); // also finishes a release interrupted before the state change
        if (existing.state === "RELEASED") return existing;
        return (await Reservation.findOneAndUpdate({ _id: id }, { $set: { state: "RELEASED" } }, { new: true }).lean<ReservationRecord>()) as ReservationRecord;
      });
    },

    async commit(id: string): Promise<ReservationRecord> {
      return exclusive(id, async () => {
        const existing = await Reservation.findById(id).lean<ReservationRecord>();
        if (!existing) throw new ReservationNotFoundError(id);
        if (existing.state !== "RESERVED" && existing.state !== "COMMITTED") throw new ReservationStateError(id, existing.state, "commit");
        for (const line of existing.items ?? []) await products.settle(line.sku, id); // idempotent
        if (existing.state === "COMMITTED") return existing;
        return (await Reservation.findOneAndUpdate(
          { _id: id },
          { $set: { state: "COMMITTED" } },
          { new: true },
        ).lean<ReservationRecord>()) as ReservationRecord;
      });
    },
  };
}
