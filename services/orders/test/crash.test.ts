// Kills a real orders process in the middle of the saga (test/crash-entry.ts: SIGKILL right after a
// step is recorded), restarts it, and checks that recovery leaves the order final with stock and payments consistent.
import { expect } from "chai";
import { OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { clientPool } from "#kit";
import { freePort } from "../../../tools/stack/devdb.js";
import { waitForHealth } from "../../../tools/stack/health-wait.js";
import { startProcess } from "../../../tools/stack/process.js";
import { APPROVE, bearer, OrderService, ordersEnv, type Peers, startPeers } from "./fixture.js";

describe("orders crash recovery", () => {
  const clients = clientPool();
  let peers: Peers;
  let alice: Record<string, string>;

  before(async () => {
    peers = await startPeers();
    alice = bearer(await peers.token("alice"));
  });
  after(async () => {
    clients.close();
    await peers?.stop();
  });

  const stockOf = async (sku: string) => (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;

  /** Places an order on a process that dies after `step`, restarts orders, and returns the recovered order. */
  async function crashAndRecover(step: string, key: string, sku: string) {
    const port = await freePort();
    const env = ordersEnv(peers, { PORT: String(port), RECOVERY_AFTER_MS: "500", RECOVERY_INTERVAL_MS: "200" });
    const doomed = startProcess("services/orders/test/crash-entry.ts", { ...env, CRASH_AFTER_STEP: step });
    await waitForHealth(`127.0.0.1:${port}`);
    const orders = clients.dial(OrderService, `127.0.0.1:${port}`);
    const attempt = await orders.placeOrder({ idempotencyKey: key, items: [{ sku, quantity: 1 }], card: APPROVE }, { headers: alice }).then(
      () => "answered",
      () => "lost",
    );
    expect(attempt).to.equal("lost"); // the process died mid-call
    expect(await doomed.exited).to.equal(null); // killed by SIGKILL, not an exit
    expect(doomed.output()).to.contain("TEST HOOK");

    const restarted = startProcess("services/orders/src/main.ts", env);
    try {
      await waitForHealth(`127.0.0.1:${port}`);
      const { orders: mine } = await orders.listOrders({}, { headers: alice });
      const stuck = mine.find((o) => o.items.some((i) => i.sku === sku));
      expect(stuck, "the interrupted order was stored").to.not.equal(undefined);
      for (const until = Date.now() + 20_000; Date.now() < until; ) {
        const { order } = await orders.getOrder({ orderId: stuck!.orderId }, { headers: alice });
        if (order && order.state !== OrderState.PENDING) return order;
        await new Promise((r) => setTimeout(r, 100)); // recovery runs every 200 ms once the order is 500 ms old
      }
      throw new Error(`order still PENDING after restart:\n${restarted.output()}`);
    } finally {
      expect(await restarted.stop()).to.equal(0);
    }
  }

  it("releases the stock when the process dies between reserve and charge", async () => {
    const before = await stockOf("usb-c-cable");
    const order = await crashAndRecover("RESERVED", "crash-reserved", "usb-c-cable");
    expect(order.state).to.equal(OrderState.FAILED);
    expect(await stockOf("usb-c-cable")).to.equal(before);
    expect((await peers.paymentClient.listPayments({ orderId: order.orderId })).payments).to.deep.equal([]);
  });

  it("finds out there was no charge when the process dies just before sending it", async () => {
    const before = await stockOf("power-bank");
    const order = await crashAndRecover("CHARGING", "crash-charging", "power-bank");
    expect(order.state).to.equal(OrderState.FAILED);
    expect(await stockOf("power-bank")).to.equal(before);
    expect((await peers.paymentClient.listPayments({ orderId: order.orderId })).payments).to.deep.equal([]);
  });

  it("confirms the order when the process dies after the card was charged", async () => {
    const before = await stockOf("desk-lamp");
    const order = await crashAndRecover("CHARGED", "crash-charged", "desk-lamp");
    expect(order.state).to.equal(OrderState.CONFIRMED);
    expect(await stockOf("desk-lamp")).to.equal(before - 1);
    const { payments } = await peers.paymentClient.listPayments({ orderId: order.orderId });
    expect(payments.map((p) => p.state)).to.deep.equal([PaymentState.APPROVED]);
  });
});
