// Stock reservations: reserve, release, commit, each idempotent per reservation id and safe to repeat
// after a crash. There are no transactions (FerretDB v1 has none), so: calls for one reservation id run
// one at a time under a lease lock; each product records which reservations hold its stock
// (products.holds), so taking or giving back twice is a no-op and a repeated call finishes whatever an
// interrupted one left half-done; stock changes of one product run under that product's lock.
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
  const bySku = (sku: string) => `sku:${sku}`;
  const exclusive = <T>(id: string, fn: () => Promise<T>) => locks.withLock(`reservation:${id}`, fn);
  const give = (sku: string, qty: number, id: string) => locks.withLock(bySku(sku), () => products.give(sku, qty, id));

  async function giveBackAll(id: string, lines: { sku: string; quantity: number }[] | undefined) {
    for (const line of lines ?? []) await give(line.sku, line.quantity, id); // lean reads may omit an empty array
  }

  /** Takes every line's stock for the reservation, or none: on a shortage what was taken goes back. */
  async function takeAll(id: string, lines: ReservedLine[]) {
    const taken: ReservedLine[] = [];
    for (const line of lines) {
      const result = await locks.withLock(bySku(line.sku), () => products.take(line.sku, line.quantity, id));
      if (result === "short") {
        for (const t of taken) await give(t.sku, t.quantity, id);
        const left = (await products.get(line.sku))?.stock ?? 0;
        throw new OutOfStockError(line.sku, left, line.quantity);
      }
      taken.push(line);
    }
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
        // The insert comes first and a read only when it collides: a new id (nearly every call) costs no lookup.
        let record: ReservationRecord | undefined;
        const found = await products.getMany(items.map((i) => i.sku));
        const product = new Map(found.map((p) => [p._id, p]));
        const missing = items.find((i) => !product.has(i.sku));
        if (!missing) {
          const lines: ReservedLine[] = items.map((i) => {
            const p = product.get(i.sku) as (typeof found)[number];
            return { sku: i.sku, name: p.name, quantity: i.quantity, unitPriceCents: p.priceCents };
          });
          const totalCents = lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);
          // Written before any stock moves, so a crash leaves a record that a repeat or a release can finish.
          record = await Reservation.create({ _id: id, state: "RESERVING", requestHash, items: lines, totalCents, currency: found[0]?.currency ?? "USD" }).then(
            (r) => r.toObject(),
            (err) => {
              if ((err as { code?: number }).code !== 11000) throw err;
              return undefined; // made before: read below
            },
          );
        }
        if (!record) {
          const existing = await Reservation.findById(id).lean<ReservationRecord>();
          if (!existing) {
            if (missing) throw new ProductNotFoundError(missing.sku);
            throw new ConnectError(`reservation "${id}" changed meanwhile; retry`, Code.Aborted); // gone since the insert collided
          }
          if (existing.state === "RELEASED" && existing.requestHash === "") throw new ReservationStateError(id, "RELEASED", "reserve"); // released before it was made
          if (existing.requestHash !== requestHash) throw new ReservationConflictError(id);
          if (existing.state !== "RESERVING") return existing; // a repeat gets the first answer
          // RESERVING: an earlier call was interrupted; finish it (taking is idempotent per reservation).
          record = existing;
        }
        try {
          await takeAll(id, record.items);
        } catch (err) {
          if (err instanceof OutOfStockError) await Reservation.deleteOne({ _id: id, state: "RESERVING" }); // a retry may find new stock
          throw err;
        }
        return (await Reservation.findOneAndUpdate({ _id: id }, { $set: { state: "RESERVED" } }, { new: true }).lean<ReservationRecord>()) as ReservationRecord;
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
        for (const line of existing.items ?? []) await locks.withLock(bySku(line.sku), () => products.settle(line.sku, id)); // idempotent
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
