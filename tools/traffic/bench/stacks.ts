// Benchmarks 2-4 on the real stack: services vs monolith on one database, PlaceOrder at 100 rps open loop,
// memory per process, cold start, and ghz against the load generator; a CPU profile when a target is missed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import mongoose from "mongoose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { type ClientPool, clientPool } from "#kit";
import { ROOT } from "../../root.js";
import { type LocalStack, type Mode, processesOf, type Ready, startLocalStack } from "../../stack/child-stack.js";
import { APPROVED_CARD, type LoadOptions, type LoadReport, runLoad } from "../load/index.js";
import { closedLoop, type Figures } from "./closed-loop.js";
import { type GhzFigures, ghz } from "./ghz.js";
import { type ProcessProfile, summarizeProfiles } from "./profile.js";

export interface Settings {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  /** PlaceOrder open-loop run: rate and duration. */
  orderRate: number;
  orderSeconds: number;
  /** The rate of the ghz / load generator cross-check. */
  crossCheckRate: number;
}

const DEADLINE_MS = 5000;

/** The load generator at a fixed rate against the stack (open loop), with the bench's deadline. */
function openLoop(stack: LocalStack, o: { rate: number; seconds: number; mix: LoadOptions["mix"]; users: number }): Promise<LoadReport> {
  return runLoad({ targets: stack.targets, rate: o.rate, durationMs: o.seconds * 1000, mix: o.mix, users: o.users, deadlineMs: DEADLINE_MS });
}

/** Resident memory (MB) of each unit of a stack, from prom-client's process_resident_memory_bytes on its admin port. */
async function rssOf(ready: Ready): Promise<Record<string, number>> {
  const units = Object.entries(ready).filter(([, v]) => typeof v === "object" && v && "admin" in v) as [string, { admin: string }][];
  const out: Record<string, number> = {};
  await Promise.all(
    units.map(async ([name, { admin }]) => {
      const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
      const line = text.split("\n").find((l) => l.startsWith("process_resident_memory_bytes "));
      if (line) out[name] = Math.round(Number(line.split(" ")[1]) / 2 ** 20);
    }),
  );
  return out;
}

/** Samples every unit's RSS once a second while `work` runs; the largest seen per unit. */
async function peakRssDuring<T>(ready: Ready, work: Promise<T>): Promise<{ result: T; peak: Record<string, number> }> {
  const peak: Record<string, number> = {};
  let done = false;
  const sampling = (async () => {
    while (!done) {
      const now = await rssOf(ready).catch(() => ({}) as Record<string, number>);
      for (const [k, v] of Object.entries(now)) peak[k] = Math.max(peak[k] ?? 0, v);
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  try {
    return { result: await work, peak };
  } finally {
    done = true;
    await sampling;
  }
}

/** Plenty of stock, so PlaceOrder measures the saga and not OUT_OF_STOCK. The bench owns this database. */
export async function restock(mongoUri: string) {
  const db = await mongoose.createConnection(mongoUri, { dbName: "catalog" }).asPromise();
  await db.collection("products").updateMany({}, { $set: { stock: 1_000_000 } });
  await db.close();
}

export async function timedStart(mode: Mode, env: Record<string, string>): Promise<{ stack: LocalStack; startMs: number }> {
  const t = performance.now();
  const stack = await startLocalStack(mode, { env });
  return { stack, startMs: Math.round(performance.now() - t) };
}

export interface ModeResult {
  startMs: number;
  rssIdleMB: Record<string, number>;
  rssLoadMB: Record<string, number>;
  getProduct: Figures;
  placeOrder: Figures;
}

export interface ServicesExtras {
  /** PlaceOrder alone, open loop. */
  placeOrderOpenLoop: LoadReport["byOp"]["placeOrder"] & { rate: number; seconds: number; confirmed: number; peakInFlight: number; dropped: number };
  crossCheck: {
    sku: string;
    closedLoop: { bench: Figures; ghz: GhzFigures };
    openLoop: { rate: number; loadGenerator: NonNullable<LoadReport["byOp"]["getProduct"]>; sendLagMs: LoadReport["sendLagMs"]; ghz: GhzFigures };
  };
}

/**
 * One mode on a stack of its own (fresh data directory, its own embedded database, so nothing left over
 * from another run, e.g. PENDING orders for recovery, runs during the measurements): its cold start, RSS,
 * closed-loop GetProduct and PlaceOrder; in services mode also the ghz cross-check and, last (it
 * overloads on purpose), PlaceOrder open loop.
 */
export async function measureMode(mode: Mode, s: Settings): Promise<{ result: ModeResult; extras?: ServicesExtras }> {
  const { stack, startMs } = await timedStart(mode, {});
  console.error(`${mode}: cold start ${startMs} ms`);
  const clients = clientPool();
  try {
    const { skus, getProduct, placeOrder } = await benchCalls(stack, mode, clients);
    const rssIdleMB = await rssOf(stack.ready);
    const run = (name: string, fn: (i: number) => Promise<unknown>) => warmThenMeasure(`${mode} ${name}`, fn, s);
    const sku = skus[0];
    const measured = await peakRssDuring(
      stack.ready,
      (async () => {
        const gp = await run("GetProduct", getProduct);
        // GetProduct again from ghz, before any PlaceOrder load: closed loop like the bench's, and at a fixed
        // rate like the load generator's.
        const cross =
          mode === "services"
            ? await (async () => {
                const ghzClosed = await ghz({ address: stack.targets.catalog, sku, seconds: s.seconds, concurrency: s.concurrency });
                console.error(`ghz closed loop: ${JSON.stringify(ghzClosed)}`);
                const gen = await openLoop(stack, { rate: s.crossCheckRate, seconds: s.seconds, mix: { getProduct: 1 }, users: 1 });
                const ghzOpen = await ghz({ address: stack.targets.catalog, sku, seconds: s.seconds, concurrency: 50, rps: s.crossCheckRate });
                console.error(
                  `load generator at ${s.crossCheckRate}/s: ${JSON.stringify(gen.byOp.getProduct)} lag ${JSON.stringify(gen.sendLagMs)}; ghz: ${JSON.stringify(ghzOpen)}`,
                );
                return { ghzClosed, gen, ghzOpen };
              })()
            : undefined;
        return { getProduct: gp, placeOrder: await run("PlaceOrder", placeOrder), cross };
      })(),
    );
    const { cross, ...figures } = measured.result;
    const result: ModeResult = { startMs, rssIdleMB, rssLoadMB: measured.peak, ...figures };
    if (!cross) return { result };

    const open = await peakRssDuring(stack.ready, placeOrderOpenLoop(stack, s));
    for (const [k, v] of Object.entries(open.peak)) result.rssLoadMB[k] = Math.max(result.rssLoadMB[k] ?? 0, v);
    const extras: ServicesExtras = {
      placeOrderOpenLoop: open.result,
      crossCheck: {
        sku,
        closedLoop: { bench: result.getProduct, ghz: cross.ghzClosed },
        openLoop: { rate: s.crossCheckRate, loadGenerator: cross.gen.byOp.getProduct!, sendLagMs: cross.gen.sendLagMs, ghz: cross.ghzOpen },
      },
    };
    return { result, extras };
  } finally {
    clients.close();
    const { forced } = await stack.stop();
    if (forced) console.error(`${mode}: the stack did not stop within 30 s of Ctrl-C and was killed`);
  }
}

/** The two calls every closed loop makes, on a restocked stack with a registered shopper; `clients` is the caller's to close. */
export async function benchCalls(stack: LocalStack, tag: string, clients: ClientPool) {
  await restock(stack.ready.mongodb as string); // after start: catalog has seeded its products by now
  const identity = clients.dial(IdentityService, stack.targets.identity);
  const catalog = clients.dial(CatalogService, stack.targets.catalog);
  const orders = clients.dial(OrderService, stack.targets.orders);
  const email = `bench-${tag}-${Date.now()}@example.com`;
  await identity.register({ email, password: "correct-horse-1" }, { timeoutMs: 30_000 });
  const { accessToken } = await identity.login({ email, password: "correct-horse-1" }, { timeoutMs: 30_000 });
  const call = { timeoutMs: DEADLINE_MS, headers: { authorization: `Bearer ${accessToken}` } };
  const skus = (await catalog.listProducts({ pageSize: 100 }, call)).products.map((p) => p.sku);
  let n = 0;
  const getProduct = (i: number) => catalog.getProduct({ sku: skus[i % skus.length] }, call);
  const placeOrder = async (i: number) => {
    const { order } = await orders.placeOrder(
      { idempotencyKey: `bench-${tag}-${Date.now()}-${n++}`, items: [{ sku: skus[i % skus.length], quantity: 1 }], card: APPROVED_CARD },
      call,
    );
    if (order?.state !== OrderState.CONFIRMED) throw new Error(`order ${order?.orderId} ${order ? OrderState[order.state] : "missing"}`);
  };
  return { skus, getProduct, placeOrder };
}

/** A closed loop after its warm-up. */
export async function warmThenMeasure(name: string, fn: (i: number) => Promise<unknown>, s: Settings): Promise<Figures> {
  await closedLoop(fn, { concurrency: s.concurrency, ms: s.warmupSeconds * 1000 });
  const f = await closedLoop(fn, { concurrency: s.concurrency, ms: s.seconds * 1000 });
  console.error(`${name}: ${JSON.stringify(f)}`);
  return f;
}

async function placeOrderOpenLoop(stack: LocalStack, s: Settings): Promise<ServicesExtras["placeOrderOpenLoop"]> {
  const r = await openLoop(stack, { rate: s.orderRate, seconds: s.orderSeconds, mix: { placeOrder: 1 }, users: 10 });
  const op = r.byOp.placeOrder!;
  const confirmed = r.placedOrders.filter((o) => o.status === "CONFIRMED").length;
  console.error(`PlaceOrder at ${s.orderRate}/s open loop: ${JSON.stringify(op)}, confirmed ${confirmed}`);
  return { ...op, rate: s.orderRate, seconds: s.orderSeconds, confirmed, peakInFlight: r.peakInFlight, dropped: r.dropped };
}

/**
 * The PlaceOrder open-loop run again, on a stack with a database of its own (no orders left over from
 * earlier runs for recovery to pick up) and every process under V8's CPU profiler; the profiles summarised.
 */
/** CPU time used so far by each process of a stack (Linux /proc), by the stack's names: start, orders, catalog-v1, devdb... */
function cpuSecondsByProcess(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // after "pid (comm) ": state is field 3
      out[name] = (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** CPU-seconds the whole machine spent busy so far (all cores; /proc/stat, everything but idle and iowait). */
function machineBusySeconds(): number {
  const [, ...v] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const n = v.map(Number);
  return (n.reduce((a, b) => a + b, 0) - n[3] - n[4]) / 100;
}

export interface PlaceOrderProfile {
  /** CPU seconds each process used during the load window, and that window's length. */
  cpuSeconds: Record<string, number>;
  windowSeconds: number;
  /** CPU-seconds the whole machine was busy in the window (this stack, the bench, and anything else running). */
  machineBusySeconds: number;
  processes: ProcessProfile[];
}

export async function profilePlaceOrder(s: Settings): Promise<PlaceOrderProfile> {
  const dir = mkdtempSync(join(tmpdir(), "meshmart-cpuprof-"));
  const hook = join(ROOT, "tools", "traffic", "bench", "cpu-profile-hook.mjs");
  try {
    const { stack } = await timedStart("services", { NODE_OPTIONS: `--import=${pathToFileURL(hook).href}`, MESHMART_CPU_PROF_DIR: dir });
    const pids = processesOf(stack);
    let cpuSeconds: Record<string, number> = {};
    let windowSeconds = 0;
    let busy = 0;
    try {
      await restock(stack.ready.mongodb as string);
      // Start the profilers now (the hook waits for SIGUSR2): Node processes only, the database is Go.
      for (const pid of Object.values(pids)) if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("node")) process.kill(pid, "SIGUSR2");
      const before = cpuSecondsByProcess(pids);
      const busyBefore = machineBusySeconds();
      const t = performance.now();
      await placeOrderOpenLoop(stack, { ...s, orderSeconds: Math.min(s.orderSeconds, 6) });
      windowSeconds = Math.round((performance.now() - t) / 100) / 10;
      busy = Math.round((machineBusySeconds() - busyBefore) * 10) / 10;
      const after = cpuSecondsByProcess(pids);
      cpuSeconds = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Math.round((v - (before[k] ?? 0)) * 10) / 10]));
    } finally {
      await stack.stop(); // the profiles are written when each process is told to stop
    }
    return { cpuSeconds, windowSeconds, machineBusySeconds: busy, processes: summarizeProfiles(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
