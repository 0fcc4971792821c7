// Benchmark 5: the local mesh (npm start -- --mesh) against the services mode: the same closed-loop GetProduct
// and PlaceOrder, here through istiod's routes as a proxyless gRPC client (and orders → catalog/payment too);
// istiod's own memory and CPU; and how long a config edit takes to change behaviour (canary-100 written into
// istiod's directory until GetProduct answers from catalog-v2, and back).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import mongoose from "mongoose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { createGrpcJsTransport } from "#kit";
import { ROOT } from "../../root.js";
import { type ReadyMesh, startLocalStack } from "../../stack/child-stack.js";
import { xdsChannelOptions } from "../../stack/mesh/bootstrap.js";
import { MeshConfigDir, readMeshFile } from "../../stack/mesh/config.js";
import { APPROVED_CARD } from "../load/index.js";
import { closedLoop, type Figures } from "./closed-loop.js";
import type { Settings } from "./stacks.js";

export interface MeshResult {
  startMs: number;
  getProduct: Figures;
  placeOrder: Figures;
  istiod: { rssIdleMB: number; rssPeakMB: number; cpuPercentUnderLoad: number; cpuSecondsTotal: number };
  /** Config written → first call that behaves accordingly (ms), for the shift to v2 and back. */
  configEditMs: { toV2: number; backToV1: number; callsUntilChanged: number };
}

const rssMB = (pid: number) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024);
const cpuSeconds = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ 100
};

export async function measureMesh(s: Settings): Promise<MeshResult> {
  const t = performance.now();
  const stack = await startLocalStack("mesh");
  const startMs = Math.round(performance.now() - t);
  console.error(`mesh: cold start ${startMs} ms`);
  const mesh = stack.ready.mesh as ReadyMesh;
  const transports: ReturnType<typeof createGrpcJsTransport>[] = [];
  const client = <S extends typeof CatalogService | typeof IdentityService | typeof OrderService>(svc: S, target: string) => {
    const tr = createGrpcJsTransport({ target, channelOptions: xdsChannelOptions(JSON.stringify(mesh.bootstrap.load)) });
    transports.push(tr);
    return createClient(svc, tr);
  };
  try {
    const db = await mongoose.createConnection(stack.ready.mongodb as string, { dbName: "catalog" }).asPromise();
    await db.collection("products").updateMany({}, { $set: { stock: 1_000_000 } });
    await db.close();
    const identity = client(IdentityService, mesh.targets.identity);
    const catalog = client(CatalogService, mesh.targets.catalog);
    const orders = client(OrderService, mesh.targets.orders);
    const email = `bench-mesh-${Date.now()}@example.com`;
    await identity.register({ email, password: "correct-horse-1" }, { timeoutMs: 30_000 });
    const { accessToken } = await identity.login({ email, password: "correct-horse-1" }, { timeoutMs: 30_000 });
    const call = { timeoutMs: 5000, headers: { authorization: `Bearer ${accessToken}` } };
    const skus = (await catalog.listProducts({ pageSize: 100 }, call)).products.map((p) => p.sku);
    const rssIdleMB = rssMB(mesh.pid);
    let rssPeakMB = rssIdleMB;
    const sampler = setInterval(() => (rssPeakMB = Math.max(rssPeakMB, rssMB(mesh.pid))), 1000);

    let n = 0;
    const run = async (name: string, fn: (i: number) => Promise<unknown>) => {
      await closedLoop(fn, { concurrency: s.concurrency, ms: s.warmupSeconds * 1000 });
      const f = await closedLoop(fn, { concurrency: s.concurrency, ms: s.seconds * 1000 });
      console.error(`mesh ${name}: ${JSON.stringify(f)}`);
      return f;
    };
    const cpu0 = cpuSeconds(mesh.pid);
    const w0 = performance.now();
    const getProduct = await run("GetProduct", (i) => catalog.getProduct({ sku: skus[i % skus.length] }, call));
    const placeOrder = await run("PlaceOrder", async (i) => {
      const { order } = await orders.placeOrder(
        { idempotencyKey: `bench-mesh-${Date.now()}-${n++}`, items: [{ sku: skus[i % skus.length], quantity: 1 }], card: APPROVED_CARD },
        call,
      );
      if (order?.state !== OrderState.CONFIRMED) throw new Error(`order ${order?.orderId} ${order ? OrderState[order.state] : "missing"}`);
    });
    const cpuPercentUnderLoad = Math.round(((cpuSeconds(mesh.pid) - cpu0) / ((performance.now() - w0) / 1000)) * 1000) / 10;
    clearInterval(sampler);

    // Config edit → behaviour: write the canary-100 VirtualService where istiod reads, call until v2 answers.
    const dir = new MeshConfigDir(mesh.configDir);
    const servedBy = async () => {
      let by = "";
      await catalog.getProduct({ sku: skus[0] }, { ...call, onHeader: (h) => (by = h.get("x-served-by") ?? "") });
      return by;
    };
    let calls = 0;
    const until = async (version: string) => {
      const t0 = performance.now();
      while ((await servedBy()) !== version) calls++;
      return Math.round(performance.now() - t0);
    };
    const docs = readMeshFile(join(ROOT, "mesh", "experiments", "canary-100.yaml"), "mesh/experiments/canary-100.yaml").filter((d) => !d.obj.spec?.gateways);
    const applied = dir.apply(docs);
    const toV2 = await until("catalog-v2");
    dir.revert(applied);
    const backToV1 = await until("catalog-v1");
    console.error(`mesh: config edit → behaviour ${toV2} ms (to v2), ${backToV1} ms (back), ${calls} calls on the old config`);
    return {
      startMs,
      getProduct,
      placeOrder,
      istiod: { rssIdleMB, rssPeakMB, cpuPercentUnderLoad, cpuSecondsTotal: cpuSeconds(mesh.pid) },
      configEditMs: { toV2, backToV1, callsUntilChanged: calls },
    };
  } finally {
    for (const tr of transports) tr.close();
    const { forced } = await stack.stop();
    if (forced) console.error("mesh: the stack did not stop within 30 s of Ctrl-C and was killed");
  }
}
