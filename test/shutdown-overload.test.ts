// A SIGTERM right after an overload: sagas still running when GRACE_MS ends must not see the database closed
// under them (INTERNAL). They stop at a recorded step that recovery resumes, the process exits soon after
// its grace period, the new one is SERVING within 5 s, and every order ends CONFIRMED or FAILED with the data
// adding up. The overload is bounded (OVERLOAD_PER_S for OVERLOAD_MS, to 127.0.0.1 only). Real processes.
import { expect } from "chai";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { clientPool } from "#kit";
import { type Stack, startStack } from "../tools/stack/launcher.js";
import { checkDataSet } from "../tools/traffic/data-set.js";
import { LOCAL_RECOVERY } from "../tools/traffic/experiment/run.js";
import { APPROVED_CARD } from "../tools/traffic/load/shopper.js";
import { signedInShopper } from "./support/shopper.js";

const OVERLOAD_PER_S = 100;
const OVERLOAD_MS = 3000;
const GRACE_MS = 2000;

describe("shutdown after an overload: bounded, resumable, no INTERNAL", function () {
  this.timeout(240_000);
  const clients = clientPool();
  let stack: Stack;
  before(async () => {
    stack = await startStack({ logLevel: "warn", recovery: LOCAL_RECOVERY, env: { orders: { GRACE_MS: String(GRACE_MS) } } });
  });
  after(async () => {
    clients.close();
    await stack?.stop();
  });

  it(`SIGTERM after ${OVERLOAD_PER_S}/s PlaceOrder for ${OVERLOAD_MS / 1000} s: exits within its grace period plus a few seconds, comes back SERVING within 5 s, every order settles`, async () => {
    const identity = clients.dial(IdentityService, stack.endpoints.identity.grpc);
    const orders = clients.dial(OrderService, stack.endpoints.orders.grpc);
    const headers = await signedInShopper(identity, "overload@example.com", "Overload");
    const card = APPROVED_CARD;
    // Slow charges: sagas pile up mid-way, as under a real overload, and are still running when the grace ends.
    await stack.setFaults("payment", { delayMs: 3000, delayPercent: 100, methods: ["Charge"] });

    const calls: Promise<unknown>[] = [];
    const started = Date.now();
    for (let i = 0; Date.now() - started < OVERLOAD_MS; i++) {
      calls.push(
        orders
          .placeOrder({ idempotencyKey: `overload-${i}`, items: [{ sku: "pencil-set", quantity: 1 }], card }, { headers, timeoutMs: 20_000 })
          .catch(() => undefined),
      );
      await new Promise((r) => setTimeout(r, 1000 / OVERLOAD_PER_S));
    }

    const before = stack.output("orders").length;
    const sigterm = Date.now();
    await stack.kill("orders", "SIGTERM");
    const stopMs = Date.now() - sigterm;
    const shutdownLog = stack.output("orders").slice(before);
    await stack.setFaults("payment", {});
    const restart = Date.now();
    await stack.start("orders");
    const servingMs = Date.now() - restart;
    await Promise.all(calls);
    console.log(
      `      ${calls.length} PlaceOrder sent; orders stopped ${stopMs} ms after SIGTERM (grace ${GRACE_MS} ms), new process SERVING after ${servingMs} ms`,
    );

    expect(shutdownLog, "the shutdown really cut sagas short").to.contain("grace period over");
    expect(shutdownLog.match(/.*"code":"Internal".*|.*rpc failed.*/g) ?? [], "INTERNAL answers during the shutdown").to.deep.equal([]);
    expect(stopMs, "exit within the grace period plus the bounded wait for cancelled calls").to.be.below(GRACE_MS + 3000 + 3000);
    expect(servingMs, "the new process SERVING").to.be.below(5000);

    const report = await checkDataSet(stack.mongoUri, { settleTimeoutMs: 60_000 });
    expect(report.counts.pending, `orders still PENDING: ${JSON.stringify(report.counts)}`).to.equal(0);
    expect(report.results.filter((r) => !r.ok)).to.deep.equal([]);
    expect(stack.output("orders"), "the new process resumed what the shutdown left").to.contain("recovering interrupted order");
  });
});
