// The run that creates an order holds it by the order's lease, not by a lock (order-service.ts): repeats of the
// same PlaceOrder, here or on another orders process on the same database, must wait for that run and answer
// with its outcome, never run the saga beside it. Two real orders servers, real catalog, payment and database;
// the saga-point hook counts the saga runs per order and holds the first one at RESERVING.
import type { Client } from "@connectrpc/connect";
import { expect } from "chai";
import { OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { clientPool, type RunningServer } from "#kit";
import { orderIdFor, type SagaStep } from "../src/orders.js";
import { ordersConfig, startOrders } from "../src/server.js";
import { APPROVE, bearer, OrderService, ordersEnv, type Peers, startPeers } from "./fixture.js";

describe("orders: one saga run per order across processes", () => {
  let peers: Peers;
  const servers: RunningServer[] = [];
  const pool = clientPool();
  const clients: Client<typeof OrderService>[] = [];
  let alice: Record<string, string>;
  /** Saga runs started per order (each run passes RESERVING once). */
  const runs = new Map<string, number>();
  /** Orders whose run waits at RESERVING until released, and the wake-ups for the test. */
  const held = new Map<string, { reached: () => void; release: Promise<void> }>();

  const afterStep = async (step: SagaStep, order: { _id: string }) => {
    if (step !== "RESERVING") return;
    runs.set(order._id, (runs.get(order._id) ?? 0) + 1);
    const h = held.get(order._id);
    if (h) {
      h.reached();
      await h.release;
    }
  };

  before(async () => {
    peers = await startPeers();
    // Recovery as eager as the other orders tests: it must not take the order from a run that is alive.
    const env = ordersEnv(peers, { RECOVERY_AFTER_MS: "300", RECOVERY_INTERVAL_MS: "100" });
    for (let i = 0; i < 2; i++) {
      const s = await startOrders(ordersConfig(env), { afterStep });
      servers.push(s);
      clients.push(pool.dial(OrderService, `127.0.0.1:${s.port}`));
    }
    alice = bearer(await peers.token("alice"));
  });
  after(async () => {
    pool.close();
    for (const s of servers) await s.shutdown();
    await peers?.stop();
  });

  const stockOf = async (sku: string) => (await peers.catalogClient.getProduct({ sku })).product?.stock ?? -1;

  it("a repeat on another process waits for the first run (held for a while mid-saga) and answers its outcome", async () => {
    const sku = "desk-lamp";
    const before = await stockOf(sku);
    const req = { idempotencyKey: "k-held", items: [{ sku, quantity: 1 }], card: APPROVE };
    let reached: () => void = () => undefined;
    const atReserving = new Promise<void>((r) => (reached = r));
    let release: () => void = () => undefined;
    const id = orderIdFor("alice", "k-held");
    held.set(id, { reached, release: new Promise<void>((r) => (release = r)) });

    const first = clients[0].placeOrder(req, { headers: alice, timeoutMs: 30_000 });
    await atReserving;
    // Longer than the lease (3 s) would last without renewals: the run is alive, so the repeats keep waiting.
    const repeats = [clients[1].placeOrder(req, { headers: alice, timeoutMs: 30_000 }), clients[0].placeOrder(req, { headers: alice, timeoutMs: 30_000 })];
    await new Promise((r) => setTimeout(r, 4_000));
    release();
    const answers = await Promise.all([first, ...repeats]);
    expect(answers.map((a) => [a.order?.orderId, OrderState[a.order?.state ?? 0]])).to.deep.equal(Array(3).fill([id, "CONFIRMED"]));
    expect(runs.get(id), "saga runs of the order").to.equal(1);
    expect(await stockOf(sku)).to.equal(before - 1);
    expect((await peers.paymentClient.listPayments({ orderId: id })).payments).to.have.length(1);
  }).timeout(30_000);

  it("many PlaceOrders of one key at once, spread over both processes: one order, one saga run, one charge", async () => {
    const sku = "water-bottle";
    const before = await stockOf(sku);
    const req = { idempotencyKey: "k-spread", items: [{ sku, quantity: 1 }], card: APPROVE };
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => clients[i % 2].placeOrder(req, { headers: alice, timeoutMs: 30_000 })));
    const ids = new Set(all.map((r) => r.order?.orderId));
    expect(ids.size).to.equal(1);
    const [id] = ids as Set<string>;
    expect(all.every((r) => r.order?.state === OrderState.CONFIRMED)).to.equal(true);
    expect(runs.get(id), "saga runs of the order").to.equal(1);
    expect(await stockOf(sku)).to.equal(before - 1);
    expect((await peers.paymentClient.listPayments({ orderId: id })).payments).to.have.length(1);
  }).timeout(30_000);
});
