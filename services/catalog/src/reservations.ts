// Stock reservations: reserve, release, commit, each idempotent per reservation id and safe to repeat
// after a crash. There are no transactions (FerretDB v1 has none) and no locks: each step is a few
// single-document commands on a lone _id (the only filter devdb finds by index), each applied atomically
// (MongoDB does; devdb serialises such commands to match), ordered so that racing calls end consistent:
// - Each product records which reservations hold its stock (products.holds), so taking or giving back twice is
//   a no-op and a repeated call finishes whatever an interrupted one left half-done.
// - The insert of the reservation decides which ReserveStock makes it; a release that came first leaves a
//   tombstone there, so a late ReserveStock takes nothing.
// - Commit and release race by adding their outcome to the reservation's `outcome` list in one atomic
//   $addToSet: the first entry is the outcome, whoever comes second learns it from the same answer (the
//   release that lost takes nothing back; the commit that lost is refused).
// - ReserveStock records RESERVED with the same kind of answer: a release that came in while it was taking
//   stock (and gave back what it found taken) shows there, and what was taken after is given back.
// - One ReserveStock at a time per id: the insert carries a lease (`leaseUntil`, the call's deadline, bounded).
//   Tries of one id do overlap (a mesh retry after its per-try timeout while the first still runs; a client
//   retry after its deadline), and since stock is held by reservation id, not by try, one try's give-back on a
//   shortage could undo another's takes (a RESERVED reservation missing a line). A try that meets a RESERVING
//   reservation under a live lease waits for it (polling the lone _id, within its own deadline), then answers as
//   the first did, or reserves anew when the first was refused and freed the id. A lease that ran out (the
//   first try died or overran) is taken over by one try (a compare-and-set on updatedAt), which finishes the
//   reservation as a repeat always did. The lease holder sends no stock or reservation command after its
//   lease, and others wait LEASE_GRACE_MS beyond it, for a command sent just before to land. No command is
//   added for a call that meets no other try.
// Over 300 lines on purpose: reserve, release and commit race one another on the same records, and each
// step's order only reads right beside the others'.
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Connection, Schema } from "mongoose";
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
type Outcome = "RELEASED" | "COMMITTED";

export interface ReservedLine {
  sku: string;
  name: string;
  quantity: number;
  unitPriceCents: number;
}

export interface ReservationRecord {
  _id: string;
  /**
   * How far ReserveStock got (RESERVING, RESERVED); RELEASED for a release's tombstone. Records written before
   * outcomes were kept apart say RELEASED or COMMITTED here. What callers see is stateOf(record).
   */
  state: ReservationStateName;
  /** Commit's and release's claims, in the order they came: the first one is the reservation's outcome. */
  outcome?: Outcome[];
  /** Until when the ReserveStock that inserted (or took over) a RESERVING reservation runs it alone. */
  leaseUntil?: Date;
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
    outcome: { type: [String], default: undefined },
    leaseUntil: { type: Date },
  },
  { versionKey: false, timestamps: true },
);

/** The state callers see: the outcome once there is one (or a final state written before outcomes were kept apart). */
export function stateOf(r: ReservationRecord): ReservationStateName {
  if (r.state === "RELEASED" || r.state === "COMMITTED") return r.state;
  return r.outcome?.[0] ?? r.state;
}

const view = (r: ReservationRecord): ReservationRecord => ({ ...r, state: stateOf(r) });
const isDuplicate = (err: unknown) => (err as { code?: number }).code === 11000;

export interface LineRequest {
  sku: string;
  quantity: number;
}

function hashOf(items: LineRequest[]): string {
  const canonical = [...items].sort((a, b) => a.sku.localeCompare(b.sku)).map((i) => `${i.sku}:${i.quantity}`);
  return createHash("sha256").update(canonical.join(",")).digest("hex").slice(0, 32);
}

/** The ReserveStock call's time: its deadline (ms left) and the signal that ends it. */
export interface CallTime {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A reservation's lease: the call's deadline, this long when it has none, never longer than the maximum. */
const LEASE_DEFAULT_MS = 5_000;
const LEASE_MAX_MS = 30_000;
/** How long past a lease others still wait: a command its holder sent just before it ran out may land meanwhile. */
const LEASE_GRACE_MS = 1_000;

export interface BookHooks {
  /** Test hook: a ReserveStock found another try of its id at work and waits for it. */
  waiting?: (id: string) => void;
}

const busy = (id: string) => new ConnectError(`reservation "${id}" is being made by another call; retry`, Code.Aborted);

export type ReservationBook = ReturnType<typeof reservationBook>;

export function reservationBook(db: Connection, products: ProductStore, hooks: BookHooks = {}) {
  const Reservation = db.model<ReservationRecord>("Reservation", reservationRecord);
  // Writes through the driver's collection, as complete typed records with the timestamps mongoose would
  // add: a mongoose document per insert and a cast per update cost more CPU than the command itself.
  const raw = db.collection<ReservationRecord>(Reservation.collection.collectionName);

  async function giveBackAll(id: string, lines: { sku: string; quantity: number }[] | undefined) {
    for (const line of lines ?? []) await products.give(line.sku, line.quantity, id); // lean reads may omit an empty array
  }

  /**
   * Takes every line's stock for the reservation, or none: on a shortage or an unknown SKU what was taken goes
   * back. Answers the lines priced from the products as taken.
   */
  async function takeAll(id: string, lines: LineRequest[], inLease: () => void): Promise<{ lines: ReservedLine[]; currency: string }> {
    const taken: ReservedLine[] = [];
    let currency = "USD";
    for (const line of lines) {
      inLease();
      const result = await products.take(line.sku, line.quantity, id);
      if (result === "missing" || "short" in result) {
        for (const t of taken) {
          inLease();
          await products.give(t.sku, t.quantity, id);
        }
        if (result === "missing") throw new ProductNotFoundError(line.sku);
        throw new OutOfStockError(line.sku, result.short, line.quantity);
      }
      const p = result.taken;
      if (taken.length === 0) currency = p.currency;
      taken.push({ sku: line.sku, name: p.name, quantity: line.quantity, unitPriceCents: p.priceCents });
    }
    return { lines: taken, currency };
  }

  /** Adds `outcome` to the reservation's claims (making a tombstone when there is none) and returns it as stored. */
  async function claim(id: string, outcome: Outcome, upsert: boolean): Promise<ReservationRecord | null> {
    const now = new Date();
    const update = {
      $addToSet: { outcome },
      $set: { updatedAt: now },
      ...(upsert ? { $setOnInsert: { state: "RELEASED" as const, requestHash: "", items: [], totalCents: 0, currency: "USD", createdAt: now } } : {}),
    };
    const once = () => raw.findOneAndUpdate({ _id: id }, update, { upsert, returnDocument: "after" });
    // Two upserts of one new _id at once: MongoDB may refuse one as a duplicate; again, it finds the other's.
    return once().catch((err) => (upsert && isDuplicate(err) ? once() : Promise.reject(err)));
  }

  return {
    get: async (id: string) => {
      const r = await Reservation.findById(id).lean<ReservationRecord>();
      if (!r || stateOf(r) === "RESERVING") throw new ReservationNotFoundError(id);
      return view(r);
    },

    async reserve(id: string, items: LineRequest[], call: CallTime = {}): Promise<ReservationRecord> {
      const seen = new Set<string>();
      for (const i of items) {
        if (seen.has(i.sku)) throw new DuplicateSkuError(i.sku);
        seen.add(i.sku);
      }
      const requestHash = hashOf(items);
      const begun = Date.now();
      const timeoutMs = call.timeoutMs ?? LEASE_DEFAULT_MS;
      const leaseUntil = new Date(begun + Math.min(LEASE_MAX_MS, Math.max(1, timeoutMs)));
      const giveUpAt = begun + timeoutMs;
      /** Stops this try once its lease is over: another may have taken the reservation over by then. */
      const inLease = () => {
        if (Date.now() >= leaseUntil.getTime())
          throw new ConnectError(`reservation "${id}" ran out of time while being made; a repeat finishes it`, Code.DeadlineExceeded);
      };
      // The insert comes first, before any stock moves, so a crash leaves a record that a repeat or a release
      // can finish; a read only when it collides (a new id, nearly every call, costs no lookup). Names and
      // prices are filled in from the stock takes' answers, so the products are not read beforehand.
      const requested: ReservedLine[] = items.map((i) => ({ sku: i.sku, name: "", quantity: i.quantity, unitPriceCents: 0 }));
      let record: ReservationRecord | undefined;
      for (let delay = 5; !record; ) {
        const now = new Date();
        const fresh: ReservationRecord = {
          _id: id,
          state: "RESERVING",
          requestHash,
          items: requested,
          totalCents: 0,
          currency: "USD",
          leaseUntil,
          createdAt: now,
          updatedAt: now,
        };
        const inserted = await raw.insertOne(fresh).then(
          () => true,
          (err) => {
            if (!isDuplicate(err)) throw err;
            return false; // made before: read below
          },
        );
        if (inserted) {
          record = fresh;
          break;
        }
        for (;;) {
          const existing = await Reservation.findById(id).lean<ReservationRecord>();
          if (!existing) break; // a try refused for lack of stock gave back and freed the id: insert again
          const state = stateOf(existing);
          if (state === "RELEASED" && existing.requestHash === "") throw new ReservationStateError(id, "RELEASED", "reserve"); // released before it was made
          if (existing.requestHash !== requestHash) throw new ReservationConflictError(id);
          if (state !== "RESERVING") return view(existing); // a repeat gets the first answer
          const liveUntil = (existing.leaseUntil?.getTime() ?? 0) + LEASE_GRACE_MS;
          if (liveUntil <= Date.now()) {
            // The try that ran it is gone or overran its lease: take it over (one try wins the compare-and-set)
            // and finish it (taking is idempotent per reservation). A filter beyond _id is a scan on devdb, but
            // only a repeat of an interrupted reservation comes here.
            const now2 = new Date();
            const took = await raw.findOneAndUpdate(
              { _id: id, state: "RESERVING", updatedAt: existing.updatedAt },
              { $set: { leaseUntil, updatedAt: now2 } },
              { returnDocument: "after" },
            );
            if (took) {
              record = took;
              break;
            }
            continue; // changed meanwhile (another took it over, a release claimed it): read again
          }
          // Another try of this id is at work: wait for it, within this call's time.
          hooks.waiting?.(id);
          const pause = Math.min(delay, liveUntil - Date.now());
          if (call.signal?.aborted || Date.now() + pause > giveUpAt) throw busy(id);
          await sleep(pause, undefined, call.signal ? { signal: call.signal } : undefined).catch(() => {
            throw busy(id);
          });
          delay = Math.min(delay * 2, 100);
        }
      }
      let taken: Awaited<ReturnType<typeof takeAll>>;
      try {
        taken = await takeAll(id, record.items, inLease);
      } catch (err) {
        // Nothing is held now (takeAll gave back what it took): the id is free for a retry, unless a release or
        // a commit has claimed it meanwhile (a release's claim must stay, to keep a late ReserveStock out). A
        // filter beyond _id is a scan on devdb, but only a refused reservation comes here.
        if (err instanceof OutOfStockError || err instanceof ProductNotFoundError) {
          inLease();
          await raw.deleteOne({ _id: id, state: "RESERVING", leaseUntil, outcome: { $exists: false } });
        }
        throw err;
      }
      const totalCents = taken.lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);
      inLease();
      const stored = await raw.findOneAndUpdate(
        { _id: id },
        { $set: { state: "RESERVED", items: taken.lines, totalCents, currency: taken.currency, updatedAt: new Date() } },
        { returnDocument: "after" },
      );
      if (!stored || stateOf(stored) === "RELEASED") {
        // Released while the stock was being taken: the release gave back what it found held, this gives back
        // the rest (giving back is idempotent per reservation). Gone: a repeat refused it and freed the id.
        await giveBackAll(id, taken.lines);
        if (!stored) throw new ConnectError(`reservation "${id}" changed meanwhile; retry`, Code.Aborted);
      }
      return view(stored);
    },

    async release(id: string): Promise<ReservationRecord> {
      // The claim comes first: a ReserveStock still taking stock sees it when it records RESERVED, and gives
      // back what it took after the lines below were given back.
      const r = (await claim(id, "RELEASED", true)) as ReservationRecord;
      if (stateOf(r) === "COMMITTED") throw new ReservationStateError(id, "COMMITTED", "release");
      await giveBackAll(id, r.items); // also finishes a release interrupted before it gave everything back
      return view(r);
    },

    async commit(id: string): Promise<ReservationRecord> {
      const existing = await Reservation.findById(id).lean<ReservationRecord>();
      if (!existing) throw new ReservationNotFoundError(id);
      let r = view(existing);
      if (r.state === "RESERVED") {
        // Claimed only once the stock is all taken (RESERVED); a release that claimed first wins.
        const claimed = await claim(id, "COMMITTED", false);
        if (!claimed) throw new ReservationNotFoundError(id);
        r = view(claimed);
      }
      if (r.state !== "COMMITTED") throw new ReservationStateError(id, r.state, "commit");
      for (const line of r.items ?? []) await products.settle(line.sku, id); // idempotent: also finishes an interrupted commit
      return r;
    },
  };
}
