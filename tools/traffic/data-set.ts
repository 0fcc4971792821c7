// meshmart's whole data set read straight from the services' databases, and checked against the invariants
// (invariants.ts) once the recovery window has let every order settle: what the soak, experiments and tests call.
import mongoose from "mongoose";
import { loadSeed } from "../../services/catalog/src/products.js";
import { type ReservationRecord, stateOf } from "../../services/catalog/src/reservations.js";
import {
  checkInvariants,
  type DataSet,
  type InvariantResult,
  type LedgerDoc,
  type OrderDoc,
  type PaymentDoc,
  type ProductDoc,
  type ReservationDoc,
} from "./invariants.js";

/** The databases each service uses (the services' DB_NAME defaults). */
export const DB_NAMES = { orders: "orders", payment: "payment", catalog: "catalog" };

/** Reads the whole data set from the server at `mongoUri`. */
export async function readDataSet(mongoUri: string, dbNames = DB_NAMES): Promise<DataSet> {
  const conn = await mongoose.createConnection(mongoUri, { serverSelectionTimeoutMS: 5000 }).asPromise();
  try {
    const all = <T>(db: string, coll: string) => conn.useDb(db, { useCache: false }).collection(coll).find({}).toArray() as unknown as Promise<T[]>;
    const [orders, payments, ledger, reservations, products, seedList] = await Promise.all([
      all<OrderDoc>(dbNames.orders, "orders"),
      all<PaymentDoc>(dbNames.payment, "payments"),
      all<LedgerDoc>(dbNames.payment, "ledger"),
      all<ReservationDoc>(dbNames.catalog, "reservations"),
      all<ProductDoc>(dbNames.catalog, "products"),
      loadSeed(),
    ]);
    // A reservation's state as catalog answers it: the first of its commit/release claims once there is one.
    const asCatalogSays = reservations.map((r) => ({ ...r, state: stateOf(r as unknown as ReservationRecord) }));
    return { orders, payments, ledger, reservations: asCatalogSays, products, seed: Object.fromEntries(seedList.map((p) => [p.sku, p.stock])) };
  } finally {
    await conn.close();
  }
}

/** Counts PENDING orders in orders' database. */
async function pendingCount(mongoUri: string, dbName: string): Promise<number> {
  const conn = await mongoose.createConnection(mongoUri, { serverSelectionTimeoutMS: 5000 }).asPromise();
  try {
    return await conn.useDb(dbName, { useCache: false }).collection("orders").countDocuments({ state: "PENDING" });
  } finally {
    await conn.close();
  }
}

/**
 * Polls the data until no order is PENDING or `timeoutMs` passes (the recovery window: the recovery loop
 * finishes an order once it has been still for RECOVERY_AFTER_MS). Returns how long it took and what is left.
 */
export async function waitForNoPending(
  mongoUri: string,
  opts: { timeoutMs: number; pollMs?: number; dbName?: string },
): Promise<{ settled: boolean; waitedMs: number; pending: number }> {
  const started = Date.now();
  let pending = Number.NaN;
  for (;;) {
    try {
      pending = await pendingCount(mongoUri, opts.dbName ?? DB_NAMES.orders);
    } catch {
      pending = Number.NaN; // the database may be coming back: poll again
    }
    const waitedMs = Date.now() - started;
    if (pending === 0) return { settled: true, waitedMs, pending };
    if (waitedMs >= opts.timeoutMs) return { settled: false, waitedMs, pending };
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
}

export interface InvariantReport {
  ok: boolean;
  /** How long the data took to settle (no PENDING order, the ledger reconciled) after the load stopped. */
  settleMs: number;
  counts: { orders: number; confirmed: number; failed: number; pending: number; payments: number; ledgerEntries: number };
  results: InvariantResult[];
}

/** Waits for the recovery window (bounded), then checks every invariant over the whole data set. */
export async function checkDataSet(
  mongoUri: string,
  opts: { settleTimeoutMs: number; accepted?: string[]; dbNames?: typeof DB_NAMES },
): Promise<InvariantReport> {
  const started = Date.now();
  const settled = await waitForNoPending(mongoUri, { timeoutMs: opts.settleTimeoutMs, dbName: opts.dbNames?.orders });
  // The ledger settles too: payment's reconcile pass writes what an interrupted call left out (bounded wait).
  let data = await readDataSet(mongoUri, opts.dbNames);
  let results = checkInvariants(data, { accepted: opts.accepted });
  let settleMs = settled.waitedMs;
  const ledgerOk = () => results.find((r) => r.name === "ledger-matches-payments")?.ok !== false;
  while (!ledgerOk() && Date.now() - started < opts.settleTimeoutMs) {
    await new Promise((r) => setTimeout(r, 500));
    settleMs = Date.now() - started;
    data = await readDataSet(mongoUri, opts.dbNames);
    results = checkInvariants(data, { accepted: opts.accepted });
  }
  const by = (s: string) => data.orders.filter((o) => o.state === s).length;
  return {
    ok: results.every((r) => r.ok),
    settleMs,
    counts: {
      orders: data.orders.length,
      confirmed: by("CONFIRMED"),
      failed: by("FAILED"),
      pending: by("PENDING"),
      payments: data.payments.length,
      ledgerEntries: data.ledger.length,
    },
    results,
  };
}
