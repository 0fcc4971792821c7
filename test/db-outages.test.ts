// Every service reconnects after a database outage, every time: ten outages in a row, each 3–10 s long
// (seeded: DB_OUTAGE_SEED), while shoppers keep calling every service. After each, every service must answer
// health SERVING within 5 s of the database being back, and real calls on each must succeed. Real processes
// (tools/stack/launcher.ts) over the embedded database.
import { expect } from "chai";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { clientPool } from "#kit";
import { waitForHealth } from "../tools/stack/health-wait.js";
import { type Stack, startStack, UNITS } from "../tools/stack/launcher.js";
import { APPROVED_CARD } from "../tools/traffic/load/shopper.js";
import { signedInShopper } from "./support/shopper.js";

const OUTAGES = 10;
const SEED = Number(process.env.DB_OUTAGE_SEED ?? 12);
/** Callers running all along: enough that every service has many database operations in flight when it stops. */
const CALLERS = 40;
const BACK_WITHIN_MS = 5000;

/** mulberry32: a small seeded generator, so a failing run can be repeated with its seed. */
function seeded(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("database outages under load: every service back within 5 s, every time", function () {
  this.timeout(600_000);
  const clients = clientPool();
  let stack: Stack;
  before(async () => {
    stack = await startStack({ logLevel: "warn" });
  });
  after(async () => {
    clients.close();
    await stack?.stop();
  });

  it(`${OUTAGES} outages of 3–10 s in a row (seed ${SEED})`, async () => {
    const identity = clients.dial(IdentityService, stack.endpoints.identity.grpc);
    const catalogs = [clients.dial(CatalogService, stack.endpoints["catalog-v1"].grpc), clients.dial(CatalogService, stack.endpoints["catalog-v2"].grpc)];
    const orders = clients.dial(OrderService, stack.endpoints.orders.grpc);
    const payment = clients.dial(PaymentService, stack.endpoints.payment.grpc);
    const headers = await signedInShopper(identity, "outages@example.com", "Outages");
    const card = APPROVED_CARD;
    // The load's orders get a long deadline, so each caller has one saga in flight at most: with a short one the
    // caller gave up and placed again while orders still compensated the last (with fresh deadlines), and after a
    // long outage that backlog made the round's own PlaceOrder miss its deadline though every service was back.
    // The load's orders are declined at payment: every saga step still writes (reserve, charge, release), and
    // the stock is given back, so the orders placed after each outage never run out of it.
    const declined = { ...card, number: "4000000000000002" };
    let n = 0;
    const place = (timeoutMs: number, payWith = card) =>
      orders.placeOrder({ idempotencyKey: `outage-${n++}`, items: [{ sku: "pencil-set", quantity: 1 }], card: payWith }, { headers, timeoutMs });

    // One round of real calls, one per service: what a shopper needs to work once the database is back.
    const round = async () => {
      const placed = await place(10_000).catch((e: Error) => {
        throw new Error(`placeOrder: ${e.message}`);
      });
      expect(placed.order?.state, `an order placed after the outage: ${placed.order?.failureMessage}`).to.equal(OrderState.CONFIRMED);
      await payment.getPayment({ paymentId: placed.order?.paymentId ?? "" }, { timeoutMs: 5000 }).catch((e: Error) => {
        throw new Error(`getPayment: ${e.message}`);
      });
      for (const c of catalogs)
        await c.getProduct({ sku: "pencil-set" }, { timeoutMs: 5000 }).catch((e: Error) => {
          throw new Error(`getProduct: ${e.message}`);
        });
      await identity.getMe({}, { headers, timeoutMs: 5000 }).catch((e: Error) => {
        throw new Error(`getMe: ${e.message}`);
      });
    };
    await round();

    // The load: every caller loops over reads and writes on every service, through the outages too.
    let loading = true;
    let ok = 0;
    let failed = 0;
    const caller = async (i: number) => {
      const pause = () => new Promise((r) => setTimeout(r, 100));
      while (loading) {
        const call =
          i % 4 === 0
            ? place(15_000, declined)
            : i % 4 === 1
              ? catalogs[i % 2].listProducts({ pageSize: 20 }, { timeoutMs: 3000 })
              : i % 4 === 2
                ? identity.getMe({}, { headers, timeoutMs: 3000 })
                : payment.listPayments({ orderId: `ord-${i}` }, { timeoutMs: 3000 });
        await call.then(
          () => ok++,
          () => {
            failed++;
            return pause(); // down: do not spin
          },
        );
      }
    };
    const callers = Array.from({ length: CALLERS }, (_, i) => caller(i));

    const random = seeded(SEED);
    const results: string[] = [];
    try {
      for (let k = 0; k < OUTAGES; k++) {
        await new Promise((r) => setTimeout(r, 1500)); // load running with the database up
        const downMs = 3000 + Math.floor(random() * 7000);
        await stack.stopDb();
        await new Promise((r) => setTimeout(r, downMs));
        await stack.startDb();
        const back = Date.now();
        const late = (
          await Promise.all(
            UNITS.map((u) =>
              waitForHealth(stack.endpoints[u].grpc, { timeoutMs: BACK_WITHIN_MS }).then(
                () => undefined,
                (err: Error) => `${u}: ${err.message}`,
              ),
            ),
          )
        ).filter((x) => x !== undefined);
        const servingMs = Date.now() - back;
        results.push(`outage ${k + 1}: down ${downMs} ms, every service SERVING ${servingMs} ms after the database was back`);
        const logs = () => UNITS.map((u) => `--- ${u}\n${stack.output(u).split("\n").slice(-6).join("\n")}`).join("\n");
        expect(late, `outage ${k + 1} (down ${downMs} ms): services not SERVING within ${BACK_WITHIN_MS} ms\n${logs()}`).to.deep.equal([]);
        await round().catch((err: Error) => {
          throw new Error(`round after outage ${k + 1}: ${err.message}\n${logs()}`);
        });
      }
    } finally {
      loading = false;
      await Promise.all(callers);
      console.log(`      ${results.join("\n      ")}\n      load: ${ok} calls answered, ${failed} failed (most during the outages)`);
    }
    expect(ok, "the load really ran").to.be.above(OUTAGES * 10);
  });
});
