// The load generator against the real local stack (tools/stack/start.ts: every service as its own process, the
// embedded database): a few seconds of the whole shopper mix, then the report must add up and every order
// it says it placed must exist, in the state it reported.
import { type Client, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { createGrpcJsTransport } from "#kit";
import { type LocalStack, startLocalStack } from "../../tools/stack/child-stack.js";
import { LOAD_PASSWORD, type LoadReport, OPS, runLoad, type SecondStats } from "../../tools/traffic/load/index.js";

describe("load generator against the local stack (services mode)", function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let report: LoadReport;
  const live: SecondStats[] = [];

  before(async () => {
    stack = await startLocalStack("services");
    report = await runLoad({
      targets: stack.targets,
      rate: 15,
      durationMs: 3000,
      mix: { browse: 3, search: 2, getProduct: 4, login: 1, placeOrder: 3 },
      users: 3,
      seed: 42,
      deadlineMs: 20_000, // generous: the machine may be busy, and this test is about counting, not speed
      onSecond: (s) => live.push(s),
    });
  });
  after(async () => {
    await stack?.stop();
  });

  it("sent = completed + dropped = the sum of every op's codes", () => {
    expect(report.sent).to.equal(45);
    expect(report.completed + report.dropped).to.equal(report.sent);
    const ops = Object.values(report.byOp);
    expect(ops.reduce((n, op) => n + op.count, 0)).to.equal(report.sent);
    for (const [name, op] of Object.entries(report.byOp)) {
      expect(
        Object.values(op.codes).reduce((n, c) => n + c, 0),
        name,
      ).to.equal(op.count);
      expect(op.codes.ok ?? 0, `${name} answered`).to.be.greaterThan(0);
      expect(op.latencyMs.p50).to.be.at.most(op.latencyMs.p99);
      expect(op.latencyMs.p99).to.be.at.most(op.latencyMs.max);
    }
    expect(Object.keys(report.byOp).sort()).to.deep.equal([...OPS].sort()); // the seeded mix drew every op
  });

  it("has one timeline entry per second, reported live and in order, adding up to the totals", () => {
    expect(report.timeline.map((s) => s.t)).to.deep.equal([0, 1, 2]);
    expect(live).to.deep.equal(report.timeline);
    const sum = (f: (s: SecondStats) => number) => report.timeline.reduce((n, s) => n + f(s), 0);
    expect(sum((s) => s.sent)).to.equal(report.sent);
    expect(sum((s) => s.ok + s.errors)).to.equal(report.sent);
    const codes: Record<string, number> = {};
    for (const op of Object.values(report.byOp)) for (const [c, n] of Object.entries(op.codes)) codes[c] = (codes[c] ?? 0) + n;
    const timelineCodes: Record<string, number> = {};
    for (const s of report.timeline) for (const [c, n] of Object.entries(s.codes)) timelineCodes[c] = (timelineCodes[c] ?? 0) + n;
    expect(timelineCodes).to.deep.equal(codes);
    for (const s of report.timeline) expect(s.ok).to.equal(s.codes.ok ?? 0);
  });

  it("lists every order it sent, each of which exists as reported (GetOrder as its shopper)", async () => {
    const placeOrder = report.byOp.placeOrder!;
    expect(report.placedOrders).to.have.length(placeOrder.count - (placeOrder.codes.dropped ?? 0));
    expect(new Set(report.placedOrders.map((o) => o.idempotencyKey)).size, "idempotency keys are unique").to.equal(report.placedOrders.length);
    const answered = report.placedOrders.filter((o) => o.code === "ok");
    expect(answered.length).to.equal(placeOrder.codes.ok);
    expect(answered.length).to.be.greaterThan(0);

    const transport = (at: string) => createGrpcJsTransport({ target: at, defaultTimeoutMs: 20_000 });
    const identityT = transport(stack.targets.identity);
    const ordersT = transport(stack.targets.orders);
    try {
      const identity: Client<typeof IdentityService> = createClient(IdentityService, identityT);
      const orders: Client<typeof OrderService> = createClient(OrderService, ordersT);
      const tokens = new Map<string, string>();
      for (const placed of answered) {
        expect(placed.orderId).to.match(/^ord_/);
        if (!tokens.has(placed.user)) tokens.set(placed.user, (await identity.login({ email: placed.user, password: LOAD_PASSWORD })).accessToken);
        const { order } = await orders.getOrder({ orderId: placed.orderId }, { headers: { authorization: `Bearer ${tokens.get(placed.user)}` } });
        expect(order?.orderId).to.equal(placed.orderId);
        // A PENDING answer may have finished since; a final one never changes.
        if (placed.status !== "PENDING") expect(OrderState[order!.state]).to.equal(placed.status);
      }
    } finally {
      identityT.close();
      ordersT.close();
    }
  });
});
