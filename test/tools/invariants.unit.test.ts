// The invariant checker on hand-built data sets: a consistent one passes every check, and each broken one
// fails exactly the check it breaks, naming the offending id.
import { expect } from "chai";
import { checkInvariants, type DataSet, INVARIANTS, type InvariantName } from "../../tools/traffic/invariants.js";

/** Seed 10 mugs: one CONFIRMED order of 2 (committed, charged 2500), one FAILED of 1 (released, charged and refunded), one RESERVED hold of 3 in flight. */
function consistent(): DataSet {
  return {
    seed: { mug: 10, pot: 5 },
    products: [
      { _id: "mug", stock: 5, holds: ["ord_live"] },
      { _id: "pot", stock: 5, holds: [] },
    ],
    orders: [
      { _id: "ord_ok", state: "CONFIRMED", step: "DONE", totalCents: 2500 },
      { _id: "ord_failed", state: "FAILED", step: "DONE", totalCents: 1250 },
      { _id: "ord_declined", state: "FAILED", step: "DONE", totalCents: 1250 },
    ],
    reservations: [
      { _id: "ord_ok", state: "COMMITTED", items: [{ sku: "mug", quantity: 2 }] },
      { _id: "ord_failed", state: "RELEASED", items: [{ sku: "mug", quantity: 1 }] },
      { _id: "ord_live", state: "RESERVED", items: [{ sku: "mug", quantity: 3 }] },
    ],
    payments: [
      { _id: "pay_ok", orderId: "ord_ok", state: "APPROVED", amountCents: 2500 },
      { _id: "pay_failed", orderId: "ord_failed", state: "REFUNDED", amountCents: 1250, refundedCents: 1250 },
      { _id: "pay_declined", orderId: "ord_declined", state: "DECLINED", amountCents: 1250 },
    ],
    ledger: [
      { _id: "charge:ord_ok", kind: "CHARGE", orderId: "ord_ok", paymentId: "pay_ok", amountCents: 2500 },
      { _id: "charge:ord_failed", kind: "CHARGE", orderId: "ord_failed", paymentId: "pay_failed", amountCents: 1250 },
      { _id: "refund:x", kind: "REFUND", orderId: "ord_failed", paymentId: "pay_failed", amountCents: 1250 },
    ],
  };
}

/** The names of the checks that failed. */
const failing = (data: DataSet, accepted?: string[]) =>
  checkInvariants(data, { accepted })
    .filter((r) => !r.ok)
    .map((r) => r.name);
const offending = (data: DataSet, name: InvariantName, accepted?: string[]) =>
  checkInvariants(data, { accepted }).find((r) => r.name === name)?.offending ?? [];

describe("invariants (unit, hand-built data sets)", () => {
  it("a consistent data set passes every check, with counts", () => {
    const results = checkInvariants(consistent(), { accepted: ["ord_ok", "ord_failed"] });
    expect(results.map((r) => r.name)).to.have.members(Object.keys(INVARIANTS));
    expect(results.filter((r) => !r.ok)).to.deep.equal([]);
    const by = Object.fromEntries(results.map((r) => [r.name, r.checked]));
    expect(by["confirmed-charged-once"]).to.equal(1);
    expect(by["failed-not-charged"]).to.equal(2);
    expect(by["stock-conserved"]).to.equal(2);
    expect(by["accepted-orders-exist"]).to.equal(2);
  });

  it("a CONFIRMED order charged twice (a second approved payment) fails confirmed-charged-once", () => {
    const d = consistent();
    d.payments.push({ _id: "pay_dup", orderId: "ord_ok", state: "APPROVED", amountCents: 2500 });
    d.ledger.push({ _id: "charge:dup", kind: "CHARGE", orderId: "ord_ok", paymentId: "pay_dup", amountCents: 2500 });
    expect(failing(d)).to.deep.equal(["confirmed-charged-once"]);
    expect(offending(d, "confirmed-charged-once")[0]).to.contain("ord_ok").and.contain("2 approved");
  });

  it("a CONFIRMED order whose ledger does not add up to its total fails confirmed-charged-once", () => {
    const d = consistent();
    d.ledger.push({ _id: "charge:again", kind: "CHARGE", orderId: "ord_ok", paymentId: "pay_ok", amountCents: 2500 });
    expect(failing(d)).to.deep.equal(["confirmed-charged-once", "ledger-matches-payments"]);
    expect(offending(d, "confirmed-charged-once")[0]).to.contain("nets 5000");
  });

  it("a CONFIRMED order without a payment fails confirmed-charged-once", () => {
    const d = consistent();
    d.payments = d.payments.filter((p) => p.orderId !== "ord_ok");
    d.ledger = d.ledger.filter((e) => e.orderId !== "ord_ok");
    expect(failing(d)).to.deep.equal(["confirmed-charged-once"]);
  });

  it("a CONFIRMED order whose reservation was not committed fails confirmed-stock-committed", () => {
    const d = consistent();
    d.reservations[0].state = "RESERVED";
    d.products[0].holds?.push("ord_ok"); // still held: the stock sum stays right, only the commit is missing
    expect(failing(d)).to.deep.equal(["confirmed-stock-committed"]);
    expect(offending(d, "confirmed-stock-committed")).to.deep.equal(["ord_ok: reservation RESERVED"]);
  });

  it("a FAILED order left charged (refund missing) fails failed-not-charged", () => {
    const d = consistent();
    d.ledger = d.ledger.filter((e) => e.kind !== "REFUND");
    expect(failing(d)).to.deep.equal(["failed-not-charged", "ledger-matches-payments"]); // the payment says refunded
    expect(offending(d, "failed-not-charged")).to.deep.equal(["ord_failed: ledger nets 1250 USD"]);
  });

  it("a FAILED order still holding its stock fails failed-stock-released", () => {
    const d = consistent();
    d.reservations[1].state = "RESERVED";
    d.products[0].holds?.push("ord_failed");
    d.products[0].stock -= 1;
    expect(failing(d)).to.deep.equal(["failed-stock-released"]);
    expect(offending(d, "failed-stock-released")).to.deep.equal(["ord_failed: reservation RESERVED"]);
  });

  it("a FAILED order named in a product's holds without a reservation record fails failed-stock-released", () => {
    const d = consistent();
    d.reservations = d.reservations.filter((r) => r._id !== "ord_declined");
    d.products[1].holds = ["ord_declined"];
    expect(failing(d)).to.include("failed-stock-released");
    expect(offending(d, "failed-stock-released")).to.deep.equal(["ord_declined: still holds stock"]);
  });

  it("an order still PENDING fails no-pending", () => {
    const d = consistent();
    d.orders.push({ _id: "ord_stuck", state: "PENDING", step: "CHARGING" });
    expect(failing(d)).to.deep.equal(["no-pending"]);
    expect(offending(d, "no-pending")).to.deep.equal(["ord_stuck: PENDING at CHARGING"]);
  });

  it("money held for an order id orders does not know fails no-orphan-charges", () => {
    const d = consistent();
    d.ledger.push({ _id: "charge:ghost", kind: "CHARGE", orderId: "ord_ghost", paymentId: "pay_ghost", amountCents: 999 });
    expect(failing(d)).to.deep.equal(["no-orphan-charges", "ledger-matches-payments"]); // no such payment either
    expect(offending(d, "no-orphan-charges")[0]).to.contain("ord_ghost");
  });

  it("stock that appeared or vanished fails stock-conserved, per SKU", () => {
    const d = consistent();
    d.products[1].stock = 4; // one pot gone with no reservation
    expect(failing(d)).to.deep.equal(["stock-conserved"]);
    expect(offending(d, "stock-conserved")).to.deep.equal(["pot: stock 4 + committed 0 + reserved 0 = 4, seeded 5"]);
    const twice = consistent();
    twice.products[0].stock += 1; // a release given back twice
    expect(offending(twice, "stock-conserved")[0]).to.match(/^mug: .* = 11, seeded 10$/);
  });

  it("a seeded product that is missing fails stock-conserved", () => {
    const d = consistent();
    d.products = d.products.filter((p) => p._id !== "pot");
    expect(offending(d, "stock-conserved")).to.deep.equal(["pot: seeded but missing"]);
  });

  it("an order a client was answered with but that is not stored fails accepted-orders-exist", () => {
    expect(failing(consistent(), ["ord_ok", "ord_lost"])).to.deep.equal(["accepted-orders-exist"]);
    expect(offending(consistent(), "accepted-orders-exist", ["ord_lost"])).to.deep.equal(["ord_lost: answered to a client, not stored"]);
  });

  it("a payment without its CHARGE entry (a Charge interrupted between its two writes) fails ledger-matches-payments", () => {
    const d = consistent();
    d.ledger = d.ledger.filter((e) => e._id !== "charge:ord_failed");
    expect(failing(d)).to.include("ledger-matches-payments");
    expect(offending(d, "ledger-matches-payments")).to.deep.equal(["pay_failed: REFUNDED with 0 CHARGE entries"]);
  });

  it("a payment whose state or refunded amount does not follow from its REFUND entries fails ledger-matches-payments", () => {
    const d = consistent();
    d.payments[1].state = "PARTIALLY_REFUNDED";
    expect(failing(d)).to.deep.equal(["ledger-matches-payments"]);
    expect(offending(d, "ledger-matches-payments")).to.deep.equal(["pay_failed: PARTIALLY_REFUNDED, its entries say REFUNDED"]);
    const behind = consistent();
    behind.payments[1].refundedCents = 0; // a Refund interrupted after its entry, before the payment's update
    expect(offending(behind, "ledger-matches-payments")).to.deep.equal(["pay_failed: REFUND entries add up to 1250, the payment says 0"]);
  });

  it("a declined payment with a ledger entry fails ledger-matches-payments", () => {
    const d = consistent();
    d.ledger.push({ _id: "charge:ord_declined", kind: "CHARGE", orderId: "ord_declined", paymentId: "pay_declined", amountCents: 1250 });
    expect(failing(d)).to.include("ledger-matches-payments");
    expect(offending(d, "ledger-matches-payments")).to.deep.equal(["pay_declined: declined, but 1 ledger entries"]);
  });

  it("never adds amounts in different currencies: a USD charge is not undone by a EUR refund", () => {
    const d = consistent();
    d.ledger.find((e) => e.kind === "REFUND")!.currency = "EUR";
    expect(failing(d)).to.deep.equal(["failed-not-charged", "ledger-matches-payments"]);
    expect(offending(d, "failed-not-charged")).to.deep.equal(["ord_failed: ledger nets 1250 USD + -1250 EUR"]);
  });

  it("lists at most 20 offending ids but counts them all", () => {
    const d = consistent();
    for (let i = 0; i < 30; i++) d.orders.push({ _id: `ord_p${i}`, state: "PENDING" });
    const r = checkInvariants(d).find((x) => x.name === "no-pending");
    expect(r?.violations).to.equal(30);
    expect(r?.offending).to.have.length(20);
  });
});
