// Invariants over meshmart's whole data set, read straight from each service's database (orders, payment's
// ledger, catalog's reservations and stock; the reading and the settling wait are data-set.ts). A direct read is
// the honest view for a checker: it sees what is stored, not what an RPC chooses to show. The checks are a pure
// function of the data, so each one is unit-tested on hand-built data sets that break it.

export interface OrderDoc {
  _id: string;
  state: string; // PENDING | CONFIRMED | FAILED
  step?: string;
  totalCents?: number;
  currency?: string; // USD when unset (the store's default)
}
export interface PaymentDoc {
  _id: string;
  orderId: string;
  state: string; // APPROVED | DECLINED | PARTIALLY_REFUNDED | REFUNDED
  amountCents: number;
  currency?: string;
  refundedCents?: number;
}
export interface LedgerDoc {
  _id: string;
  kind: "CHARGE" | "REFUND";
  orderId: string;
  paymentId: string;
  amountCents: number;
  currency?: string;
}
export interface ReservationDoc {
  _id: string; // the order id
  state: string; // RESERVING | RESERVED | RELEASED | COMMITTED, as catalog answers it (data-set.ts applies its stateOf)
  items?: { sku: string; quantity: number }[];
}
export interface ProductDoc {
  _id: string; // sku
  stock: number;
  holds?: string[];
}
export interface DataSet {
  orders: OrderDoc[];
  payments: PaymentDoc[];
  ledger: LedgerDoc[];
  reservations: ReservationDoc[];
  products: ProductDoc[];
  /** Stock per SKU as seeded (services/catalog/data/products.json). */
  seed: Record<string, number>;
}

export interface InvariantResult {
  name: InvariantName;
  description: string;
  ok: boolean;
  /** How many things (orders, SKUs...) the check looked at. */
  checked: number;
  violations: number;
  /** The first offending ids, each with why. */
  offending: string[];
}

export const INVARIANTS = {
  "confirmed-charged-once": "every CONFIRMED order has exactly one approved payment, and its ledger nets to the order total",
  "confirmed-stock-committed": "every CONFIRMED order's reservation is COMMITTED",
  "failed-not-charged": "every FAILED order's ledger nets to zero (nothing charged, or refunded in full)",
  "failed-stock-released": "every FAILED order's reservation is RELEASED or was never made, and holds no stock",
  "no-pending": "no order is still PENDING after the recovery window",
  "no-orphan-charges": "no money is held for an order id that orders does not know",
  "stock-conserved": "for every SKU: stock + committed + reserved = the seeded stock",
  "accepted-orders-exist": "every order a client was told about exists in orders' database (none lost)",
  "ledger-matches-payments":
    "every payment has exactly its ledger entries (one CHARGE of its amount and currency unless declined; REFUNDs adding up to its refunded amount, its state following from them) and no entry lacks its payment",
} as const;
export type InvariantName = keyof typeof INVARIANTS;

const MAX_OFFENDING = 20;

/** Runs every check over `data`. `accepted`: order ids clients were answered with (from a load run), to find lost orders. */
export function checkInvariants(data: DataSet, opts: { accepted?: string[] } = {}): InvariantResult[] {
  // Net held per order and currency: amounts in different currencies are never added up.
  const USD = "USD";
  const netByOrder = new Map<string, Map<string, number>>();
  for (const e of data.ledger) {
    const nets = netByOrder.get(e.orderId) ?? new Map<string, number>();
    const c = e.currency ?? USD;
    nets.set(c, (nets.get(c) ?? 0) + (e.kind === "CHARGE" ? e.amountCents : -e.amountCents));
    netByOrder.set(e.orderId, nets);
  }
  const netOf = (orderId: string, currency: string) => netByOrder.get(orderId)?.get(currency) ?? 0;
  const heldOf = (orderId: string) => [...(netByOrder.get(orderId) ?? [])].filter(([, n]) => n !== 0);
  const show = (held: [string, number][]) => held.map(([c, n]) => `${n} ${c}`).join(" + ");
  const paymentsByOrder = new Map<string, PaymentDoc[]>();
  for (const p of data.payments) paymentsByOrder.set(p.orderId, [...(paymentsByOrder.get(p.orderId) ?? []), p]);
  const reservation = new Map(data.reservations.map((r) => [r._id, r]));
  const holders = new Set(data.products.flatMap((p) => p.holds ?? []));
  const orderIds = new Set(data.orders.map((o) => o._id));
  const confirmed = data.orders.filter((o) => o.state === "CONFIRMED");
  const failed = data.orders.filter((o) => o.state === "FAILED");

  const result = (name: InvariantName, checked: number, bad: string[]): InvariantResult => ({
    name,
    description: INVARIANTS[name],
    ok: bad.length === 0,
    checked,
    violations: bad.length,
    offending: bad.slice(0, MAX_OFFENDING),
  });

  const chargedOnce = confirmed.flatMap((o) => {
    const approved = (paymentsByOrder.get(o._id) ?? []).filter((p) => p.state === "APPROVED");
    const currency = o.currency ?? USD;
    const net = netOf(o._id, currency);
    const elsewhere = heldOf(o._id).filter(([c]) => c !== currency);
    if (approved.length !== 1) return [`${o._id}: ${approved.length} approved payments`];
    if (o.totalCents !== undefined && net !== o.totalCents) return [`${o._id}: ledger nets ${net} ${currency}, order total ${o.totalCents}`];
    if (net <= 0) return [`${o._id}: ledger nets ${net} ${currency}`];
    if (elsewhere.length > 0) return [`${o._id}: also holds ${show(elsewhere)}`];
    return [];
  });
  const committed = confirmed.flatMap((o) => {
    const r = reservation.get(o._id);
    return r?.state === "COMMITTED" ? [] : [`${o._id}: reservation ${r?.state ?? "missing"}`];
  });
  const failedUncharged = failed.flatMap((o) => {
    const held = heldOf(o._id);
    return held.length === 0 ? [] : [`${o._id}: ledger nets ${show(held)}`];
  });
  const released = failed.flatMap((o) => {
    const r = reservation.get(o._id);
    if (r && r.state !== "RELEASED") return [`${o._id}: reservation ${r.state}`];
    if (holders.has(o._id)) return [`${o._id}: still holds stock`];
    return [];
  });
  const pending = data.orders.filter((o) => o.state === "PENDING").map((o) => `${o._id}: PENDING at ${o.step ?? "?"}`);
  const orphans = [...netByOrder.keys()]
    .filter((id) => heldOf(id).length > 0 && !orderIds.has(id))
    .map((id) => `${id}: ${show(heldOf(id))} cents held, no such order`);

  // The ledger against the payments, entry by entry.
  const entriesByPayment = new Map<string, LedgerDoc[]>();
  for (const e of data.ledger) entriesByPayment.set(e.paymentId, [...(entriesByPayment.get(e.paymentId) ?? []), e]);
  const paymentIds = new Set(data.payments.map((p) => p._id));
  const ledgerMismatch = [
    ...data.payments.flatMap((p) => {
      const mine = entriesByPayment.get(p._id) ?? [];
      const charges = mine.filter((e) => e.kind === "CHARGE");
      const refunded = mine.filter((e) => e.kind === "REFUND").reduce((s, e) => s + e.amountCents, 0);
      const currency = p.currency ?? USD;
      if (p.state === "DECLINED") return mine.length === 0 ? [] : [`${p._id}: declined, but ${mine.length} ledger entries`];
      if (charges.length !== 1) return [`${p._id}: ${p.state} with ${charges.length} CHARGE entries`];
      const [c] = charges;
      if (c.amountCents !== p.amountCents || (c.currency ?? USD) !== currency || c.orderId !== p.orderId)
        return [`${p._id}: CHARGE entry ${c.amountCents} ${c.currency ?? USD} for ${c.orderId}, payment ${p.amountCents} ${currency} for ${p.orderId}`];
      if (mine.some((e) => (e.currency ?? USD) !== currency)) return [`${p._id}: an entry in another currency than ${currency}`];
      if (refunded > p.amountCents) return [`${p._id}: refunded ${refunded} of ${p.amountCents}`];
      if (refunded !== (p.refundedCents ?? 0)) return [`${p._id}: REFUND entries add up to ${refunded}, the payment says ${p.refundedCents ?? 0}`];
      const state = refunded === 0 ? "APPROVED" : refunded < p.amountCents ? "PARTIALLY_REFUNDED" : "REFUNDED";
      return p.state === state ? [] : [`${p._id}: ${p.state}, its entries say ${state}`];
    }),
    ...data.ledger.filter((e) => !paymentIds.has(e.paymentId)).map((e) => `${e._id}: entry for payment ${e.paymentId}, which does not exist`),
  ];

  const committedQty = new Map<string, number>();
  const reservedQty = new Map<string, number>();
  for (const r of data.reservations) {
    for (const line of r.items ?? []) {
      if (r.state === "COMMITTED") committedQty.set(line.sku, (committedQty.get(line.sku) ?? 0) + line.quantity);
    }
  }
  for (const p of data.products) {
    // What is reserved is what the product says it holds (a RESERVING reservation may hold part of its lines).
    for (const holder of p.holds ?? []) {
      const r = reservation.get(holder);
      if (r?.state === "COMMITTED") continue; // counted as committed (settling was interrupted)
      const qty = r?.items?.find((l) => l.sku === p._id)?.quantity ?? 0;
      reservedQty.set(p._id, (reservedQty.get(p._id) ?? 0) + qty);
    }
  }
  const skus = new Set([...Object.keys(data.seed), ...data.products.map((p) => p._id)]);
  const stockById = new Map(data.products.map((p) => [p._id, p.stock]));
  const conserved = [...skus].flatMap((sku) => {
    const stock = stockById.get(sku);
    const seeded = data.seed[sku];
    if (stock === undefined) return [`${sku}: seeded but missing`];
    if (seeded === undefined) return [`${sku}: not in the seed`];
    const c = committedQty.get(sku) ?? 0;
    const r = reservedQty.get(sku) ?? 0;
    return stock + c + r === seeded ? [] : [`${sku}: stock ${stock} + committed ${c} + reserved ${r} = ${stock + c + r}, seeded ${seeded}`];
  });
  const accepted = opts.accepted ?? [];
  const lost = [...new Set(accepted)].filter((id) => !orderIds.has(id)).map((id) => `${id}: answered to a client, not stored`);

  return [
    result("confirmed-charged-once", confirmed.length, chargedOnce),
    result("confirmed-stock-committed", confirmed.length, committed),
    result("failed-not-charged", failed.length, failedUncharged),
    result("failed-stock-released", failed.length, released),
    result("no-pending", data.orders.length, pending),
    result("no-orphan-charges", netByOrder.size, orphans),
    result("stock-conserved", skus.size, conserved),
    result("accepted-orders-exist", new Set(accepted).size, lost),
    result("ledger-matches-payments", data.payments.length + data.ledger.length, ledgerMismatch),
  ];
}
