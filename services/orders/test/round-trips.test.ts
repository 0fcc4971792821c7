// The database round trips one PlaceOrder costs across orders, catalog and payment, counted on the wire
// (test/support/command-count.ts). On the embedded FerretDB every command is a SQLite transaction and a
// JSON round trip, and PlaceOrder is database-bound: these budgets keep the saga from growing back.
import type { Client } from "@connectrpc/connect";
import { expect } from "chai";
import { OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import type { RunningServer } from "#kit";
import { clientPool } from "#kit";
import { type CommandCounter, startCommandCounter } from "../../../test/support/command-count.js";
import { testMongoUri } from "../../../test/support/db.js";
import { ordersConfig, startOrders } from "../src/server.js";
import { APPROVE, bearer, OrderService, ordersEnv, type Peers, startPeers } from "./fixture.js";

describe("PlaceOrder database round trips", () => {
  const clients = clientPool();
  let counter: CommandCounter;
  let peers: Peers;
  let server: RunningServer;
  let orders: Client<typeof OrderService>;
  let alice: Record<string, string>;

  before(async () => {
    counter = await startCommandCounter(testMongoUri());
    peers = await startPeers({ mongoUri: counter.uri });
    // No recovery pass inside the measured call.
    server = await startOrders(ordersConfig(ordersEnv(peers, { RECOVERY_INTERVAL_MS: "600000" })));
    orders = clients.dial(OrderService, `127.0.0.1:${server.port}`);
    alice = bearer(await peers.token("alice"));
    // Connections, collections and indexes are made on first use: not part of an order's cost.
    await orders.placeOrder({ idempotencyKey: "warm-up", items: [{ sku: "mug-blue", quantity: 1 }], card: APPROVE }, { headers: alice });
  });
  after(async () => {
    clients.close();
    await server?.shutdown();
    await peers?.stop();
    await counter?.close();
  });

  it("confirms a one-item order in 11 commands: 3 in orders, 6 in catalog, 2 in payment", async () => {
    counter.reset();
    const { order } = await orders.placeOrder({ idempotencyKey: "counted", items: [{ sku: "mug-blue", quantity: 1 }], card: APPROVE }, { headers: alice });
    expect(order?.state).to.equal(OrderState.CONFIRMED);
    const counts = counter.counts();
    const db = (name: string) =>
      Object.fromEntries(
        Object.entries(counts)
          .filter(([k]) => k.startsWith(`${name}.`))
          .map(([k, n]) => [k.slice(k.indexOf(".") + 1), n]),
      );
    // orders: the insert (which also claims the order for this run: no lock), CHARGING (with what was reserved)
    // before the charge, DONE.
    expect(db(peers.dbNames.orders), "orders").to.deep.equal({ "orders insert": 1, "orders findAndModify": 2 });
    // payment: the payment and its ledger entry, both keyed inserts: no lock, no read.
    expect(db(peers.dbNames.payment), "payment").to.deep.equal({ "payments insert": 1, "ledger insert": 1 });
    // catalog: reserve (the RESERVING insert, the product's stock take, RESERVED) and commit (the reservation,
    // its COMMITTED claim, the product's hold); no lock, no read before the insert, nothing per product but its update.
    expect(db(peers.dbNames.catalog), "catalog").to.deep.equal({
      "reservations insert": 1,
      "products findAndModify": 1,
      "reservations findAndModify": 2,
      "reservations find": 1,
      "products update": 1,
    });
    expect(counter.total(), JSON.stringify(counts)).to.equal(11);
  });
});
