// The bugs the fuzzer found, one focused test each, on both engines; and the message size limits.
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { CatalogService, GetProductRequestSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { ConfigError, clientPool, type RunningServer } from "#kit";
import { catalogConfig, startCatalog } from "../services/catalog/src/server.js";
import { frameCases, sendFrames } from "../tools/traffic/fuzz/frames.js";
import { dropDatabase, testMongoUri, uniqueDbName } from "./support/db.js";
import { rejection } from "./support/rejection.js";

/** Sends raw request bytes to a catalog method; resolves with the status code. */
function rawCall(target: string, method: string, bytes: Uint8Array): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/meshmart.catalog.v1.CatalogService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(bytes),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err) => {
        client.close();
        resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" });
      },
    );
  });
}

for (const engine of ["grpc-js", "connect-node"] as const) {
  describe(`fuzz regressions and message limits (${engine})`, () => {
    let server: RunningServer;
    let small: RunningServer;
    const dbName = uniqueDbName("fuzzreg");
    const target = () => `127.0.0.1:${server.port}`;
    const clients = clientPool();

    before(async () => {
      const base = { MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", ENGINE: engine };
      server = await startCatalog(catalogConfig(base));
      small = await startCatalog(catalogConfig({ ...base, MAX_RECEIVE_BYTES: "2048" }));
    });
    after(async () => {
      await server.shutdown();
      await small.shutdown();
      clients.close();
      await dropDatabase(dbName);
    });

    it("answers a string field holding invalid UTF-8 with INVALID_ARGUMENT (was INTERNAL)", async () => {
      const bytes = new BinaryWriter()
        .tag(1, WireType.LengthDelimited)
        .bytes(Uint8Array.of(0x6d, 0xc3, 0x28))
        .finish();
      const r = await rawCall(target(), "GetProduct", bytes);
      expect(r.code, r.details).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(r.details).to.include("not a valid");
    });

    it("answers truncated or mistyped request bytes with INVALID_ARGUMENT (was INTERNAL)", async () => {
      const truncated = toBinary(GetProductRequestSchema, create(GetProductRequestSchema, { sku: "mug-blue" })).subarray(0, 4);
      expect((await rawCall(target(), "GetProduct", truncated)).code).to.equal(grpc.status.INVALID_ARGUMENT);
      const endGroup = Uint8Array.of(0x6c, 0x81); // wire type 4 with no group open
      expect((await rawCall(target(), "GetProduct", endGroup)).code).to.equal(grpc.status.INVALID_ARGUMENT);
    });

    it("accepts unknown fields (proto3 keeps them, the call goes on)", async () => {
      const known = toBinary(GetProductRequestSchema, create(GetProductRequestSchema, { sku: "mug-blue" }));
      const unknown = new BinaryWriter().tag(999, WireType.Varint).uint64(7n).finish();
      expect((await rawCall(target(), "GetProduct", new Uint8Array([...known, ...unknown]))).code).to.equal(grpc.status.OK);
    });

    it("searches for a query holding a NUL character instead of failing with INTERNAL", async () => {
      const catalog = clients.dial(CatalogService, target());
      const res = await catalog.searchProducts({ query: "mug\u0000" });
      expect(res.products).to.deep.equal([]);
    });

    it("answers broken gRPC framing with a deliberate status (compressed flag without grpc-encoding was INTERNAL on connect-node)", async () => {
      const cases = frameCases("/meshmart.catalog.v1.CatalogService/GetProduct", { maxReceiveBytes: 1024 * 1024, random: 0, seed: 1 });
      const outcomes = await sendFrames(target(), cases, 10_000);
      const all = Object.values(outcomes).flat();
      expect(
        all.filter((o) => ["internal", "unknown", "timeout", "reset"].includes(o)),
        JSON.stringify(outcomes),
      ).to.deep.equal([]);
      expect(outcomes["oversized message (limit + 1 KiB)"]).to.deep.equal(["resource_exhausted"]);
      expect(outcomes["length prefix of 4 GiB"]).to.deep.equal(["resource_exhausted"]);
    });

    it("refuses a message over MAX_RECEIVE_BYTES with RESOURCE_EXHAUSTED and stays healthy", async () => {
      const big = toBinary(GetProductRequestSchema, create(GetProductRequestSchema, { sku: "x".repeat(4096) }));
      expect((await rawCall(`127.0.0.1:${small.port}`, "GetProduct", big)).code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      const ok = toBinary(GetProductRequestSchema, create(GetProductRequestSchema, { sku: "mug-blue" }));
      expect((await rawCall(`127.0.0.1:${small.port}`, "GetProduct", ok)).code).to.equal(grpc.status.OK);
    });
  });
}

describe("message size limits (kit client and configuration)", () => {
  const clients = clientPool();
  it("makes the kit's client refuse to send a message over the servers' default limit", async () => {
    // Nothing listens there: the client gives up before dialling.
    const catalog = clients.dial(CatalogService, "127.0.0.1:9", { timeoutMs: 5000 });
    const err = await rejection(catalog.getProduct({ sku: "x".repeat(1024 * 1024 + 1) }));
    expect(err.code).to.equal(Code.ResourceExhausted);
    clients.close();
  });

  it("names MAX_RECEIVE_BYTES / MAX_SEND_BYTES when out of range", () => {
    expect(() => catalogConfig({ MAX_RECEIVE_BYTES: "10" })).to.throw(ConfigError, "MAX_RECEIVE_BYTES");
    expect(() => catalogConfig({ MAX_SEND_BYTES: "abc" })).to.throw(ConfigError, "MAX_SEND_BYTES");
  });
});
