// Issue 16: one trace per order across the services, on real processes (tools/stack/launcher.ts, every unit its own
// process and span file), plus the OTLP exporter against a real HTTP receiver and one that is not there.
// Over 300 lines on purpose: the cases share one traced stack of real processes, which takes long to start.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { createGrpcJsTransport } from "#kit";
import { startLocalStack } from "../tools/stack/child-stack.js";
import { freePort } from "../tools/stack/devdb.js";
import { type Stack, startStack } from "../tools/stack/launcher.js";
import { codeOf, readSpans, type SpanRecord, tracesOfOrder, waterfallRows } from "../tools/traffic/trace/spans.js";

/** An OTLP/HTTP receiver: counts the export requests it gets and keeps their bodies. */
async function receiver(): Promise<{ server: Server; url: string; bodies: Buffer[] }> {
  const bodies: Buffer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") bodies.push(Buffer.concat(chunks));
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const metric = async (admin: string, line: RegExp) => {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => line.test(l))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
};

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

describe("tracing: one trace per order across the services (real processes)", function () {
  this.timeout(180_000);
  let dir: string;
  let stack: Stack;
  let on: Awaited<ReturnType<typeof receiver>>;
  let off: Awaited<ReturnType<typeof receiver>>;
  let catalog: Client<typeof CatalogService>;
  let catalogV2: Client<typeof CatalogService>;
  let orders: Client<typeof OrderService>;
  let token: string;
  const closers: (() => void)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "meshmart-traces-"));
    on = await receiver();
    off = await receiver();
    const nowhere = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    stack = await startStack({
      logLevel: "info",
      traces: { dir },
      env: {
        // identity: tracing switched off although both destinations are set: nothing may come out of it.
        identity: { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: off.url },
        // catalog v2: OTLP over HTTP to a receiver, beside its file.
        "catalog-v2": { OTEL_EXPORTER_OTLP_ENDPOINT: on.url },
        // payment: also exports to an endpoint nobody listens on; its calls and its file must not care.
        payment: { OTEL_EXPORTER_OTLP_ENDPOINT: nowhere, OTEL_EXPORTER_OTLP_TIMEOUT: "1000" },
      },
    });
    const client = <S extends typeof CatalogService | typeof OrderService | typeof IdentityService>(service: S, target: string) => {
      const t = createGrpcJsTransport({ target, defaultTimeoutMs: 30_000 });
      closers.push(() => t.close());
      return createClient(service, t);
    };
    catalog = client(CatalogService, stack.endpoints["catalog-v1"].grpc);
    catalogV2 = client(CatalogService, stack.endpoints["catalog-v2"].grpc);
    orders = client(OrderService, stack.endpoints.orders.grpc);
    const identity = client(IdentityService, stack.endpoints.identity.grpc);
    await identity.register({ email: "tracer@example.com", password: "correct-horse-1", displayName: "Tracer" });
    token = (await identity.login({ email: "tracer@example.com", password: "correct-horse-1" })).accessToken;
  });
  after(async () => {
    for (const c of closers) c();
    await stack?.stop();
    on?.server.close();
    off?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const card = (number: string) => ({ number, expMonth: 12, expYear: 2099, cvc: "123" });
  const place = (key: string, number: string, headers: Record<string, string> = {}) =>
    orders.placeOrder(
      { idempotencyKey: key, items: [{ sku: "mug-blue", quantity: 1 }], card: card(number) },
      { headers: { authorization: `Bearer ${token}`, ...headers } },
    );

  /** The spans of `orderId`'s PlaceOrder trace, once orders, catalog and payment have all written theirs. */
  const orderTrace = (orderId: string, services = ["orders", "catalog v1", "payment"]) =>
    until(`the trace of ${orderId} from ${services.join(", ")}`, () => {
      const spans = readSpans(dir);
      const [id] = tracesOfOrder(spans, orderId);
      const trace = spans.filter((s) => s.traceId === id);
      return id && services.every((svc) => trace.some((s) => s.service === svc && s.kind === "server")) ? trace : undefined;
    });

  const one = (spans: SpanRecord[], pred: (s: SpanRecord) => boolean, what: string) => {
    const found = spans.filter(pred);
    expect(found, what).to.have.length(1);
    return found[0];
  };
  const parentOf = (spans: SpanRecord[], s: SpanRecord) => spans.find((p) => p.spanId === s.parentSpanId);

  it("one PlaceOrder is one trace: orders, catalog and payment correctly parented, saga steps and database calls under them", async () => {
    const { order } = await place("trace-ok", "4242424242424242");
    expect(order?.state).to.equal(OrderState.CONFIRMED);
    const spans = await orderTrace(order?.orderId ?? "");
    const roots = spans.filter((s) => !s.parentSpanId);
    expect(roots.map((s) => s.name)).to.deep.equal(["meshmart.orders.v1.OrderService/PlaceOrder"]);
    const root = roots[0];
    expect(root.attributes).to.include({ "rpc.system.name": "grpc", "rpc.method": "meshmart.orders.v1.OrderService/PlaceOrder", "rpc.status_code": "OK" });
    expect(root.attributes["rpc.grpc.status_code"]).to.equal(0);
    expect(root.attributes["meshmart.order.id"]).to.equal(order?.orderId);
    // Every span's parent is in the trace (one tree, nothing orphaned across the processes).
    for (const s of spans.filter((x) => x !== root)) expect(parentOf(spans, s), `parent of ${s.service} ${s.name}`).to.not.equal(undefined);

    const steps = ["reserve", "charge", "commit"].map((step) => one(spans, (s) => s.name === `saga ${step}`, `saga ${step} span`));
    for (const step of steps) expect(parentOf(spans, step)).to.equal(root);
    // orders' client span under the saga step; the callee's server span under that client span, in another process.
    for (const [step, method, service] of [
      [steps[0], "meshmart.catalog.v1.CatalogService/ReserveStock", "catalog v1"],
      [steps[1], "meshmart.payment.v1.PaymentService/Charge", "payment"],
      [steps[2], "meshmart.catalog.v1.CatalogService/CommitReservation", "catalog v1"],
    ] as const) {
      const client = one(spans, (s) => s.kind === "client" && s.name === method, `client ${method}`);
      const server = one(spans, (s) => s.kind === "server" && s.name === method, `server ${method}`);
      expect(client.service).to.equal("orders");
      expect(parentOf(spans, client)).to.equal(step);
      expect(server.service).to.equal(service);
      expect(parentOf(spans, server)).to.equal(client);
      expect(server.attributes["rpc.status_code"]).to.equal("OK");
      // The callee's database calls are under its server span.
      const db = spans.filter((s) => s.attributes["db.system.name"] === "mongodb" && s.parentSpanId === server.spanId);
      expect(db.length, `database spans under ${service} ${method}`).to.be.above(0);
    }
    // orders' own database calls: the order's insert under PlaceOrder.
    expect(spans.some((s) => s.name === "insert orders" && s.parentSpanId === root.spanId && s.attributes["db.namespace"] === "orders")).to.equal(true);
    // The waterfall puts the root first and nests everything under it.
    const rows = waterfallRows(spans);
    expect(rows[0].span).to.equal(root);
    expect(rows.length).to.equal(spans.length);
  });

  it("writes the trace id into every log line of the call", async () => {
    const { order } = await place("trace-log", "4242424242424242");
    const spans = await orderTrace(order?.orderId ?? "");
    const root = spans.find((s) => !s.parentSpanId) as SpanRecord;
    const line = await until("orders' log line of the call", () =>
      stack
        .output("orders")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg: string; method?: string; traceId?: string; spanId?: string })
        .find((l) => l.msg === "rpc" && l.traceId === root.traceId),
    );
    expect(line.method).to.equal("meshmart.orders.v1.OrderService/PlaceOrder");
    expect(line.spanId).to.equal(root.spanId);
    const charge = spans.find((s) => s.service === "payment" && s.kind === "server") as SpanRecord;
    const paymentLine = await until(
      "payment's log line of the call",
      () =>
        stack
          .output("payment")
          .split("\n")
          .filter((l) => l.includes(root.traceId))
          .map((l) => JSON.parse(l) as { spanId?: string })[0],
    );
    expect(paymentLine.spanId).to.equal(charge.spanId);
  });

  it("a declined order's trace marks payment's Charge with its gRPC code, and shows the compensation", async () => {
    const { order } = await place("trace-declined", "4000000000000002");
    expect(order?.state).to.equal(OrderState.FAILED);
    const spans = await orderTrace(order?.orderId ?? "");
    const server = one(spans, (s) => s.kind === "server" && s.name.endsWith("PaymentService/Charge"), "payment's Charge");
    expect(server.attributes).to.include({ "rpc.status_code": "FAILED_PRECONDITION", "rpc.grpc.status_code": Code.FailedPrecondition });
    const client = parentOf(spans, server) as SpanRecord;
    expect(client.kind).to.equal("client");
    expect(client.error, "a failed call is an error on the caller's side").to.equal(true);
    expect(codeOf(client)).to.equal("FAILED_PRECONDITION");
    expect(client.statusMessage).to.match(/^FAILED_PRECONDITION: .*declined/);
    expect(parentOf(spans, client)?.name).to.equal("saga charge");
    const compensate = one(spans, (s) => s.name === "saga compensate", "saga compensate");
    expect(
      spans.some(
        (s) => s.name.endsWith("CatalogService/ReleaseStock") && s.kind === "server" && parentOf(spans, parentOf(spans, s) as SpanRecord) === compensate,
      ),
    ).to.equal(true);
  });

  it("a faulted call (catalog answers UNAVAILABLE) is marked as an error with its gRPC code on both sides", async () => {
    await stack.setFaults("catalog-v1", { failNext: 1, methods: ["ReserveStock"] });
    const { order } = await place("trace-faulted", "4242424242424242");
    expect(order?.state).to.equal(OrderState.FAILED);
    const spans = await orderTrace(order?.orderId ?? "", ["orders", "catalog v1"]);
    const server = one(spans, (s) => s.kind === "server" && s.name.endsWith("CatalogService/ReserveStock"), "catalog's ReserveStock");
    expect(server.attributes).to.include({ "rpc.status_code": "UNAVAILABLE", "rpc.grpc.status_code": Code.Unavailable });
    expect(server.error, "UNAVAILABLE is the server's own failure").to.equal(true);
    const client = parentOf(spans, server) as SpanRecord;
    expect(client.error).to.equal(true);
    expect(codeOf(client)).to.equal("UNAVAILABLE");
    expect(parentOf(spans, client)?.error, "the saga step that failed is marked too").to.equal(true);
  });

  it("continues an incoming traceparent, and a b3 header (single or multi), instead of starting a new trace", async () => {
    const cases: [string, Record<string, string>, string, string][] = [];
    for (const format of ["traceparent", "b3", "x-b3"] as const) {
      const traceId = hex(16);
      const spanId = hex(8);
      const headers: Record<string, string> =
        format === "traceparent"
          ? { traceparent: `00-${traceId}-${spanId}-01` }
          : format === "b3"
            ? { b3: `${traceId}-${spanId}-1` }
            : { "x-b3-traceid": traceId, "x-b3-spanid": spanId, "x-b3-sampled": "1" };
      cases.push([format, headers, traceId, spanId]);
    }
    for (const [format, headers, traceId, spanId] of cases) {
      const { order } = await place(`trace-in-${format}`, "4242424242424242", headers);
      const spans = await orderTrace(order?.orderId ?? "");
      const root = one(spans, (s) => s.name.endsWith("OrderService/PlaceOrder"), "PlaceOrder");
      expect(root.traceId, `${format}: same trace`).to.equal(traceId);
      expect(root.parentSpanId, `${format}: the caller's span is the parent`).to.equal(spanId);
      expect(new Set(spans.map((s) => s.traceId)), `${format}: catalog and payment joined it too`).to.deep.equal(new Set([traceId]));
    }
  });

  it("a malformed traceparent or b3 header starts a new trace and never fails the call", async () => {
    const bad: Record<string, string>[] = [
      { traceparent: "00-zzzz-not-a-trace-01" },
      { traceparent: `00-${"0".repeat(32)}-${hex(8)}-01` }, // all-zero trace id: invalid by the spec
      { b3: "garbage" },
      { "x-b3-traceid": "xyz", "x-b3-spanid": "1", "x-b3-sampled": "1" },
      { traceparent: `ff-${hex(16)}-${hex(8)}-01`, b3: `${hex(16)}-nothex-1` },
    ];
    for (const [i, headers] of bad.entries()) {
      const { product } = await catalog.getProduct({ sku: "mug-blue" }, { headers: { ...headers, "x-request-id": `bad-trace-${i}` } });
      expect(product?.sku).to.equal("mug-blue");
      const { order } = await place(`trace-bad-${i}`, "4242424242424242", headers);
      expect(order?.state, JSON.stringify(headers)).to.equal(OrderState.CONFIRMED);
      const spans = await orderTrace(order?.orderId ?? "");
      const root = one(spans, (s) => s.name.endsWith("OrderService/PlaceOrder"), "PlaceOrder");
      expect(root.parentSpanId, JSON.stringify(headers)).to.equal("");
      expect(root.traceId).to.match(/^[0-9a-f]{32}$/);
      expect(root.traceId).to.not.equal("0".repeat(32));
    }
  });

  it("exports over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (catalog v2)", async () => {
    const traceId = hex(16);
    await catalogV2.getProduct({ sku: "mug-blue" }, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    // The protobuf export request carries the trace id as 16 raw bytes and the span name as text.
    const body = await until("an OTLP export with the call's span", () =>
      on.bodies.find((b) => b.includes(Buffer.from(traceId, "hex")) && b.includes("meshmart.catalog.v1.CatalogService/GetProduct")),
    );
    expect(body.includes("catalog")).to.equal(true);
  });

  it("an unreachable OTLP endpoint fails no call and loses nothing else; its drops are counted", async () => {
    // payment exports to a port nobody listens on: every order above was charged, and its file has the spans.
    expect(readSpans(dir).some((s) => s.service === "payment" && s.name.endsWith("PaymentService/Charge"))).to.equal(true);
    const admin = stack.endpoints.payment.admin;
    const dropped = await until("payment's OTLP drops counted", async () => {
      const n = await metric(admin, /^tracing_spans_dropped_total\{.*exporter="otlp".*reason="export_failed"/);
      return n > 0 ? n : undefined;
    });
    expect(dropped).to.be.above(0);
    expect(await metric(admin, /^tracing_spans_exported_total\{.*exporter="file"/)).to.be.above(0);
  });

  it("with tracing off (OTEL_SDK_DISABLED=true) nothing is recorded and nothing is exported", async () => {
    // identity answered Register and Login above and carried traceparent-bearing calls below.
    const identity = createClient(IdentityService, createGrpcJsTransport({ target: stack.endpoints.identity.grpc, defaultTimeoutMs: 30_000 }));
    const { accessToken } = await identity.login(
      { email: "tracer@example.com", password: "correct-horse-1" },
      { headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` } },
    );
    expect(accessToken).to.not.equal("");
    await stack.kill("identity", "SIGTERM"); // a clean stop flushes whatever a tracer would have queued
    expect(existsSync(join(dir, "identity.jsonl")), "identity's span file").to.equal(false);
    expect(off.bodies, "export requests to identity's OTLP endpoint").to.have.length(0);
    expect(readSpans(dir).filter((s) => s.service === "identity")).to.deep.equal([]);
    await stack.start("identity");
  });

  it("a call with tracing on answers as before (errors included)", async () => {
    const err = await catalog.getProduct({ sku: "no-such-sku" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).to.be.instanceOf(ConnectError);
    expect((err as ConnectError).code).to.equal(Code.NotFound);
  });
});

describe("tracing in monolith mode: the in-memory calls make the same tree in one process", function () {
  this.timeout(180_000);
  it("PlaceOrder → saga step → client span → catalog's server span → its database calls", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshmart-traces-mono-"));
    const stack = await startLocalStack("monolith", {
      env: { OTEL_SDK_DISABLED: "false", TRACES_FILE: join(dir, "monolith.jsonl"), OTEL_BSP_SCHEDULE_DELAY: "500" },
    });
    const closers: (() => void)[] = [];
    try {
      const client = <S extends typeof OrderService | typeof IdentityService>(service: S) => {
        const t = createGrpcJsTransport({ target: stack.targets.orders, defaultTimeoutMs: 30_000 });
        closers.push(() => t.close());
        return createClient(service, t);
      };
      const identity = client(IdentityService);
      await identity.register({ email: "mono-tracer@example.com", password: "correct-horse-1", displayName: "Tracer" });
      const { accessToken } = await identity.login({ email: "mono-tracer@example.com", password: "correct-horse-1" });
      const { order } = await client(OrderService).placeOrder(
        { idempotencyKey: "mono", items: [{ sku: "mug-blue", quantity: 1 }], card: { number: "4242424242424242", expMonth: 12, expYear: 2099, cvc: "123" } },
        { headers: { authorization: `Bearer ${accessToken}` } },
      );
      expect(order?.state).to.equal(OrderState.CONFIRMED);
      const spans = await until("the monolith's trace of the order", () => {
        const all = readSpans(dir);
        const [id] = tracesOfOrder(all, order?.orderId ?? "");
        const trace = all.filter((s) => s.traceId === id);
        return trace.some((s) => s.kind === "server" && s.name.endsWith("PaymentService/Charge")) ? trace : undefined;
      });
      expect(new Set(spans.map((s) => s.service))).to.deep.equal(new Set(["monolith"]));
      const reserve = spans.find((s) => s.kind === "server" && s.name.endsWith("CatalogService/ReserveStock")) as SpanRecord;
      const call = spans.find((s) => s.spanId === reserve.parentSpanId) as SpanRecord;
      expect(call.kind).to.equal("client");
      expect(spans.find((s) => s.spanId === call.parentSpanId)?.name).to.equal("saga reserve");
      expect(spans.some((s) => s.parentSpanId === reserve.spanId && s.attributes["db.namespace"] === "catalog")).to.equal(true);
      expect(spans.filter((s) => !s.parentSpanId).map((s) => s.name)).to.deep.equal(["meshmart.orders.v1.OrderService/PlaceOrder"]);
    } finally {
      for (const c of closers) c();
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
