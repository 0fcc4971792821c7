// payment's four RPCs over one server and one database. About 300 lines on purpose: every case stands on that
// one setup (the server, a client, an auditing connection, charged()), so the file is one describe per RPC.
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import mongoose, { type Connection } from "mongoose";
import { BadRequestSchema, ErrorInfoSchema } from "#gen/google/rpc/error_details_pb.js";
import { DeclineReason, PaymentService, PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { clientPool, errorReason, money, type RunningServer, toCents } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { rejection } from "../../../test/support/rejection.js";
import { TEST_CARDS } from "../src/cards.js";
import { ledgerTotals } from "../src/payments.js";
import { paymentConfig, startPayment } from "../src/server.js";

const OTHER_CARD = "5555555555554444"; // Luhn-valid, not a test card: approves
const BAD_LUHN = "4242424242424241";
const card = (number: string = TEST_CARDS.approves, more: { expMonth?: number; expYear?: number } = {}) => ({
  number,
  expMonth: 12,
  expYear: 2099,
  cvc: "123",
  ...more,
});

const codeName = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e) => Code[ConnectError.from(e).code],
  );
const violationFields = (err: ConnectError) => err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));

describe("payment", () => {
  const clients = clientPool();
  const dbName = uniqueDbName("payment");
  const config = () => paymentConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1" });
  let server: RunningServer;
  let payment: Client<typeof PaymentService>;
  let db: Connection; // our own connection, to audit what the service wrote
  let seq = 0;
  const unique = (prefix: string) => `${prefix}-${++seq}`;

  /** Charges `cents` for a fresh order (or `orderId`) and returns the approved payment. */
  async function charged(cents: number, orderId = unique("order")) {
    const { payment: p } = await payment.charge({ idempotencyKey: unique("key"), orderId, amount: money(cents), card: card() });
    return p!;
  }

  before(async () => {
    server = await startPayment(config());
    payment = clients.dial(PaymentService, `127.0.0.1:${server.port}`);
    db = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
  });
  after(async () => {
    await server.shutdown();
    clients.close();
    await db.close();
    await dropDatabase(dbName);
  });

  describe("Charge", () => {
    it("approves a good card, keeping only its last four digits, and writes one CHARGE entry", async () => {
      const orderId = unique("order");
      const { payment: p } = await payment.charge({ idempotencyKey: unique("key"), orderId, amount: money(1999), card: card() });
      expect(p).to.include({ orderId, state: PaymentState.APPROVED, declineReason: DeclineReason.UNSPECIFIED, cardLast4: "4242" });
      expect(toCents(p!.amount!)).to.equal(1999);
      expect(toCents(p!.refundedAmount!)).to.equal(0);
      expect((await payment.getPayment({ paymentId: p!.paymentId })).payment?.state).to.equal(PaymentState.APPROVED);
      const audit = await ledgerTotals(db, orderId);
      expect(audit.byCurrency).to.deep.equal({ USD: { chargedCents: 1999, refundedCents: 0 } });
      expect(audit.entries.map((e) => e.kind)).to.deep.equal(["CHARGE"]);
    });

    it("approves any other Luhn-valid number", async () => {
      const { payment: p } = await payment.charge({ idempotencyKey: unique("key"), orderId: unique("order"), amount: money(500), card: card(OTHER_CARD) });
      expect(p).to.include({ state: PaymentState.APPROVED, cardLast4: "4444" });
    });

    for (const [number, reason, enumValue] of [
      [TEST_CARDS.declines, "CARD_DECLINED", DeclineReason.CARD_DECLINED],
      [TEST_CARDS.insufficientFunds, "INSUFFICIENT_FUNDS", DeclineReason.INSUFFICIENT_FUNDS],
    ] as const) {
      it(`answers FAILED_PRECONDITION with reason ${reason}, records the decline and charges nothing`, async () => {
        const orderId = unique("order");
        const err = await rejection(payment.charge({ idempotencyKey: unique("key"), orderId, amount: money(1000), card: card(number) }));
        expect(err.code).to.equal(Code.FailedPrecondition);
        expect(errorReason(err)).to.equal(reason);
        const paymentId = err.findDetails(ErrorInfoSchema)[0]?.metadata.payment_id ?? "";
        const { payment: p } = await payment.getPayment({ paymentId });
        expect(p).to.include({ orderId, state: PaymentState.DECLINED, declineReason: enumValue, cardLast4: number.slice(-4) });
        expect(await ledgerTotals(db, orderId)).to.deep.equal({ byCurrency: {}, entries: [] });
      });
    }

    it("declines an expired card with reason EXPIRED_CARD", async () => {
      const err = await rejection(
        payment.charge({ idempotencyKey: unique("key"), orderId: unique("order"), amount: money(1000), card: card(undefined, { expYear: 2020 }) }),
      );
      expect(err.code).to.equal(Code.FailedPrecondition);
      expect(errorReason(err)).to.equal("EXPIRED_CARD");
    });

    it("answers INVALID_ARGUMENT naming card.number when the Luhn check fails, storing nothing", async () => {
      const orderId = unique("order");
      const err = await rejection(payment.charge({ idempotencyKey: unique("key"), orderId, amount: money(1000), card: card(BAD_LUHN) }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(violationFields(err)).to.deep.equal(["card.number"]);
      expect(err.rawMessage).not.to.contain(BAD_LUHN);
      expect((await payment.listPayments({ orderId })).payments).to.have.length(0);
    });

    it("answers INVALID_ARGUMENT naming amount for zero and for fractions of a cent", async () => {
      for (const amount of [money(0), { ...money(100), nanos: 5_000_000 }]) {
        const err = await rejection(payment.charge({ idempotencyKey: unique("key"), orderId: unique("order"), amount, card: card() }));
        expect(err.code).to.equal(Code.InvalidArgument);
        expect(violationFields(err)).to.deep.equal(["amount"]);
      }
    });

    it("answers INVALID_ARGUMENT naming card.exp_month for month 13 (the contract's rule)", async () => {
      const err = await rejection(
        payment.charge({ idempotencyKey: unique("key"), orderId: unique("order"), amount: money(100), card: card(undefined, { expMonth: 13 }) }),
      );
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(violationFields(err)).to.deep.equal(["card.exp_month"]);
    });

    it("returns the first payment when Charge is repeated, writing no second entry", async () => {
      const orderId = unique("order");
      const request = { idempotencyKey: unique("key"), orderId, amount: money(2500), card: card() };
      const first = (await payment.charge(request)).payment!;
      const again = (await payment.charge(request)).payment!;
      expect(again.paymentId).to.equal(first.paymentId);
      expect(again.updateTime).to.deep.equal(first.updateTime);
      expect((await ledgerTotals(db, orderId)).entries).to.have.length(1);
    });

    it("charges once when ten calls with one key arrive at once", async () => {
      const orderId = unique("order");
      const request = { idempotencyKey: unique("key"), orderId, amount: money(4200), card: card() };
      const results = await Promise.all(Array.from({ length: 10 }, () => payment.charge(request)));
      expect(new Set(results.map((r) => r.payment?.paymentId)).size).to.equal(1);
      expect((await payment.listPayments({ orderId })).payments).to.have.length(1);
      const audit = await ledgerTotals(db, orderId);
      expect(audit.byCurrency).to.deep.equal({ USD: { chargedCents: 4200, refundedCents: 0 } });
      expect(audit.entries).to.have.length(1);
    });

    it("charges once when two servers on one database get the same key at once", async () => {
      const second = await startPayment(config());
      try {
        const other = clients.dial(PaymentService, `127.0.0.1:${second.port}`);
        const orderId = unique("order");
        const request = { idempotencyKey: unique("key"), orderId, amount: money(700), card: card() };
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? other : payment).charge(request)));
        expect(new Set(results.map((r) => r.payment?.paymentId)).size).to.equal(1);
        expect((await ledgerTotals(db, orderId)).entries).to.have.length(1);
      } finally {
        await second.shutdown();
      }
    });

    it("refuses the same key with another amount, order or card (ALREADY_EXISTS)", async () => {
      const request = { idempotencyKey: unique("key"), orderId: unique("order"), amount: money(1000), card: card() };
      await payment.charge(request);
      for (const changed of [{ amount: money(1001) }, { orderId: unique("order") }, { card: card(OTHER_CARD) }]) {
        const err = await rejection(payment.charge({ ...request, ...changed }));
        expect(err.code).to.equal(Code.AlreadyExists);
        expect(errorReason(err)).to.equal("IDEMPOTENCY_KEY_REUSED");
      }
    });

    it("answers a repeated declined Charge with the same decline and the same payment id", async () => {
      const orderId = unique("order");
      const request = { idempotencyKey: unique("key"), orderId, amount: money(1000), card: card(TEST_CARDS.declines) };
      const [a, b] = [await rejection(payment.charge(request)), await rejection(payment.charge(request))];
      expect([errorReason(a), errorReason(b)]).to.deep.equal(["CARD_DECLINED", "CARD_DECLINED"]);
      const ids = [a, b].map((e) => e.findDetails(ErrorInfoSchema)[0]?.metadata.payment_id);
      expect(ids[0]).to.be.a("string").and.equal(ids[1]);
      expect((await payment.listPayments({ orderId })).payments).to.have.length(1);
    });
  });

  describe("Refund", () => {
    const refund = (paymentId: string, cents?: number, idempotencyKey = unique("refund")) =>
      payment.refund({ idempotencyKey, paymentId, reason: "test", ...(cents === undefined ? {} : { amount: money(cents) }) });

    it("refunds everything left when no amount is given", async () => {
      const p = await charged(1500);
      const { payment: after } = await refund(p.paymentId);
      expect(after?.state).to.equal(PaymentState.REFUNDED);
      expect(toCents(after!.refundedAmount!)).to.equal(1500);
      expect((await ledgerTotals(db, p.orderId)).byCurrency).to.deep.equal({ USD: { chargedCents: 1500, refundedCents: 1500 } });
    });

    it("refunds in parts: PARTIALLY_REFUNDED, then REFUNDED for the rest", async () => {
      const p = await charged(1000);
      const part = (await refund(p.paymentId, 300)).payment!;
      expect(part.state).to.equal(PaymentState.PARTIALLY_REFUNDED);
      expect(toCents(part.refundedAmount!)).to.equal(300);
      const rest = (await refund(p.paymentId)).payment!;
      expect(rest.state).to.equal(PaymentState.REFUNDED);
      expect(toCents(rest.refundedAmount!)).to.equal(1000);
      expect((await ledgerTotals(db, p.orderId)).entries.map((e) => [e.kind, e.amountCents])).to.deep.equal([
        ["CHARGE", 1000],
        ["REFUND", 300],
        ["REFUND", 700],
      ]);
    });

    it("refuses more than is left, and anything once all is refunded (FAILED_PRECONDITION)", async () => {
      const p = await charged(1000);
      const over = await rejection(refund(p.paymentId, 1001));
      expect([over.code, errorReason(over)]).to.deep.equal([Code.FailedPrecondition, "REFUND_EXCEEDS_PAYMENT"]);
      await refund(p.paymentId);
      for (const cents of [1, undefined]) {
        const err = await rejection(refund(p.paymentId, cents));
        expect([err.code, errorReason(err)]).to.deep.equal([Code.FailedPrecondition, "PAYMENT_NOT_REFUNDABLE"]);
      }
    });

    it("refuses to refund a declined payment (FAILED_PRECONDITION)", async () => {
      const declined = await rejection(
        payment.charge({ idempotencyKey: unique("key"), orderId: unique("order"), amount: money(1000), card: card(TEST_CARDS.declines) }),
      );
      const err = await rejection(refund(declined.findDetails(ErrorInfoSchema)[0]!.metadata.payment_id));
      expect([err.code, errorReason(err)]).to.deep.equal([Code.FailedPrecondition, "PAYMENT_NOT_REFUNDABLE"]);
    });

    it("answers NOT_FOUND for an unknown payment", async () => {
      const err = await rejection(refund("pay_nope"));
      expect([err.code, errorReason(err)]).to.deep.equal([Code.NotFound, "PAYMENT_NOT_FOUND"]);
    });

    it("returns the same result when Refund is repeated, writing no second entry", async () => {
      const p = await charged(1000);
      const key = unique("refund");
      const first = (await refund(p.paymentId, 400, key)).payment!;
      const again = (await refund(p.paymentId, 400, key)).payment!;
      expect(again).to.deep.equal(first);
      expect((await ledgerTotals(db, p.orderId)).byCurrency.USD).to.include({ refundedCents: 400 });
    });

    it("refuses the same key with another amount or payment (ALREADY_EXISTS)", async () => {
      const [p, q] = [await charged(1000), await charged(1000)];
      const key = unique("refund");
      await refund(p.paymentId, 100, key);
      for (const call of [() => refund(p.paymentId, 200, key), () => refund(p.paymentId, undefined, key), () => refund(q.paymentId, 100, key)]) {
        const err = await rejection(call());
        expect([err.code, errorReason(err)]).to.deep.equal([Code.AlreadyExists, "IDEMPOTENCY_KEY_REUSED"]);
      }
      expect(toCents((await payment.getPayment({ paymentId: q.paymentId })).payment!.refundedAmount!)).to.equal(0);
    });

    it("never refunds more than was charged under parallel refunds", async () => {
      const p = await charged(1000);
      const results = await Promise.all(Array.from({ length: 10 }, () => codeName(refund(p.paymentId, 300))));
      expect(results.filter((r) => r === "ok")).to.have.length(3);
      expect(results.filter((r) => r !== "ok")).to.deep.equal(Array(7).fill("FailedPrecondition"));
      expect((await ledgerTotals(db, p.orderId)).byCurrency.USD).to.include({ refundedCents: 900 });
    });

    it("refunds once when ten calls with one key arrive at once", async () => {
      const p = await charged(1000);
      const key = unique("refund");
      const results = await Promise.all(Array.from({ length: 10 }, () => refund(p.paymentId, 250, key)));
      expect(results.every((r) => toCents(r.payment!.refundedAmount!) === 250)).to.equal(true);
      expect((await ledgerTotals(db, p.orderId)).entries).to.have.length(2);
    });
  });

  describe("GetPayment and ListPayments", () => {
    it("answers NOT_FOUND with PAYMENT_NOT_FOUND for an unknown id", async () => {
      const err = await rejection(payment.getPayment({ paymentId: "pay_unknown" }));
      expect([err.code, errorReason(err)]).to.deep.equal([Code.NotFound, "PAYMENT_NOT_FOUND"]);
    });

    it("pages through one order's payments, oldest first, and no other order's", async () => {
      const orderId = unique("order");
      const made: string[] = [];
      for (let i = 1; i <= 5; i++) made.push((await charged(100 * i, orderId)).paymentId);
      await charged(100); // another order
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await payment.listPayments({ orderId, pageSize: 2, pageToken });
        expect(page.payments.length).to.be.at.most(2);
        seen.push(...page.payments.map((p) => p.paymentId));
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(seen).to.deep.equal(made);
    });

    it("rejects a page token it did not make", async () => {
      expect(await codeName(payment.listPayments({ orderId: "o", pageToken: "not-a-token" }))).to.equal("InvalidArgument");
    });
  });

  describe("what is stored", () => {
    it("holds no card number anywhere in the database, only last four digits", async () => {
      const dump: string[] = [];
      for (const { name } of await db.db!.listCollections().toArray()) dump.push(JSON.stringify(await db.db!.collection(name).find().toArray()));
      const all = dump.join("\n");
      expect(all).to.contain('"cardLast4":"4242"');
      for (const number of [...Object.values(TEST_CARDS), OTHER_CARD, BAD_LUHN]) expect(all).not.to.contain(number);
    });
  });
});
