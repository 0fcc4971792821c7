// Recovery against a PlaceOrder retry that ran meanwhile. Recovery lists the stuck orders, then waits for each
// one's lock; if a retry held it, ran the saga again and left the order PENDING with its Charge still being
// written, recovery must not act on what it listed: failing the order then releases the stock and finds no
// payment yet, and the charge lands afterwards, never refunded (found by review, reproduced in 1 of 1 runs).
// Real catalog and payment servers; recovery's loop is driven pass by pass so each step is deterministic.
import { expect } from "chai";
import { PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { lockTable, logger, money, toCents } from "#kit";
import { type OrderRecord, orderIdFor, orderStore } from "../src/orders.js";
import { recoveryLoop } from "../src/recovery.js";
import { orderSaga } from "../src/saga.js";
import { APPROVE, sagaBench } from "./fixture.js";

describe("orders recovery after a retry ran meanwhile", () => {
  const bench = sagaBench();

  it("leaves an order alone that changed while recovery waited for its lock, and settles it once quiet", async function () {
    const { peers, db } = bench;
    this.timeout(60_000);
    const AFTER_MS = 300;
    const log = logger("orders", { LOG_LEVEL: "silent" });
    const orders = orderStore(db);
    const locks = lockTable(db);
    const saga = orderSaga({ orders, catalog: peers.catalogClient, payment: peers.paymentClient, log });
    let listed: () => void = () => undefined;
    const wasListed = new Promise<void>((r) => (listed = r));
    // Tells when recovery has listed the order (it only awaits the query, so a promise stands in for it).
    const stuck = (before: Date) =>
      orders.stuck(before).then((rows) => {
        listed();
        return rows;
      });
    const watched = { ...orders, stuck: stuck as unknown as typeof orders.stuck };
    const recovery = recoveryLoop({ orders: watched, saga, locks, log, intervalMs: 3_600_000, afterMs: AFTER_MS });

    // An order interrupted while charging: stock reserved, CHARGING recorded, no charge made yet.
    const id = orderIdFor("alice", "k-race");
    const sku = "coffee-grinder";
    const stockBefore = (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;
    const opened = (await orders.open({ _id: id, userId: "alice", idempotencyKey: "k-race", requestHash: "h", items: [], cardLast4: "4242" })) as OrderRecord;
    const { reservation } = await peers.catalogClient.reserveStock({ reservationId: id, items: [{ sku, quantity: 1 }] });
    const totalCents = toCents(reservation?.total ?? { units: 0n, nanos: 0 }) ?? 0;
    await orders.update(opened._id, {
      step: "CHARGING",
      items: [{ sku, name: reservation?.items[0]?.name ?? "", quantity: 1, unitPriceCents: totalCents }],
      totalCents,
      currency: "USD",
    });
    await new Promise((r) => setTimeout(r, AFTER_MS + 100)); // now it counts as stuck

    // Payment's writes are slow: the retry's Charge passes its checks, then its insert takes a while.
    const payConn = bench.paymentDb();
    // The payments collection object its store inserts through (mongoose keeps one per name and connection).
    const Payment = payConn.collection("payments") as unknown as { insertOne: (...a: unknown[]) => Promise<unknown> };
    const create = Payment.insertOne;
    let insertStarted: () => void = () => undefined;
    const inserting = new Promise<void>((r) => (insertStarted = r));
    let land: () => void = () => undefined;
    const landed = new Promise<void>((r) => (land = r));
    Payment.insertOne = async (...a: unknown[]) => {
      insertStarted();
      await landed;
      return create.apply(Payment, a);
    };
    let charge: Promise<unknown> | undefined;
    let pass: Promise<number> | undefined;
    try {
      // The retry holds the order's lock; recovery lists the order and queues behind it.
      await locks.withLock(`order:${id}`, async () => {
        pass = recovery.pass();
        await wasListed;
        await new Promise((r) => setImmediate(r));
        charge = peers.paymentClient.charge({ idempotencyKey: id, orderId: id, amount: money(totalCents, "USD"), card: APPROVE }, { timeoutMs: 30_000 });
        await inserting;
        // The retry gave up waiting and left the order PENDING (with why), as leavePending does.
        await orders.update(id, { failureReason: "DEPENDENCY_UNAVAILABLE", failureMessage: "DeadlineExceeded: the operation timed out" });
      });
      const finished = await pass;
      const meanwhile = await orders.get(id);
      expect(meanwhile?.state, "recovery acted on the order it listed before the retry ran").to.equal("PENDING");
      expect(finished).to.equal(0);
    } finally {
      land();
      Payment.insertOne = create;
      await charge?.catch(() => undefined);
    }

    // The charge has landed; once the order is quiet again, recovery finds it and confirms the order.
    await new Promise((r) => setTimeout(r, AFTER_MS + 100));
    expect(await recovery.pass()).to.equal(1);
    const final = await orders.get(id);
    const { payments } = await peers.paymentClient.listPayments({ orderId: id });
    expect({ state: final?.state, payments: payments.map((p) => p.state) }).to.deep.equal({ state: "CONFIRMED", payments: [PaymentState.APPROVED] });
    expect((await peers.catalogClient.getProduct({ sku })).product?.stock).to.equal(stockBefore - 1);
  });
});
