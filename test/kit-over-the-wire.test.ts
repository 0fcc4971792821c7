// The service kit, checked from outside over real sockets: the real grpcurl binary, the real embedded
// database, a second client engine (connect-node), a second server engine, a real child process for SIGTERM.
// The sample service is catalog, built only from the kit.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/health/v1/health_pb.js";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, createGrpcJsTransport, errorReason, forward, logger, NO_FAULTS, type RunningServer, serve, service } from "#kit";
import { catalogConfig, startCatalog } from "../services/catalog/src/server.js";
import { type DevDb, freePort, startDevDb } from "../tools/stack/devdb.js";
import { waitForHealth } from "../tools/stack/health-wait.js";
import { startProcess } from "../tools/stack/process.js";
import { dropDatabase, testMongoUri, uniqueDbName } from "./support/db.js";
import { GrpcurlError, grpcurl, grpcurlCall } from "./support/grpcurl.js";

const local = (s: RunningServer) => `127.0.0.1:${s.port}`;

async function metricsOf(server: RunningServer): Promise<string> {
  return (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
}

function counter(metrics: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("the kit over the wire (catalog as the sample service)", () => {
  const clients = clientPool();
  let server: RunningServer;
  const dbName = uniqueDbName("kit");

  before(async () => {
    server = await startCatalog(catalogConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", VERSION: "v1" }));
  });
  after(async () => {
    await server?.shutdown();
    clients.close();
    await dropDatabase(dbName);
  });

  describe("with grpcurl", () => {
    it("lists the services through reflection", async () => {
      const r = await grpcurl([local(server), "list"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout.split("\n")).to.include.members([
        "meshmart.catalog.v1.CatalogService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    });

    for (const version of ["v1", "v1alpha"]) {
      it(`answers reflection ${version} directly`, async () => {
        const r = await grpcurlCall<{ listServicesResponse: { service: { name: string }[] } }>(
          local(server),
          `grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
          { listServices: "" },
        );
        expect(r.listServicesResponse.service.map((s) => s.name)).to.include("meshmart.catalog.v1.CatalogService");
      });
    }

    it("describes a method and its messages", async () => {
      const r = await grpcurl([local(server), "describe", "meshmart.catalog.v1.ReserveStockRequest"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain("repeated .meshmart.catalog.v1.LineItem items = 2");
    });

    it("calls a method resolved purely through reflection", async () => {
      const r = await grpcurlCall<{ product: { sku: string; price: { units: string } } }>(local(server), "meshmart.catalog.v1.CatalogService/GetProduct", {
        sku: "mug-blue",
      });
      expect(r.product).to.deep.include({ sku: "mug-blue" });
      expect(r.product.price.units).to.equal("12");
    });

    it("reports SERVING from grpc.health.v1.Health/Check", async () => {
      expect(await grpcurlCall(local(server), "grpc.health.v1.Health/Check")).to.deep.equal({ status: "SERVING" });
      expect(await grpcurlCall(local(server), "grpc.health.v1.Health/Check", { service: "meshmart.catalog.v1.CatalogService" })).to.deep.equal({
        status: "SERVING",
      });
    });

    it("answers INVALID_ARGUMENT naming the field, with a BadRequest detail grpcurl can print", async () => {
      const err = await grpcurlCall(local(server), "meshmart.catalog.v1.CatalogService/ReserveStock", {
        reservationId: "r",
        items: [{ sku: "mug-blue", quantity: -1 }],
      }).catch((e) => e);
      expect(err).to.be.instanceOf(GrpcurlError);
      expect((err as GrpcurlError).grpcCode).to.equal("InvalidArgument");
      expect((err as GrpcurlError).result.stderr)
        .to.contain("items[0].quantity")
        .and.contain("google.rpc.BadRequest");
    });
  });

  describe("clients and engines", () => {
    it("serves a Connect client on connect-node's own gRPC transport, error details included", async () => {
      const client = createClient(CatalogService, connectNodeGrpcTransport({ baseUrl: `http://${local(server)}` }));
      expect((await client.getProduct({ sku: "tea-sencha" })).product?.name).to.equal("Sencha Green Tea 100 g");
      const err = ConnectError.from(await client.getProduct({ sku: "nope" }).catch((e) => e));
      expect(err.code).to.equal(Code.NotFound);
      expect(errorReason(err)).to.equal("PRODUCT_NOT_FOUND");
    });

    it("runs the same handlers, health and reflection on the connect-node engine", async () => {
      const dbName2 = uniqueDbName("kit_connect");
      const other = await startCatalog(
        catalogConfig({
          MONGODB_URI: testMongoUri(),
          DB_NAME: dbName2,
          PORT: "0",
          ADMIN_PORT: "0",
          HOST: "127.0.0.1",
          VERSION: "v2",
          ENGINE: "connect-node",
          GRACE_MS: "20000",
        }),
      );
      try {
        const client = clients.dial(CatalogService, local(other));
        let servedBy = "";
        const { product } = await client.getProduct({ sku: "mug-blue" }, { onHeader: (h) => (servedBy = h.get("x-served-by") ?? "") });
        expect(product?.rating).to.equal(4.6);
        expect(servedBy).to.equal("catalog-v2");
        const invalid = ConnectError.from(await client.getProduct({ sku: "" }).catch((e) => e));
        expect(invalid.code).to.equal(Code.InvalidArgument);
        expect(invalid.rawMessage).to.contain("sku");
        expect(await grpcurlCall(local(other), "grpc.health.v1.Health/Check")).to.deep.equal({ status: "SERVING" });
        const listed = await grpcurl([local(other), "list"]);
        expect(listed.stdout.split("\n")).to.include.members([
          "meshmart.catalog.v1.CatalogService",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ]);
        const described = await grpcurl([local(other), "describe", "meshmart.catalog.v1.CatalogService"]);
        expect(described.stdout).to.contain("rpc ReserveStock");
        const viaReflection = await grpcurlCall<{ product: { sku: string } }>(local(other), "meshmart.catalog.v1.CatalogService/GetProduct", {
          sku: "tea-sencha",
        });
        expect(viaReflection.product.sku).to.equal("tea-sencha");
        // Health/Watch: a server stream, through the kit's grpc-js transport.
        // Connect clients end a stream through its signal (a break alone leaves it open until the deadline).
        // No deadline at all (defaultTimeoutMs 0): only the abort can end this stream.
        const transport = createGrpcJsTransport({ target: local(other), defaultTimeoutMs: 0 });
        const stop = new AbortController();
        try {
          for await (const update of createClient(Health, transport).watch({ service: "meshmart.catalog.v1.CatalogService" }, { signal: stop.signal })) {
            expect(update.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
            break;
          }
        } finally {
          stop.abort();
          transport.close();
        }
        // The cancelled stream let the server drain at once instead of waiting out its 20 s grace period
        // (the margin is wide: a loaded machine takes seconds to close, never twenty).
        const started = Date.now();
        await other.shutdown();
        expect(Date.now() - started).to.be.lessThan(10_000);
      } finally {
        await other?.shutdown();
        await dropDatabase(dbName2);
      }
    });

    it("leaves no timer behind for a finished call with a long deadline", async () => {
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
      const client = clients.dial(CatalogService, local(server));
      await client.getProduct({ sku: "mug-blue" }, { timeoutMs: 60_000 }); // warm the channel
      const before = timers();
      await Promise.all(Array.from({ length: 100 }, () => client.getProduct({ sku: "mug-blue" }, { timeoutMs: 60_000 })));
      expect(timers() - before).to.be.lessThan(50); // one deadline timer per call would be ~100 (margin for other work)
    });

    it("ends a call that outlives its deadline with DEADLINE_EXCEEDED", async () => {
      server.faults.set({ ...NO_FAULTS, delayMs: 500, methods: ["GetProduct"] });
      try {
        const client = clients.dial(CatalogService, local(server));
        const err = ConnectError.from(await client.getProduct({ sku: "mug-blue" }, { timeoutMs: 100 }).catch((e) => e));
        expect(err.code).to.equal(Code.DeadlineExceeded);
      } finally {
        server.faults.set(NO_FAULTS);
      }
    });

    it("fails a share of calls with UNAVAILABLE when the fault knob says so", async () => {
      server.faults.set({ ...NO_FAULTS, errorPercent: 100 });
      try {
        const err = ConnectError.from(
          await clients
            .dial(CatalogService, local(server))
            .getProduct({ sku: "mug-blue" })
            .catch((e) => e),
        );
        expect(err.code).to.equal(Code.Unavailable);
      } finally {
        server.faults.set(NO_FAULTS);
      }
    });

    it("takes fault settings on the admin port, and refuses a bad one naming the field", async () => {
      const admin = `http://127.0.0.1:${server.adminPort}/faults`;
      const bad = await fetch(admin, { method: "PUT", body: JSON.stringify({ errorPercent: 101 }) });
      expect(bad.status).to.equal(400);
      expect(await bad.text()).to.contain("errorPercent");
      const ok = await fetch(admin, { method: "PUT", body: JSON.stringify({ failNext: 1, methods: ["GetProduct"] }) });
      expect(ok.status).to.equal(200);
      const client = clients.dial(CatalogService, local(server));
      expect(ConnectError.from(await client.getProduct({ sku: "mug-blue" }).catch((e) => e)).code).to.equal(Code.Unavailable);
      expect((await client.getProduct({ sku: "mug-blue" })).product?.sku).to.equal("mug-blue"); // failNext: 1 is spent
      expect(await (await fetch(admin)).json()).to.deep.include({ failNext: 0 });
      await fetch(admin, { method: "PUT", body: "{}" });
    });

    it("counts calls per method and code on /metrics", async () => {
      const labels = { grpc_service: "meshmart.catalog.v1.CatalogService", grpc_method: "GetProduct" };
      const before = await metricsOf(server);
      const client = clients.dial(CatalogService, local(server));
      await client.getProduct({ sku: "mug-blue" });
      await client.getProduct({ sku: "nope" }).catch(() => undefined);
      const after = await metricsOf(server);
      expect(
        counter(after, "grpc_server_handled_total", { ...labels, grpc_code: "OK" }) -
          counter(before, "grpc_server_handled_total", { ...labels, grpc_code: "OK" }),
      ).to.equal(1);
      expect(
        counter(after, "grpc_server_handled_total", { ...labels, grpc_code: "NotFound" }) -
          counter(before, "grpc_server_handled_total", { ...labels, grpc_code: "NotFound" }),
      ).to.equal(1);
      expect(counter(after, "grpc_client_handled_total", { ...labels, grpc_code: "OK" })).to.be.greaterThan(0);
      expect(after).to.match(/grpc_server_handling_seconds_bucket\{[^}]*grpc_method="GetProduct"/);
    });
  });
});

describe("propagation through one hop", () => {
  const clients = clientPool();
  let back: RunningServer;
  let front: RunningServer;
  let seen: { headers: Headers; timeoutMs: number | undefined } | undefined;

  before(async () => {
    // back records what reached it; front forwards GetProduct to back with forward(ctx).
    back = await serve({
      name: "back",
      port: 0,
      host: "127.0.0.1",
      services: [
        service(CatalogService, {
          getProduct(_req, ctx) {
            seen = { headers: new Headers(ctx.requestHeader), timeoutMs: ctx.timeoutMs() };
            return { product: { sku: "echo" } };
          },
        }),
      ],
    });
    const backClient = clients.dial(CatalogService, local(back));
    front = await serve({
      name: "front",
      port: 0,
      host: "127.0.0.1",
      services: [service(CatalogService, { getProduct: (req, ctx) => backClient.getProduct(req, forward(ctx)) })],
    });
  });
  after(async () => {
    await front?.shutdown();
    await back?.shutdown();
    clients.close();
  });

  it("carries request id, trace, baggage and canary headers, but not authorization, to the next hop", async () => {
    const sent = {
      "x-request-id": "req-123",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      tracestate: "vendor=abc",
      b3: "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
      "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
      "x-b3-spanid": "e457b5a2e4d86bd1",
      "x-b3-sampled": "1",
      baggage: "userId=alice",
      "x-canary": "true",
      authorization: "Bearer secret",
    };
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { headers: sent, timeoutMs: 2000 });
    for (const [k, v] of Object.entries(sent)) {
      if (k === "authorization") expect(seen?.headers.get(k)).to.equal(null);
      else expect(seen?.headers.get(k), k).to.equal(v);
    }
  });

  it("gives the next hop a deadline shorter than the caller's", async () => {
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { timeoutMs: 1500 });
    expect(seen?.timeoutMs).to.be.a("number").that.is.greaterThan(0).and.lessThan(1500);
  });

  it("sets a default deadline on the next hop when the caller sent none", async () => {
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { timeoutMs: 0 });
    expect(seen?.timeoutMs).to.be.a("number").that.is.greaterThan(0).and.at.most(5000);
  });

  it("mints one x-request-id when the caller sent none, and answers with it", async () => {
    let answered = "";
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { onHeader: (h) => (answered = h.get("x-request-id") ?? "") });
    expect(answered).to.match(/^[0-9a-f-]{36}$/);
    expect(seen?.headers.get("x-request-id")).to.equal(answered);
  });
});

describe("health follows the database", () => {
  const clients = clientPool();
  let db: DevDb;
  let server: RunningServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "meshmart-health-db-"));
    db = await startDevDb({ dir });
    server = await startCatalog(catalogConfig({ MONGODB_URI: db.uri, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", HEALTH_INTERVAL_MS: "100", SEED: "true" }));
  });
  after(async () => {
    clients.close();
    await server?.shutdown();
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("flips to NOT_SERVING when the database stops and back to SERVING when it returns", async () => {
    await waitForHealth(local(server));
    await db?.stop();
    await waitForHealth(local(server), { want: HealthCheckResponse_ServingStatus.NOT_SERVING });
    const err = ConnectError.from(
      await clients
        .dial(CatalogService, local(server))
        .getProduct({ sku: "mug-blue" })
        .catch((e) => e),
    );
    expect(err.code).to.equal(Code.Unavailable); // a lost database is worth a retry elsewhere, not INTERNAL
    await db.start();
    await waitForHealth(local(server), { timeoutMs: 30_000 });
    expect((await clients.dial(CatalogService, local(server)).getProduct({ sku: "mug-blue" })).product?.sku).to.equal("mug-blue");
  });
});

describe("health watchers at shutdown", () => {
  it("see NOT_SERVING and are let go, so shutdown does not wait out its grace period", async () => {
    const dbName = uniqueDbName("kit_watch");
    const server = await startCatalog(
      catalogConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", GRACE_MS: "20000" }),
    );
    const transport = createGrpcJsTransport({ target: local(server), defaultTimeoutMs: 0 });
    try {
      const seen: HealthCheckResponse_ServingStatus[] = [];
      const watching = (async () => {
        for await (const update of createClient(Health, transport).watch({ service: "" })) seen.push(update.status);
      })();
      while (seen.length === 0) await new Promise((r) => setImmediate(r)); // first update: SERVING
      const started = Date.now();
      await server.shutdown();
      expect(Date.now() - started).to.be.lessThan(10_000); // not the 20 s grace period (wide margin for a loaded machine)
      await watching;
      expect(seen).to.deep.equal([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    } finally {
      transport.close();
      await dropDatabase(dbName);
    }
  });
});

describe("a service as a real process", () => {
  const clients = clientPool();
  after(() => clients.close());
  it("stops with exit code 2 and names the variable when the configuration is bad", async () => {
    const proc = startProcess("services/catalog/src/main.ts", { PORT: "fifty" });
    expect(await proc.exited).to.equal(2);
    expect(proc.output()).to.contain("PORT").and.contain("fifty");
    const outOfRange = startProcess("services/payment/src/main.ts", { PORT: "70000" });
    expect(await outOfRange.exited).to.equal(2);
    expect(outOfRange.output()).to.contain("config: PORT must be a port");
  });

  it("lets an in-flight call finish on SIGTERM, then exits 0", async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const dbName = uniqueDbName("kit_sigterm");
    const proc = startProcess("services/catalog/src/main.ts", {
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      HOST: "127.0.0.1",
      MONGODB_URI: testMongoUri(),
      DB_NAME: dbName,
      FAULT_DELAY_MS: "1500", // makes GetProduct slow enough to be caught in flight
      FAULT_METHODS: "GetProduct",
    });
    try {
      await waitForHealth(`127.0.0.1:${port}`, { timeoutMs: 60_000 }); // a loaded machine starts slowly
      const call = clients.dial(CatalogService, `127.0.0.1:${port}`).getProduct({ sku: "mug-blue" }, { timeoutMs: 10_000 });
      // Wait until the server has really started the call (its own counter says so), then signal.
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const m = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        if (counter(m, "grpc_server_started_total", { grpc_method: "GetProduct" }) >= 1) break;
      }
      proc.child.kill("SIGTERM");
      const { product } = await call;
      expect(product?.sku).to.equal("mug-blue");
      expect(await proc.exited, proc.output()).to.equal(0);
      expect(proc.output()).to.contain("shutting down");
    } finally {
      await proc.stop("SIGKILL");
      await dropDatabase(dbName);
    }
  });
});

describe("a handler's ctx.signal on the grpc-js engine", () => {
  const clients = clientPool();
  after(() => clients.close());
  it("ends when the reply is sent, and aborts on the caller's deadline, on the caller cancelling and past shutdown's grace period", async () => {
    const started = new Map<string, AbortSignal>();
    const reasons = new Map<string, ConnectError>();
    const server = await serve({
      name: "signal",
      port: 0,
      host: "127.0.0.1",
      graceMs: 300,
      log: logger("signal", { LOG_LEVEL: "silent" }),
      services: [
        service(CatalogService, {
          getProduct: ({ sku }, ctx) => {
            started.set(sku, ctx.signal);
            if (sku === "quick") return { product: { sku } };
            return new Promise<never>((_, reject) =>
              ctx.signal.addEventListener("abort", () => {
                reasons.set(sku, ConnectError.from(ctx.signal.reason));
                reject(ctx.signal.reason);
              }),
            );
          },
        }),
      ],
    });
    const client = clients.dial(CatalogService, local(server));
    const until = async (ok: () => boolean) => {
      while (!ok()) await new Promise((r) => setTimeout(r, 5));
    };
    try {
      await client.getProduct({ sku: "quick" });
      expect(started.get("quick")?.aborted, "a finished call's signal").to.equal(true);

      const late = await client.getProduct({ sku: "deadline" }, { timeoutMs: 200 }).catch((e) => ConnectError.from(e));
      expect((late as ConnectError).code).to.equal(Code.DeadlineExceeded);
      await until(() => reasons.has("deadline"));
      // The handler's own deadline timer and grpc-js ending the expired stream ("cancelled") race: either ends it.
      expect(reasons.get("deadline")?.code).to.be.oneOf([Code.DeadlineExceeded, Code.Canceled]);

      const caller = new AbortController();
      const cancelled = client.getProduct({ sku: "cancel" }, { signal: caller.signal, timeoutMs: 10_000 }).catch((e) => e);
      await until(() => started.has("cancel"));
      caller.abort();
      await cancelled;
      await until(() => reasons.has("cancel"));
      expect(reasons.get("cancel")?.code).to.equal(Code.Canceled);

      const running = client.getProduct({ sku: "shutdown" }, { timeoutMs: 10_000 }).catch((e) => ConnectError.from(e));
      await until(() => started.has("shutdown"));
      const t = Date.now();
      await server.shutdown();
      expect(Date.now() - t, "shutdown waits out the grace period").to.be.at.least(250);
      expect(started.get("shutdown")?.aborted, "the running call's signal, at the end of the grace period").to.equal(true);
      expect(await running).to.be.instanceOf(ConnectError);
    } finally {
      await server.shutdown();
    }
  });
});
