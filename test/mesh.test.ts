// Issue 10: the mesh policy in mesh/ executed by the real Istio control plane (istiod from a config directory,
// built by tools/setup/setup.sh --mesh) with the services as proxyless gRPC clients, on one machine. One mesh stack
// (tools/stack/launcher.ts with `mesh`) is shared by every test here; each test applies what it needs through istiod
// and reverts it, waiting for istiod's push to be acknowledged (never sleeping). Shares are checked within
// binomial tolerances (±4.5 standard deviations: a false failure about once in 150 000 runs).
// Over 300 lines on purpose: every scenario runs on that one stack (istiod and six processes take long to start).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { parse } from "yaml";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { createGrpcJsTransport } from "#kit";
import { manifestRoots } from "../tools/checks/manifests/render.js";
import { ROOT } from "../tools/root.js";
import { checkBindable, type Stack, startStack, UNITS } from "../tools/stack/launcher.js";
import { xdsChannelOptions } from "../tools/stack/mesh/bootstrap.js";
import { renderKustomization } from "../tools/stack/mesh/config.js";
import { startIstiod } from "../tools/stack/mesh/istiod.js";
import { loadHypothesis } from "../tools/traffic/experiment/hypothesis.js";
import { experimentDocs } from "../tools/traffic/experiment/mesh.js";
import { LOCAL_RECOVERY, runExperiment } from "../tools/traffic/experiment/run.js";

/** n calls with `limit` in flight; each answers its result (never throws). */
async function many<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** |observed − n·p| within 4.5 binomial standard deviations. */
function expectBinomial(observed: number, n: number, p: number, what: string) {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(observed - n * p), `${what}: ${observed} of ${n}, expected ${n * p} ± ${(4.5 * sd).toFixed(1)}`).to.be.at.most(4.5 * sd);
}

const codeName = (err: unknown) => Code[ConnectError.from(err).code];

describe("local mesh: real istiod drives the services (proxyless gRPC)", function () {
  this.timeout(300_000);
  let stack: Stack;
  let catalog: Client<typeof CatalogService>;
  let payment: Client<typeof PaymentService>;
  const closers: (() => void)[] = [];

  before(async function () {
    this.timeout(300_000); // a busy shared machine takes minutes to start five tsx processes
    stack = await startStack({
      logLevel: "warn",
      recovery: LOCAL_RECOVERY,
      // Under STRICT mTLS + allow-nothing the callers need identities the AuthorizationPolicies allow: "test" holds
      // the ingress gateway's (catalog's public reads), "as-orders" orders' own (payment's Charge/ListPayments).
      mesh: { clients: ["load", "test", "flow", { name: "as-orders", serviceAccount: "orders" }] },
      healthTimeoutMs: 150_000,
      // Register and Login go through identity's route (3 s timeout): a cheaper hash keeps them within it on a busy machine.
      env: { identity: { PASSWORD_HASH_LN: "10" } },
    });
    const mesh = stack.mesh as NonNullable<Stack["mesh"]>;
    // This test process is the mesh clients "test" and "as-orders": their channels carry their own bootstraps.
    const channel = (target: string, client: string) => {
      const t = createGrpcJsTransport({ target, defaultTimeoutMs: 10_000, channelOptions: xdsChannelOptions(mesh.bootstrap(client)) });
      closers.push(() => t.close());
      return t;
    };
    catalog = createClient(CatalogService, channel(mesh.targets.catalog, "test"));
    payment = createClient(PaymentService, channel(mesh.targets.payment, "as-orders"));
  });
  after(async () => {
    for (const close of closers) close();
    await stack?.stop();
  });

  /** Which catalog version answered each of n GetProduct calls (its x-served-by header), or the error code. */
  const servedBy = (n: number, headers: Record<string, string> = {}) =>
    many(n, 16, async () => {
      let by = "?";
      try {
        await catalog.getProduct({ sku: "mug-blue" }, { headers, onHeader: (h) => (by = h.get("x-served-by") ?? "none") });
        return by;
      } catch (err) {
        return codeName(err);
      }
    });
  const count = (xs: string[], x: string) => xs.filter((y) => y === x).length;
  const mesh = () => stack.mesh as NonNullable<Stack["mesh"]>;

  it("comes up from the rendered manifests: a ServiceEntry per Service, a WorkloadEntry per process, the ingress left out with its reason", async () => {
    const held = await mesh().istiod.configz();
    const names = (kind: string) =>
      held
        .filter((c) => c.kind === kind)
        .map((c) => c.metadata.name)
        .sort();
    expect(names("ServiceEntry")).to.deep.equal(["catalog", "identity", "orders", "payment"]);
    expect(names("WorkloadEntry")).to.include.members([...UNITS, "load", "test", "as-orders"]);
    expect(names("VirtualService")).to.deep.equal(["catalog", "identity", "orders", "payment"]);
    const out = mesh().leftOut.map((l) => `${l.kind} ${l.name}`);
    expect(out).to.include.members(["Gateway meshmart", "VirtualService meshmart-ingress", "RequestAuthentication meshmart-identity"]);
    // each workload on its own loopback address (a per-stack 127.x.y.0/24 block) and the manifests' port, like a pod
    for (const u of UNITS) expect(stack.endpoints[u].grpc).to.match(/^127\.\d+\.\d+\.\d+:50051$/);
  });

  it("catalog split: the canary's 90/10 sends ≥ 1000 GetProduct calls 90/10 to v1/v2; x-canary: always reaches v2 only", async () => {
    // mesh/canary/ is a kustomize patch on the base: rendered, its VirtualService catalog is the whole 90/10 one.
    const canary = renderKustomization("mesh/canary").filter((m) => m.obj.kind === "VirtualService" && m.obj.metadata.name === "catalog");
    expect(canary).to.have.length(1);
    const applied = await mesh().apply(canary);
    try {
      const by = await servedBy(1010);
      const answered = count(by, "catalog-v1") + count(by, "catalog-v2");
      // A busy shared machine can make a handful of calls miss their deadline; the split is over the answered ones.
      expect(answered, JSON.stringify(by.filter((b) => !b.startsWith("catalog")).slice(0, 10))).to.be.at.least(1000);
      expectBinomial(count(by, "catalog-v2"), answered, 0.1, "calls on v2");
      const canary = await servedBy(100, { "x-canary": "always" });
      expect(count(canary, "catalog-v2")).to.equal(100);
    } finally {
      await mesh().revert(applied);
    }
    expect(count(await servedBy(100), "catalog-v1"), "after the revert: the base policy's 100 % v1").to.equal(100);
  });

  it("canary-50 and canary-100 applied through istiod shift the split as they say, and the revert puts it back", async () => {
    for (const [name, share] of [
      ["canary-50", 0.5],
      ["canary-100", 1],
    ] as const) {
      const applied = await mesh().apply(experimentDocs(loadHypothesis(name)).filter((d) => !d.obj.spec?.gateways));
      try {
        const by = await servedBy(400);
        if (share === 1) expect(count(by, "catalog-v2"), name).to.equal(400);
        else expectBinomial(count(by, "catalog-v2"), 400, share, name);
      } finally {
        await mesh().revert(applied);
      }
      expect(count(await servedBy(100), "catalog-v1"), `${name} reverted`).to.equal(100);
    }
  });

  it("payment-abort: the abort share matches the file; under load every order ends CONFIRMED or FAILED and the invariants hold", async () => {
    const doc = experimentDocs(loadHypothesis("payment-abort"));
    const percent = doc[0].obj.spec.http[0].fault.abort.percentage.value / 100;
    const applied = await mesh().apply(doc);
    try {
      // An empty Charge: INVALID_ARGUMENT when it reaches payment; the injected abort answers UNAVAILABLE before.
      const codes = await many(400, 16, () => payment.charge({}).then(() => "OK", codeName));
      expect(count(codes, "Unavailable") + count(codes, "InvalidArgument")).to.equal(400);
      expectBinomial(count(codes, "Unavailable"), 400, percent, "aborted Charge calls");
    } finally {
      await mesh().revert(applied);
    }
    const { report } = await runExperiment({ name: "payment-abort", target: "mesh", stack, rate: 8, durationMs: 8000, reportsDir: false });
    expect(report.target).to.equal("mesh");
    expect(report.checks.filter((c) => !c.ok)).to.deep.equal([]);
    expect(report.orderOutcomes).to.not.have.property("PENDING");
  });

  it("payment-delay: Charge calls delayed past the route's timeout end DEADLINE_EXCEEDED at the file's share; the saga compensates", async () => {
    const doc = experimentDocs(loadHypothesis("payment-delay"));
    const route = doc[0].obj.spec.http[0];
    const applied = await mesh().apply(doc);
    try {
      const started = Date.now();
      const codes = await many(100, 100, () => payment.charge({}, { timeoutMs: 30_000 }).then(() => "OK", codeName));
      expect(count(codes, "DeadlineExceeded") + count(codes, "InvalidArgument")).to.equal(100);
      expectBinomial(count(codes, "DeadlineExceeded"), 100, route.fault.delay.percentage.value / 100, "calls cut by the route timeout");
      // Cut at the route's timeout (2 s), not at the delay (3 s) nor at the caller's own 30 s deadline.
      expect(Date.now() - started).to.be.below(Number.parseFloat(route.fault.delay.fixedDelay) * 1000);
    } finally {
      await mesh().revert(applied);
    }
    // Under load through orders: PlaceOrder's codes as the hypothesis allows, and the invariants (the saga compensated).
    const { report } = await runExperiment({ name: "payment-delay", target: "mesh", stack, rate: 8, durationMs: 8000, reportsDir: false });
    expect(report.checks.filter((c) => !c.ok && (c.check.startsWith("invariants") || c.check.includes("codes of placeOrder")))).to.deep.equal([]);
    expect(report.checks.some((c) => c.check.startsWith("invariants"))).to.equal(true);
  });

  it("retries-recover: with payment failing half its calls for real, the route's retries hide most failures; without them they show", async () => {
    const docs = experimentDocs(loadHypothesis("retries-recover"));
    const withRetries = await mesh().apply(docs);
    await stack.setFaults("payment", { errorPercent: 50 });
    const failed = async () => count(await many(400, 16, () => payment.listPayments({ orderId: "no-such-order" }).then(() => "OK", codeName)), "Unavailable");
    try {
      const attempts = docs[1].obj.spec.http[0].retries.attempts as number;
      expectBinomial(await failed(), 400, 0.5 ** (attempts + 1), `with ${attempts} retries: calls still failing`);
      const vs = structuredClone(docs[1]);
      vs.obj.spec.http[0].retries = { attempts: 0 };
      const noRetries = await mesh().apply([vs]);
      try {
        expectBinomial(await failed(), 400, 0.5, "without retries: calls failing");
      } finally {
        await mesh().revert(noRetries);
      }
    } finally {
      await stack.setFaults("payment", {});
      await mesh().revert(withRetries);
    }
  });

  it("circuit-breaker: calls beyond http2MaxRequests are refused at once, not queued", async () => {
    const docs = experimentDocs(loadHypothesis("circuit-breaker"));
    const dr = docs.find((d) => d.obj.kind === "DestinationRule");
    expect(dr?.obj.spec.trafficPolicy.connectionPool.http.http2MaxRequests).to.equal(1);
    const unit = dr?.obj.spec.host === "catalog" ? "catalog-v1" : "payment";
    const applied = await mesh().apply(docs);
    // Every call that gets through holds its slot for a second, so the rest of the burst can only queue or be refused.
    await stack.setFaults(unit, { delayMs: 1000, delayPercent: 100 });
    try {
      const call = unit === "payment" ? () => payment.listPayments({ orderId: "x" }) : () => catalog.getProduct({ sku: "mug-blue" });
      // Arrivals 25 ms apart: grpc-js-xds counts a call from when it starts on a connection (just after the pick),
      // so calls issued in the very same instant would all be admitted; spaced out, each later one sees the slot taken.
      const pending: Promise<{ code: string; ms: number }>[] = [];
      for (let i = 0; i < 20; i++) {
        const t = Date.now();
        pending.push(
          call().then(
            () => ({ code: "OK", ms: Date.now() - t }),
            (err) => ({ code: codeName(err), ms: Date.now() - t }),
          ),
        );
        await new Promise((r) => setTimeout(r, 25)); // the arrival schedule, not a wait for a state
      }
      const results = await Promise.all(pending);
      const refused = results.filter((r) => r.code === "Unavailable");
      expect(refused.length, `one slot, 20 arrivals each within the 1 s hold: ${JSON.stringify(results)}`).to.be.at.least(10);
      for (const r of refused) expect(r.ms, `refused, not queued behind the 1 s calls: ${JSON.stringify(results)}`).to.be.below(1000);
    } finally {
      await stack.setFaults(unit, {});
      await mesh().revert(applied);
    }
  });

  it("istiod killed: the services keep serving on their last config; restarted: they reconnect and follow a change", async () => {
    const m = mesh();
    const proxies = async () => (await m.istiod.syncz()).map((s) => s.proxy).sort();
    const before = await proxies();
    await m.istiod.kill("SIGKILL");
    try {
      const by = await servedBy(50);
      expect(count(by, "catalog-v1"), "served on the cached config while istiod is down").to.equal(50);
      const codes = await many(20, 10, () => payment.listPayments({ orderId: "no-such-order" }).then(() => "OK", codeName));
      expect(count(codes, "Unavailable"), JSON.stringify(codes)).to.equal(0);
    } finally {
      await m.istiod.restart();
    }
    // Every client that was connected comes back (grpc-js-xds reconnects with backoff).
    const deadline = Date.now() + 60_000;
    while (JSON.stringify(await proxies()) !== JSON.stringify(before)) {
      if (Date.now() > deadline) throw new Error(`not every xDS client reconnected: ${JSON.stringify(await proxies())}, before ${JSON.stringify(before)}`);
      await new Promise((r) => setTimeout(r, 100)); // polling istiod's own view, not a fixed wait
    }
    const applied = await m.apply(experimentDocs(loadHypothesis("canary-100")).filter((d) => !d.obj.spec?.gateways));
    try {
      expect(count(await servedBy(20), "catalog-v2")).to.equal(20);
    } finally {
      await m.revert(applied);
    }
  });
});

describe("local mesh: bad input", function () {
  this.timeout(120_000);

  it("a mesh file istiod would reject stops the start, naming the file and the error", async () => {
    const root = mkdtempSync(join(tmpdir(), "meshmart-badmesh-"));
    try {
      for (const d of manifestRoots(ROOT)) cpSync(join(ROOT, d), join(root, d), { recursive: true });
      const file = join(root, "mesh/base/routes.yaml");
      writeFileSync(file, readFileSync(file, "utf8").replace("attempts: 2, perTryTimeout: 500ms", "attempts: -1, perTryTimeout: 500ms"));
      expect(parse(readFileSync(file, "utf8").split("---").pop() as string).spec.http[0].retries.attempts).to.equal(-1);
      let err: Error | undefined;
      await startStack({ mesh: { root } }).then(
        (s) => s.stop(),
        (e: Error) => (err = e),
      );
      expect(err?.message)
        .to.include("mesh/base/routes.yaml")
        .and.match(/attempts/i);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("an address or port in use: a clear error naming it (a service's, then istiod's)", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.10", () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      let err: Error | undefined;
      await checkBindable("127.0.0.10", port, "identity's gRPC port").catch((e: Error) => (err = e));
      expect(err?.message).to.equal(`127.0.0.10:${port} (identity's gRPC port) is already in use`);
    } finally {
      busy.close();
    }
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const grpc = (taken.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "meshmart-istiod-busy-"));
    try {
      let err: Error | undefined;
      await startIstiod({ configDir: dir, ports: { grpc } }).then(
        (i) => i.stop(),
        (e: Error) => (err = e),
      );
      expect(err?.message).to.equal(`127.0.0.1:${grpc} (istiod's grpc port) is already in use`);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
