// Benchmark 1: the cost of the kit. The same tiny RPC served and called three ways, closed loop at a fixed
// concurrency, the server in its own process: raw @grpc/grpc-js, bare connect-node, and the meshmart kit
// (serve() with all its interceptors, a clientPool()'s client with its metrics interceptor).
import { createInterface } from "node:readline";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { CatalogService, GetProductRequestSchema, GetProductResponseSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool } from "#kit";
import { startProcess } from "../../stack/process.js";
import { closedLoop, type Figures } from "./closed-loop.js";

export type EchoEngine = "grpc-js" | "connect-node" | "kit";
export const ECHO_ENGINES: EchoEngine[] = ["grpc-js", "connect-node", "kit"];
const DEADLINE_MS = 5000;

async function startEchoServer(engine: EchoEngine) {
  const proc = startProcess("tools/traffic/bench/echo-server.ts", { LOG_LEVEL: "warn" }, [engine]);
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.child.stdout! }).on("line", (l) => {
      const m = /^echo listening (\d+)$/.exec(l);
      if (m) resolve(Number(m[1]));
    });
    proc.exited.then((code) => reject(new Error(`echo server (${engine}) exited (${code}): ${proc.output().slice(-2000)}`)));
  });
  return { proc, address: `127.0.0.1:${port}` };
}

/** A caller for one engine's client; `close` releases its connection. */
function echoClient(engine: EchoEngine, address: string): { call: (sku: string) => Promise<unknown>; close: () => void } {
  if (engine === "grpc-js") {
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const path = `/${CatalogService.typeName}/GetProduct`;
    const ser = (m: { sku: string }) => Buffer.from(toBinary(GetProductRequestSchema, create(GetProductRequestSchema, m)));
    const de = (b: Buffer) => fromBinary(GetProductResponseSchema, b);
    return {
      call: (sku) =>
        new Promise((resolve, reject) =>
          client.makeUnaryRequest(path, ser, de, { sku }, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, v) =>
            err ? reject(err) : resolve(v),
          ),
        ),
      close: () => client.close(),
    };
  }
  if (engine === "connect-node") {
    const client = createClient(CatalogService, connectNodeTransport({ baseUrl: `http://${address}` }));
    return { call: (sku) => client.getProduct({ sku }, { timeoutMs: DEADLINE_MS }), close: () => undefined };
  }
  const clients = clientPool();
  const client = clients.dial(CatalogService, address);
  return { call: (sku) => client.getProduct({ sku }, { timeoutMs: DEADLINE_MS }), close: () => clients.close() };
}

export async function echoBench(o: { concurrency: number; seconds: number; warmupSeconds: number }): Promise<Record<EchoEngine, Figures>> {
  const out = {} as Record<EchoEngine, Figures>;
  for (const engine of ECHO_ENGINES) {
    const { proc, address } = await startEchoServer(engine);
    const client = echoClient(engine, address);
    try {
      const fn = (i: number) => client.call(`sku-${i % 32}`);
      await closedLoop(fn, { concurrency: o.concurrency, ms: o.warmupSeconds * 1000 });
      out[engine] = await closedLoop(fn, { concurrency: o.concurrency, ms: o.seconds * 1000 });
      if (out[engine].errors > 0) throw new Error(`echo (${engine}): ${out[engine].errors} calls failed, first: ${out[engine].firstError}`);
      console.error(`echo ${engine.padEnd(12)} ${JSON.stringify(out[engine])}`);
    } finally {
      client.close();
      await proc.stop();
    }
  }
  return out;
}
