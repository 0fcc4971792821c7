import { type Client, Code } from "@connectrpc/connect";
import { expect } from "chai";
import { FailureReason, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { ConfigError, clientPool, errorReason, NO_FAULTS, type RunningServer, toCents } from "#kit";
import { rejection } from "../../../test/support/rejection.js";
import { ordersConfig, startOrders } from "../src/server.js";
import { APPROVE, bearer, DECLINE, NO_FUNDS, OrderService, ordersEnv, type Peers, startPeers } from "./fixture.js";

describe("orders", () => {
  const clients = clientPool();
  let peers: Peers;
  let server: RunningServer;
  let orders: Client<typeof OrderService>;
  let alice: Record<string, string>;
  let bob: Record<string, string>;

  before(async () => {
    peers = await startPeers();
    server = await startOrders(ordersConfig(ordersEnv(peers, { RECOVERY_AFTER_MS: "300", RECOVERY_INTERVAL_MS: "100" })));
    orders = clients.dial(OrderService, `127.0.0.1:${server.port}`);
    alice = bearer(await peers.token("alice"));
    bob = bearer(await peers.token("bob"));
  });
  after(async () => {
    clients.close();
    await server?.shutdown();
    await peers?.stop();
  });

  const stockOf = async (sku: string) => (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;
  const paymentsOf = async (orderId: string) => (await peers.paymentClient.listPayments({ orderId })).payments;

  describe("PlaceOrder", () => {
    it("confirms an order paid with an approved card: stock taken, one payment", async () => {
      const before = await stockOf("mug-blue");
      const { order } = await orders.placeOrder(
        {
          idempotencyKey: "k-approve",
          items: [
            { sku: "mug-blue", quantity: 2 },
            { sku: "tea-sencha", quantity: 1 },
          ],
          card: APPROVE,
        },
        { headers: alice },
      );
      expect(order?.state).to.equal(OrderState.CONFIRMED);
      expect(toCents(order!.total!)).to.equal(2 * 1250 + 1100);
      expect(order?.items.map((i) => i.name)).to.deep.equal(["Blue Enamel Mug", "Sencha Green Tea 100 g"]);
      expect(order?.cardLast4).to.equal("4242");
      expect(await stockOf("mug-blue")).to.equal(before - 2);
      const payments = await paymentsOf(order!.orderId);
      expect(payments.map((p) => [p.state, toCents(p.amount!)])).to.deep.equal([[PaymentState.APPROVED, 3600]]);
      expect(order?.paymentId).to.equal(payments[0].paymentId);
    });

    it("fails an order whose card is declined, gives the stock back and charges nothing", async () => {
      const before = await stockOf("french-press");
      const { order } = await orders.placeOrder(
        { idempotencyKey: "k-decline", items: [{ sku: "french-press", quantity: 1 }], card: DECLINE },
        { headers: alice },
      );
      expect(order?.state).to.equal(OrderState.FAILED);
      expect(order?.failureReason).to.equal(FailureReason.PAYMENT_DECLINED);
      expect(await stockOf("french-press")).to.equal(before);
      expect((await paymentsOf(order!.orderId)).map((p) => p.state)).to.deep.equal([PaymentState.DECLINED]);
    });

    it("fails with INSUFFICIENT_FUNDS for the no-funds test card", async () => {
      const { order } = await orders.placeOrder(
        { idempotencyKey: "k-funds", items: [{ sku: "pen-fountain", quantity: 1 }], card: NO_FUNDS },
        { headers: alice },
      );
      expect(order?.failureReason).to.equal(FailureReason.INSUFFICIENT_FUNDS);
    });

    it("fails with OUT_OF_STOCK and charges nothing when an item is short", async () => {
      const { order } = await orders.placeOrder({ idempotencyKey: "k-short", items: [{ sku: "tent-2p", quantity: 500 }], card: APPROVE }, { headers: alice });
      expect(order?.state).to.equal(OrderState.FAILED);
      expect(order?.failureReason).to.equal(FailureReason.OUT_OF_STOCK);
      expect(await paymentsOf(order!.orderId)).to.deep.equal([]);
    });

    it("fails with PRODUCT_NOT_FOUND for an unknown SKU", async () => {
      const { order } = await orders.placeOrder({ idempotencyKey: "k-unknown", items: [{ sku: "unicorn", quantity: 1 }], card: APPROVE }, { headers: alice });
      expect(order?.failureReason).to.equal(FailureReason.PRODUCT_NOT_FOUND);
    });

    it("returns the first answer when PlaceOrder is repeated, charging once", async () => {
      const before = await stockOf("notebook-a5");
      const req = { idempotencyKey: "k-repeat", items: [{ sku: "notebook-a5", quantity: 1 }], card: APPROVE };
      const first = await orders.placeOrder(req, { headers: alice });
      const again = await Promise.all([1, 2, 3, 4].map(() => orders.placeOrder(req, { headers: alice })));
      for (const r of again) expect(r.order?.orderId).to.equal(first.order?.orderId);
      expect(await stockOf("notebook-a5")).to.equal(before - 1);
      expect(await paymentsOf(first.order!.orderId)).to.have.length(1);
    });

    it("runs one saga when the same PlaceOrder arrives many times at once", async () => {
      const before = await stockOf("pencil-set");
      const req = { idempotencyKey: "k-burst", items: [{ sku: "pencil-set", quantity: 1 }], card: APPROVE };
      const all = await Promise.all(Array.from({ length: 6 }, () => orders.placeOrder(req, { headers: alice })));
      expect(new Set(all.map((r) => r.order?.orderId)).size).to.equal(1);
      expect(all.every((r) => r.order?.state === OrderState.CONFIRMED)).to.equal(true);
      expect(await stockOf("pencil-set")).to.equal(before - 1);
      expect(await paymentsOf(all[0].order!.orderId)).to.have.length(1);
    });

    it("refuses an idempotency key reused for a different order (ALREADY_EXISTS)", async () => {
      const err = await rejection(
        orders.placeOrder({ idempotencyKey: "k-approve", items: [{ sku: "mug-blue", quantity: 3 }], card: APPROVE }, { headers: alice }),
      );
      expect(err.code).to.equal(Code.AlreadyExists);
    });

    it("keeps keys per user: bob's k-approve is bob's own order", async () => {
      const { order } = await orders.placeOrder({ idempotencyKey: "k-approve", items: [{ sku: "mug-white", quantity: 1 }], card: APPROVE }, { headers: bob });
      expect(order?.userId).to.equal("bob");
      expect(order?.state).to.equal(OrderState.CONFIRMED);
    });

    it("rejects bad input naming the field", async () => {
      const noItems = await rejection(orders.placeOrder({ idempotencyKey: "k-bad", items: [], card: APPROVE }, { headers: alice }));
      expect(noItems.code).to.equal(Code.InvalidArgument);
      expect(noItems.rawMessage).to.contain("items");
      const badCard = await rejection(
        orders.placeOrder({ idempotencyKey: "k-bad", items: [{ sku: "mug-blue", quantity: 1 }], card: { ...APPROVE, expMonth: 13 } }, { headers: alice }),
      );
      expect(badCard.rawMessage).to.contain("card.exp_month");
      const twice = await rejection(
        orders.placeOrder(
          {
            idempotencyKey: "k-bad",
            items: [
              { sku: "mug-blue", quantity: 1 },
              { sku: "mug-blue", quantity: 1 },
            ],
            card: APPROVE,
          },
          { headers: alice },
        ),
      );
      expect(twice.code).to.equal(Code.InvalidArgument);
      expect(twice.rawMessage).to.contain("items").and.contain("mug-blue");
    });

    it("ends FAILED with DEPENDENCY_UNAVAILABLE when payment keeps failing, with the stock back", async () => {
      const before = await stockOf("candle-cedar");
      peers.payment.faults.set({ ...NO_FAULTS, errorPercent: 100, methods: ["Charge"] });
      try {
        const { order } = await orders.placeOrder(
          { idempotencyKey: "k-payment-down", items: [{ sku: "candle-cedar", quantity: 1 }], card: APPROVE },
          { headers: alice },
        );
        // The charge may or may not have happened (UNAVAILABLE), so the order waits for recovery rather than guessing.
        expect(order?.state).to.equal(OrderState.PENDING);
        const settled = await waitForFinal(orders, order!.orderId, alice);
        expect(settled.state).to.equal(OrderState.FAILED);
        expect(settled.failureReason).to.equal(FailureReason.DEPENDENCY_UNAVAILABLE);
        expect(await stockOf("candle-cedar")).to.equal(before);
        expect(await paymentsOf(order!.orderId)).to.deep.equal([]);
      } finally {
        peers.payment.faults.set(NO_FAULTS);
      }
    });

    it("retries a charge that failed once with the same key, and confirms", async () => {
      peers.payment.faults.set({ ...NO_FAULTS, failNext: 1, methods: ["Charge"] });
      try {
        const { order } = await orders.placeOrder({ idempotencyKey: "k-retry", items: [{ sku: "plant-pot", quantity: 1 }], card: APPROVE }, { headers: alice });
        expect(order?.state).to.equal(OrderState.CONFIRMED);
        expect(peers.payment.faults.current.failNext).to.equal(0); // the fault really fired
        expect(await paymentsOf(order!.orderId)).to.have.length(1);
      } finally {
        peers.payment.faults.set(NO_FAULTS);
      }
    });
  });

  describe("configuration", () => {
    it("names IDENTITY_JWKS_URL when it is not a URL", () => {
      expect(() => ordersConfig({ IDENTITY_JWKS_URL: "identity:9090" })).to.throw(ConfigError, /IDENTITY_JWKS_URL/);
    });
  });

  describe("authentication and ownership", () => {
    it("answers UNAUTHENTICATED without a token, with an expired one and with a forged one", async () => {
      const req = { idempotencyKey: "k-auth", items: [{ sku: "mug-blue", quantity: 1 }], card: APPROVE };
      expect((await rejection(orders.placeOrder(req))).code).to.equal(Code.Unauthenticated);
      const expired = bearer(await peers.token("alice", { expiresIn: Math.floor(Date.now() / 1000) - 60 }));
      expect((await rejection(orders.listOrders({}, { headers: expired }))).code).to.equal(Code.Unauthenticated);
      const [h, p] = (await peers.token("alice")).split(".");
      const forged = bearer(`${h}.${p}.${Buffer.from("not the signature").toString("base64url")}`);
      expect((await rejection(orders.listOrders({}, { headers: forged }))).code).to.equal(Code.Unauthenticated);
    });

    it("shows a user their own order, hides it from others, and says NOT_FOUND for an unknown id", async () => {
      const { order } = await orders.placeOrder({ idempotencyKey: "k-own", items: [{ sku: "jump-rope", quantity: 1 }], card: APPROVE }, { headers: alice });
      expect((await orders.getOrder({ orderId: order!.orderId }, { headers: alice })).order?.state).to.equal(OrderState.CONFIRMED);
      // Bob gets exactly what an unknown id gets (code, reason, message), so the answer leaks no existence.
      const hidden = await rejection(orders.getOrder({ orderId: order!.orderId }, { headers: bob }));
      const unknown = await rejection(orders.getOrder({ orderId: "ord_nope" }, { headers: alice }));
      expect(unknown.code).to.equal(Code.NotFound);
      const answer = (e: typeof hidden, id: string) => ({ code: e.code, reason: errorReason(e), message: e.rawMessage.replaceAll(id, "<id>") });
      expect(answer(hidden, order!.orderId)).to.deep.equal(answer(unknown, "ord_nope"));
    });

    it("lists only the caller's orders, newest first, in pages", async () => {
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await orders.listOrders({ pageSize: 3, pageToken }, { headers: alice });
        for (const o of page.orders) expect(o.userId).to.equal("alice");
        seen.push(...page.orders.map((o) => o.orderId));
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(seen.length).to.be.at.least(8);
      expect(new Set(seen).size).to.equal(seen.length);
      const tampered = Buffer.from(JSON.stringify({ t: "yesterday", id: "x" })).toString("base64url");
      const err = await rejection(orders.listOrders({ pageToken: tampered }, { headers: alice }));
      expect([Code[err.code], err.rawMessage]).to.deep.equal(["InvalidArgument", "page_token: is not a token returned by this API"]);
      const bobs = await orders.listOrders({}, { headers: bob });
      expect(bobs.orders.map((o) => o.userId)).to.deep.equal(["bob"]);
    });
  });
});

async function waitForFinal(orders: Client<typeof OrderService>, orderId: string, headers: Record<string, string>, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { order } = await orders.getOrder({ orderId }, { headers });
    if (order && order.state !== OrderState.PENDING) return order;
    if (Date.now() > until) throw new Error(`order ${orderId} still PENDING after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100)); // the recovery loop runs every 100 ms here
  }
}
