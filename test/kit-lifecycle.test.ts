// A kit service's life over the wire: health following the database, health watchers at shutdown, a service as
// a real process (bad configuration, SIGTERM with calls in flight), and a handler's ctx.signal; real sockets, the
// real embedded database, catalog as the sample service.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/health/v1/health_pb.js";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, createGrpcJsTransport, logger, type RunningServer, serve, service } from "#kit";
import { catalogConfig, startCatalog } from "../services/catalog/src/server.js";
import { type DevDb, freePort, startDevDb } from "../tools/stack/devdb.js";
import { waitForHealth } from "../tools/stack/health-wait.js";
import { startProcess } from "../tools/stack/process.js";
import { dropDatabase, testMongoUri, uniqueDbName } from "./support/db.js";

import { counter } from "./support/metrics.js";

const local = (s: RunningServer) => `127.0.0.1:${s.port}`;

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
