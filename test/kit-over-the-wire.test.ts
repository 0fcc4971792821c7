// The service kit, checked from outside over real sockets: the real grpcurl binary, the real embedded
// database, a second client engine (connect-node), a second server engine. The sample service is catalog, built
// only from the kit. Propagation through a hop is kit-propagation.test.ts; a service's life (health following the
// database, shutdown, a real process, ctx.signal) kit-lifecycle.test.ts.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/health/v1/health_pb.js";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, createGrpcJsTransport, errorReason, NO_FAULTS, type RunningServer } from "#kit";
import { catalogConfig, startCatalog } from "../services/catalog/src/server.js";
import { dropDatabase, testMongoUri, uniqueDbName } from "./support/db.js";
import { GrpcurlError, grpcurl, grpcurlCall } from "./support/grpcurl.js";

import { counter } from "./support/metrics.js";

const local = (s: RunningServer) => `127.0.0.1:${s.port}`;

async function metricsOf(server: RunningServer): Promise<string> {
  return (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
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
