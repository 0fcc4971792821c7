// The echo server of benchmark 1, in its own process (so it has a core of its own, as a service would):
//   node dist/echo-server.js grpc-js|connect-node|kit   → prints "echo listening <port>"
// All three answer meshmart.catalog.v1.CatalogService/GetProduct with a fixed product carrying the asked
// SKU, from memory: an existing contract, a realistic message, and no database in the way.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { destination, pino } from "pino";
import { CatalogService, GetProductRequestSchema, type GetProductResponse, GetProductResponseSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { serve, service } from "#kit";

const product = (sku: string) => ({
  product: {
    sku,
    name: "Blue mug",
    description: "A mug, blue, 350 ml.",
    price: { currencyCode: "EUR", units: 12n, nanos: 500_000_000 },
    stock: 100,
    categories: ["kitchen"],
    rating: 4.5,
    reviewCount: 12,
  },
});

async function main() {
  const engine = process.argv[2];
  let port: number;
  if (engine === "grpc-js") {
    // Raw grpc-js: a handler and the protobuf-es codec, nothing else.
    const server = new grpc.Server();
    const method = CatalogService.method.getProduct;
    server.addService(
      {
        GetProduct: {
          path: `/${CatalogService.typeName}/${method.name}`,
          requestStream: false,
          responseStream: false,
          requestSerialize: (m) => Buffer.from(toBinary(GetProductRequestSchema, m)),
          requestDeserialize: (b: Buffer) => fromBinary(GetProductRequestSchema, b),
          responseSerialize: (m: GetProductResponse) => Buffer.from(toBinary(GetProductResponseSchema, m)),
          responseDeserialize: (b: Buffer) => fromBinary(GetProductResponseSchema, b),
        },
      },
      {
        GetProduct: (call: grpc.ServerUnaryCall<{ sku: string }, GetProductResponse>, cb: grpc.sendUnaryData<GetProductResponse>) =>
          cb(null, create(GetProductResponseSchema, product(call.request.sku))),
      },
    );
    port = await new Promise((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
  } else if (engine === "connect-node") {
    // Bare connect-node: its router on node:http2, no interceptors.
    const server = http2.createServer(connectNodeAdapter({ routes: (r) => r.service(CatalogService, { getProduct: (req) => product(req.sku) }) }));
    server.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    port = (server.address() as AddressInfo).port;
  } else if (engine === "kit") {
    // The kit as every service runs it: serve() with propagation, observe (metrics and an info log line
    // per call, written as in production, here to /dev/null), faults and validation.
    const log = pino({ level: "info", base: { service: "echo" } }, destination("/dev/null"));
    const running = await serve({
      name: "echo",
      port: 0,
      host: "127.0.0.1",
      services: [service(CatalogService, { getProduct: (req) => product(req.sku) })],
      log,
    });
    port = running.port;
  } else {
    throw new Error(`engine must be grpc-js, connect-node or kit, got "${engine}"`);
  }
  console.log(`echo listening ${port}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
