// Every payment and refund ends with exactly its ledger entries, even when the call that made it stopped
// between its two writes and was never repeated (orders' recovery reads payments through ListPayments and
// does not repeat a Charge). The interruption is a write made to fail here, standing in for a crash at that point.
import { expect } from "chai";
import { clientPool, lockTable, type RunningServer } from "#kit";
import { freshDatabase, testMongoUri } from "../../../test/support/db.js";
import { paymentStore } from "../src/payments.js";
import { paymentConfig, startPayment } from "../src/server.js";

const card = { number: "4242424242424242", expMonth: 12, expYear: 2099 };
type Fn = (...a: unknown[]) => unknown;

/** Makes `target[method]` (a model's query or a collection's command) fail once (the process "dies" right there), then behave again; also as a query (.lean()). */
function failOnce(target: unknown, method: string) {
  const m = target as Record<string, Fn>;
  const real = m[method];
  m[method] = () => {
    m[method] = real;
    const failed = Promise.reject(new Error("crash here (test)"));
    failed.catch(() => undefined);
    return Object.assign(failed, { lean: () => failed, exec: () => failed });
  };
}

describe("ledger reconcile", () => {
  const clients = clientPool();
  const fresh = freshDatabase("reconcile");

  it("writes the CHARGE entry of a payment stored without one, once", async () => {
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    failOnce(fresh.db.collection("ledger"), "insertOne");
    const err = await payments.charge({ idempotencyKey: "rc-1", orderId: "ord-rc-1", cents: 1250, currency: "EUR", card }).catch((e) => e);
    expect(String(err)).to.contain("crash here");
    expect((await payments.page("ord-rc-1", 10)).map((p) => p.state)).to.deep.equal(["APPROVED"]); // charged, not entered
    expect((await payments.ledgerTotals("ord-rc-1")).entries).to.deep.equal([]);

    expect(await payments.reconcile(new Date(Date.now() + 1000))).to.deep.include({ chargeEntries: 1 });
    expect((await payments.ledgerTotals("ord-rc-1")).byCurrency).to.deep.equal({ EUR: { chargedCents: 1250, refundedCents: 0 } });
    expect(await payments.reconcile(new Date(Date.now() + 1000))).to.deep.equal({ chargeEntries: 0, refundsSettled: 0 });
  });

  it("leaves a payment younger than the cut-off to the Charge still writing it", async () => {
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    failOnce(fresh.db.collection("ledger"), "insertOne");
    await payments.charge({ idempotencyKey: "rc-2", orderId: "ord-rc-2", cents: 500, currency: "USD", card }).catch(() => undefined);
    expect(await payments.reconcile(new Date(Date.now() - 60_000))).to.deep.include({ chargeEntries: 0 });
    expect((await payments.ledgerTotals("ord-rc-2")).entries).to.deep.equal([]);
  });

  it("brings a payment's refunded amount and state up to its REFUND entries", async () => {
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    const p = await payments.charge({ idempotencyKey: "rc-3", orderId: "ord-rc-3", cents: 1000, currency: "USD", card });
    failOnce(fresh.db.models.Payment, "findOneAndUpdate");
    const err = await payments.refund({ idempotencyKey: "rc-3-refund", paymentId: p._id, cents: 400, reason: "test" }).catch((e) => e);
    expect(String(err)).to.contain("crash here");
    expect(await payments.get(p._id)).to.include({ state: "APPROVED", refundedCents: 0 }); // the entry is written, the payment behind

    expect(await payments.reconcile(new Date(Date.now() + 1000))).to.deep.include({ refundsSettled: 1 });
    expect(await payments.get(p._id)).to.include({ state: "PARTIALLY_REFUNDED", refundedCents: 400 });
    expect((await payments.ledgerTotals("ord-rc-3")).byCurrency).to.deep.equal({ USD: { chargedCents: 1000, refundedCents: 400 } });
  });

  it("runs in the payment service on its own, so a payment left without its entry gets it", async function () {
    this.timeout(60_000);
    const config = paymentConfig({
      MONGODB_URI: testMongoUri(),
      DB_NAME: fresh.name,
      PORT: "0",
      ADMIN_PORT: "0",
      LOG_LEVEL: "silent",
      RECONCILE_INTERVAL_MS: "200",
      RECONCILE_AFTER_MS: "0",
    });
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    failOnce(fresh.db.collection("ledger"), "insertOne");
    await payments.charge({ idempotencyKey: "rc-4", orderId: "ord-rc-4", cents: 700, currency: "USD", card }).catch(() => undefined);
    let server: RunningServer | undefined;
    try {
      server = await startPayment(config);
      for (const until = Date.now() + 30_000; Date.now() < until; ) {
        if ((await payments.ledgerTotals("ord-rc-4")).entries.length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await payments.ledgerTotals("ord-rc-4")).byCurrency).to.deep.equal({ USD: { chargedCents: 700, refundedCents: 0 } });
    } finally {
      await server?.shutdown();
      clients.close();
    }
  });
});
