// End to end, the way the README runs it: tools/stack/start.ts brings up the embedded database and every service,
// as separate processes (services mode) and as one process (monolith mode); the real grpcurl binary walks
// register → login → products → orders against each.
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { expect } from "chai";
import { type LocalStack, startLocalStack } from "../tools/stack/child-stack.js";
import { type Endpoints, UNITS } from "../tools/stack/launcher.js";
import { grpcurl, grpcurlCall } from "./support/grpcurl.js";

interface Order {
  orderId: string;
  state: string;
  failureReason?: string;
  paymentId?: string;
}

for (const mode of ["services", "monolith"] as const) {
  describe(`end to end (${mode} mode): the local stack through grpcurl`, function () {
    this.timeout(120_000);
    let stack: LocalStack;
    let at: Endpoints;
    let token: string;

    before(async () => {
      // The README's way: tools/stack/start.ts on free ports with its own embedded database (monolith mode: every
      // service on the one port).
      stack = await startLocalStack(mode, { env: { LOG_LEVEL: "info" } });
      const { ready } = stack;
      at = mode === "monolith" ? (Object.fromEntries(UNITS.map((u) => [u, ready.monolith])) as Endpoints) : (ready as unknown as Endpoints);
    });
    after(async () => {
      if (stack) expect((await stack.stop()).code, "Ctrl-C stops everything cleanly").to.equal(0);
    });

    const stockOf = async (sku: string) =>
      (await grpcurlCall<{ product: { stock: number } }>(at["catalog-v1"].grpc, "meshmart.catalog.v1.CatalogService/GetProduct", { sku })).product.stock;
    const paymentsOf = async (orderId: string) =>
      (await grpcurlCall<{ payments?: { state: string }[] }>(at.payment.grpc, "meshmart.payment.v1.PaymentService/ListPayments", { orderId })).payments ?? [];
    const placeOrder = (body: unknown) =>
      grpcurlCall<{ order: Order }>(at.orders.grpc, "meshmart.orders.v1.OrderService/PlaceOrder", body, { authorization: `Bearer ${token}` });
    const card = (number: string) => ({ number, expMonth: 12, expYear: 2099, cvc: "123" });

    it("registers and logs in", async () => {
      const reg = await grpcurlCall<{ user: { userId: string } }>(at.identity.grpc, "meshmart.identity.v1.IdentityService/Register", {
        email: "e2e@example.com",
        password: "correct-horse-1",
        displayName: "E2E",
      });
      expect(reg.user.userId).to.be.a("string").that.is.not.empty;
      const login = await grpcurlCall<{ accessToken: string }>(at.identity.grpc, "meshmart.identity.v1.IdentityService/Login", {
        email: "e2e@example.com",
        password: "correct-horse-1",
      });
      token = login.accessToken;
      const me = await grpcurlCall<{ user: { email: string } }>(
        at.identity.grpc,
        "meshmart.identity.v1.IdentityService/GetMe",
        {},
        { authorization: `Bearer ${token}` },
      );
      expect(me.user.email).to.equal("e2e@example.com");
    });

    it("lists the seeded products", async () => {
      const { products } = await grpcurlCall<{ products: { sku: string }[] }>(at["catalog-v1"].grpc, "meshmart.catalog.v1.CatalogService/ListProducts", {
        pageSize: 100,
      });
      expect(products.length).to.be.at.least(20);
    });

    it("confirms an order paid with an approved card, takes the stock and makes one payment", async () => {
      const before = await stockOf("mug-blue");
      const { order } = await placeOrder({ idempotencyKey: "e2e-1", items: [{ sku: "mug-blue", quantity: 2 }], card: card("4242424242424242") });
      expect(order.state).to.equal("ORDER_STATE_CONFIRMED");
      const read = await grpcurlCall<{ order: Order }>(
        at.orders.grpc,
        "meshmart.orders.v1.OrderService/GetOrder",
        { orderId: order.orderId },
        { authorization: `Bearer ${token}` },
      );
      expect(read.order.state).to.equal("ORDER_STATE_CONFIRMED");
      expect(await stockOf("mug-blue")).to.equal(before - 2);
      expect((await paymentsOf(order.orderId)).map((p) => p.state)).to.deep.equal(["PAYMENT_STATE_APPROVED"]);
    });

    it("fails an order paid with a declined card, with the stock back and no net charge", async () => {
      const before = await stockOf("french-press");
      const { order } = await placeOrder({ idempotencyKey: "e2e-2", items: [{ sku: "french-press", quantity: 1 }], card: card("4000000000000002") });
      expect(order.state).to.equal("ORDER_STATE_FAILED");
      expect(order.failureReason).to.equal("FAILURE_REASON_PAYMENT_DECLINED");
      expect(await stockOf("french-press")).to.equal(before);
      expect((await paymentsOf(order.orderId)).map((p) => p.state)).to.deep.equal(["PAYMENT_STATE_DECLINED"]);
    });

    it("makes one order and one charge when the same PlaceOrder is sent twice with one key", async () => {
      const before = await stockOf("tea-sencha");
      const body = { idempotencyKey: "e2e-3", items: [{ sku: "tea-sencha", quantity: 1 }], card: card("4242424242424242") };
      const first = await placeOrder(body);
      const second = await placeOrder(body);
      expect(second.order.orderId).to.equal(first.order.orderId);
      expect(await stockOf("tea-sencha")).to.equal(before - 1);
      expect(await paymentsOf(first.order.orderId)).to.have.length(1);
    });

    it("shows which catalog version answered (x-served-by)", async () => {
      const version = mode === "services" ? "v2" : "v1"; // the monolith runs catalog v1 only
      const r = await grpcurl(["-v", "-d", '{"sku":"mug-blue"}', at[`catalog-${version}`].grpc, "meshmart.catalog.v1.CatalogService/GetProduct"]);
      expect(r.stdout).to.contain(`x-served-by: catalog-${version}`);
    });

    it("walks the whole flow with npm run flow's script", async () => {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          [
            "--import",
            "tsx",
            "tools/traffic/flow.ts",
            "--json",
            "--identity",
            at.identity.grpc,
            "--catalog",
            at["catalog-v1"].grpc,
            "--orders",
            at.orders.grpc,
          ],
          (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
        ),
      );
      const result = JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
      expect(result.state).to.equal("CONFIRMED");
      expect(result.stockAfter).to.equal(result.stockBefore - 1);
    });

    it("refuses a second `start.ts --fresh` on its data directory, deleting nothing, and keeps taking orders", async () => {
      const files = readdirSync(stack.dataDir).sort();
      // (With MONGODB_URI set the stack uses that server and its directory stays empty: the owner file still tells.)
      if (!process.env.MONGODB_URI) expect(files.length, "the running database has files").to.be.greaterThan(0);
      const second = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          ["--import", "tsx", "tools/stack/start.ts", "--fresh", "--ports", "auto", "--mode", mode, "--data-dir", stack.dataDir],
          { timeout: 60_000 },
          (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        ),
      );
      expect(second.code).to.equal(1);
      expect(second.stderr).to.contain(`the data directory ${stack.dataDir} is in use by pid`);
      expect(second.stderr).to.contain("Nothing was deleted or started");
      expect(readdirSync(stack.dataDir).sort()).to.deep.equal(files);
      const { order } = await placeOrder({
        idempotencyKey: "e2e-after-second-start",
        items: [{ sku: "mug-blue", quantity: 1 }],
        card: card("4242424242424242"),
      });
      expect(order.state).to.equal("ORDER_STATE_CONFIRMED");
    });
  });
}
