// A peer that comes back is noticed: after payment has been down a while, orders charges through it again
// within seconds of it being SERVING. grpc-js backs off reconnecting up to 120 s by default, and while it waits
// every call fails at once; the kit bounds the backoff (CLIENT_CHANNEL_OPTIONS). Real processes (tools/stack/launcher.ts).
// RECONNECT_OUTAGE_MS sets the outage (default 30 s: by then the default backoff has grown past 10 s).
import { expect } from "chai";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { clientPool } from "#kit";
import { type Stack, startStack } from "../tools/stack/launcher.js";

const OUTAGE_MS = Number(process.env.RECONNECT_OUTAGE_MS ?? 30_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a peer that comes back is noticed (bounded reconnect backoff)", function () {
  this.timeout(OUTAGE_MS + 180_000);
  const clients = clientPool();
  let stack: Stack;
  before(async () => {
    stack = await startStack({ logLevel: "warn", healthTimeoutMs: 180_000 });
  });
  after(async () => {
    clients.close();
    await stack?.stop();
  });

  it(`orders charges through payment within 3 s of payment SERVING again after a ${OUTAGE_MS / 1000} s outage`, async () => {
    const identity = clients.dial(IdentityService, stack.endpoints.identity.grpc);
    const orders = clients.dial(OrderService, stack.endpoints.orders.grpc);
    await identity.register({ email: "back@example.com", password: "correct-horse-1", displayName: "Back" });
    const { accessToken } = await identity.login({ email: "back@example.com", password: "correct-horse-1" });
    const card = { number: "4242424242424242", expMonth: 12, expYear: 2099, cvc: "123" };
    let n = 0;
    const place = () =>
      orders
        .placeOrder(
          { idempotencyKey: `back-${n++}`, items: [{ sku: "pencil-set", quantity: 1 }], card },
          { headers: { authorization: `Bearer ${accessToken}` }, timeoutMs: 10_000 },
        )
        .then((r) => r.order?.state)
        .catch(() => undefined);
    expect(await place(), "the channel works before the outage").to.equal(OrderState.CONFIRMED);

    await stack.kill("payment");
    // Shoppers keep ordering during the outage: every Charge fails, and orders' channel to payment backs off.
    for (const until = Date.now() + OUTAGE_MS; Date.now() < until; ) {
      expect(await place()).to.not.equal(OrderState.CONFIRMED);
      await sleep(1000);
    }
    await stack.start("payment"); // resolves once payment answers health SERVING
    const serving = Date.now();
    let firstMs = -1;
    for (const until = serving + 60_000; Date.now() < until; ) {
      if ((await place()) === OrderState.CONFIRMED) {
        firstMs = Date.now() - serving;
        break;
      }
      await sleep(100);
    }
    console.log(`      first confirmed order ${firstMs} ms after payment was SERVING (outage ${OUTAGE_MS / 1000} s)`);
    expect(firstMs, "an order was confirmed at all within 60 s").to.be.at.least(0);
    expect(firstMs).to.be.below(3000);
  });
});
