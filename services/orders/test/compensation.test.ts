// The compensation path with money on it: the card was charged, then the sale could not be completed, so the
// saga must refund the charge (payment REFUNDED, the order's ledger nets to zero) and give the stock back.
// Nothing else in the suite makes a refund happen: with the refund loop disabled every other orders test passed.
// Real catalog and payment servers; the saga's step hook releases the reservation just before the commit,
// which catalog then refuses (a release that won a race against the commit). Also recovery of a paid order whose
// commit is refused, a ReserveStock that answers with a reservation already released, and a charge that lands
// after the compensation listed the payments (refunded by the recovery loop's sweep of FAILED orders).
import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { CardSchema, PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { lockTable, logger, money, toCents } from "#kit";
import { ledgerTotals } from "../../payment/src/payments.js";
import { type OrderRecord, orderIdFor, orderStore } from "../src/orders.js";
import { recoveryLoop } from "../src/recovery.js";
import { orderSaga } from "../src/saga.js";
import { APPROVE, sagaBench } from "./fixture.js";

const plan = { call: () => ({ timeoutMs: 10_000 }), fresh: () => ({ timeoutMs: 10_000 }) };

describe("orders compensation after an approved charge", () => {
  const bench = sagaBench();

  it("refunds the charge in full and gives the stock back when the commit is refused", async () => {
    const { peers, db } = bench;
    const orders = orderStore(db);
    const id = orderIdFor("carol", "k-refund");
    const sku = "headlamp";
    const stockBefore = (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;
    let released = false;
    const saga = orderSaga({
      orders,
      catalog: peers.catalogClient,
      payment: peers.paymentClient,
      log: logger("orders", { LOG_LEVEL: "silent" }),
      afterStep: async (step, order) => {
        if (step !== "COMMITTING" || order._id !== id) return;
        await peers.catalogClient.releaseStock({ reservationId: id });
        released = true;
      },
    });
    const opened = (await orders.open({
      _id: id,
      userId: "carol",
      idempotencyKey: "k-refund",
      requestHash: "h",
      items: [{ sku, quantity: 2, name: "", unitPriceCents: 0 }],
      cardLast4: "4242",
    })) as OrderRecord;
    const done = await saga.run(opened, create(CardSchema, APPROVE), plan);

    expect(released, "the commit was refused after the charge").to.equal(true);
    expect({ state: done.state, step: done.step }).to.deep.equal({ state: "FAILED", step: "DONE" });
    const { payments } = await peers.paymentClient.listPayments({ orderId: id });
    expect(payments.map((p) => p.state)).to.deep.equal([PaymentState.REFUNDED]);
    const charged = toCents(payments[0].amount!);
    expect(charged).to.be.above(0);
    expect(toCents(payments[0].refundedAmount!)).to.equal(charged);
    const payConn = bench.paymentDb();
    expect((await ledgerTotals(payConn, id)).byCurrency).to.deep.equal({ USD: { chargedCents: charged, refundedCents: charged } });
    expect((await peers.catalogClient.getProduct({ sku })).product?.stock).to.equal(stockBefore);
  });
  const quietSaga = () =>
    orderSaga({
      orders: orderStore(bench.db),
      catalog: bench.peers.catalogClient,
      payment: bench.peers.paymentClient,
      log: logger("orders", { LOG_LEVEL: "silent" }),
    });
  const openOrder = async (key: string, sku: string) =>
    (await orderStore(bench.db).open({
      _id: orderIdFor("carol", key),
      userId: "carol",
      idempotencyKey: key,
      requestHash: "h",
      items: [{ sku, quantity: 1, name: "", unitPriceCents: 0 }],
      cardLast4: "4242",
    })) as OrderRecord;

  it("recovery at CHARGING with an approved charge whose commit is refused refunds it and fails the order (it stayed PENDING)", async () => {
    const { peers, db } = bench;
    const sku = "headlamp";
    const stockBefore = (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;
    const opened = await openOrder("k-recover-refused", sku);
    const id = opened._id;
    // What a crash after the charge leaves behind: the order at CHARGING, the charge approved; and catalog has
    // released the reservation meanwhile, so the commit recovery sends is refused.
    const { reservation } = await peers.catalogClient.reserveStock({ reservationId: id, items: [{ sku, quantity: 1 }] });
    const totalCents = toCents(reservation!.total!) ?? 0;
    await peers.paymentClient.charge({ idempotencyKey: id, orderId: id, amount: money(totalCents, "USD"), card: APPROVE });
    await peers.catalogClient.releaseStock({ reservationId: id });
    const charging = await orderStore(db).update(id, { step: "CHARGING", totalCents, currency: "USD" });

    const done = await quietSaga().recover(charging, plan);
    expect({ state: done.state, step: done.step }).to.deep.equal({ state: "FAILED", step: "DONE" });
    const { payments } = await peers.paymentClient.listPayments({ orderId: id });
    expect(payments.map((p) => p.state)).to.deep.equal([PaymentState.REFUNDED]);
    expect(toCents(payments[0].refundedAmount!)).to.equal(totalCents);
    expect((await peers.catalogClient.getProduct({ sku })).product?.stock).to.equal(stockBefore);
  });

  it("a ReserveStock answering OK with an already released reservation is not charged: the order fails first", async () => {
    const { peers } = bench;
    const sku = "headlamp";
    const opened = await openOrder("k-reserve-released", sku);
    const id = opened._id;
    // Reserved and released before this run's ReserveStock: the repeat answers OK with the RELEASED reservation.
    await peers.catalogClient.reserveStock({ reservationId: id, items: [{ sku, quantity: 1 }] });
    await peers.catalogClient.releaseStock({ reservationId: id });

    const done = await quietSaga().run(opened, create(CardSchema, APPROVE), plan);
    expect({ state: done.state, step: done.step, reason: done.failureReason }).to.deep.equal({ state: "FAILED", step: "DONE", reason: "ABANDONED" });
    const { payments } = await peers.paymentClient.listPayments({ orderId: id });
    expect(payments, "no charge for an order with no stock held").to.deep.equal([]);
  });
  it("a charge landing after the compensation listed the payments is refunded by recovery's sweep of FAILED orders", async () => {
    const { peers, db } = bench;
    const sku = "headlamp";
    const opened = await openOrder("k-late-charge", sku);
    const id = opened._id;
    // The order failed and compensated with no payment to refund (the Charge was still being written then)...
    await quietSaga().run(opened, create(CardSchema, { ...APPROVE, number: "4000000000000002" }), plan);
    const failed = await orderStore(db).get(id);
    expect(failed?.state).to.equal("FAILED");
    // ...and then the charge lands: payment had taken it before its caller gave up.
    await peers.paymentClient.charge({ idempotencyKey: `${id}-late`, orderId: id, amount: money(1500, "USD"), card: APPROVE });

    const recovery = recoveryLoop({
      orders: orderStore(db),
      saga: quietSaga(),
      locks: lockTable(db),
      log: logger("orders", { LOG_LEVEL: "silent" }),
      intervalMs: 60_000,
      afterMs: 0,
    });
    await recovery.pass();
    const { payments } = await peers.paymentClient.listPayments({ orderId: id });
    expect(payments.map((p) => p.state))
      .to.include(PaymentState.REFUNDED)
      .and.not.include(PaymentState.APPROVED);
    expect((await orderStore(db).get(id))?.lateChargesChecked).to.equal(true);
  });
});
