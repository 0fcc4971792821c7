// The rolling restart through the local mesh (issue 12 item 10): every service rolled over in turn as a
// Deployment's rolling update does it (Stack.rollOver: the new process up and in the mesh, then the old one
// SIGTERMed while its endpoint is taken out), under shopper load sent as a proxyless mesh client, so the
// VirtualServices' retries (mesh/base/routes.yaml) decide what a caller sees. `retries: false` first replaces
// every route's retry policy with none, to show what the retries are worth.
import { join } from "node:path";
import { ROOT } from "../../root.js";
import { startStack, type UnitName } from "../../stack/launcher.js";
import { readMeshFile } from "../../stack/mesh/config.js";
import { checkDataSet, type InvariantReport } from "../data-set.js";
import { runLoad } from "../load/index.js";
import type { SecondStats } from "../load/recorder.js";
import { secondsIn, successRate } from "./evaluate.js";
import { LOCAL_RECOVERY } from "./run.js";

export const ROLLED: UnitName[] = ["payment", "catalog-v1", "identity", "orders"];
const MIX = { browse: 2, getProduct: 3, login: 1, placeOrder: 4 };

export interface MeshRollingReport {
  retries: boolean;
  rate: number;
  durationMs: number;
  sent: number;
  codes: Record<string, number>;
  byOp: Record<string, Record<string, number>>;
  /** When the first roll-over began and the last one ended, ms since the load started. */
  startMs: number;
  endMs: number;
  events: { atMs: number; what: string }[];
  successDuring: number;
  successWhole: number;
  /** PlaceOrder calls answered OK. */
  placedOk: number;
  invariants: InvariantReport;
  timeline: SecondStats[];
}

/** The routes of mesh/base/routes.yaml with every retry policy replaced by none (attempts: 0). */
export function routesWithoutRetries() {
  const docs = readMeshFile(join(ROOT, "mesh", "base", "routes.yaml"), "mesh/base/routes.yaml");
  for (const d of docs) for (const r of d.obj.spec?.http ?? []) r.retries = { attempts: 0 };
  return docs;
}

export async function meshRollingRestart(o: { retries: boolean; rate?: number; durationMs?: number; seed?: number }): Promise<MeshRollingReport> {
  const rate = o.rate ?? 8;
  const durationMs = o.durationMs ?? 30_000;
  const stack = await startStack({ logLevel: "warn", recovery: LOCAL_RECOVERY, mesh: {} });
  try {
    const mesh = stack.mesh;
    if (!mesh) throw new Error("the stack has no mesh");
    if (!o.retries) await mesh.apply(routesWithoutRetries());
    const events: { atMs: number; what: string }[] = [];
    let rolling: Promise<{ startMs: number; endMs: number }> | undefined;
    let t0 = 0;
    const run = await runLoad({
      targets: { ...mesh.targets, xdsBootstrap: JSON.stringify(mesh.bootstrap("load")) },
      rate,
      durationMs,
      mix: MIX,
      deadlineMs: 5000,
      seed: o.seed,
      onSecond: (s) => {
        if (s.t !== 0 || rolling) return;
        t0 = Date.now() - s.p99Ms - 500;
        const now = () => Date.now() - t0;
        rolling = (async () => {
          await new Promise((r) => setTimeout(r, Math.max(0, 3000 - now())));
          const startMs = now();
          for (const u of ROLLED) {
            events.push({ atMs: now(), what: `${u}: new process, then SIGTERM to the old one` });
            await stack.rollOver(u);
            events.push({ atMs: now(), what: `${u} rolled over` });
          }
          return { startMs, endMs: now() };
        })();
        rolling.catch(() => undefined);
      },
    });
    if (!rolling) throw new Error("the load never reported its first second");
    const shift = t0 - Date.parse(run.startedAt);
    const w = await rolling;
    const window = { startMs: w.startMs + shift, endMs: w.endMs + shift };
    const codes: Record<string, number> = {};
    const byOp: Record<string, Record<string, number>> = {};
    for (const [op, s] of Object.entries(run.byOp)) {
      byOp[op] = s?.codes ?? {};
      for (const [c, n] of Object.entries(s?.codes ?? {})) codes[c] = (codes[c] ?? 0) + n;
    }
    const accepted = run.placedOrders.filter((p) => p.code === "ok").map((p) => p.orderId);
    const invariants = await checkDataSet(stack.mongoUri, { settleTimeoutMs: LOCAL_RECOVERY.afterMs + 60_000, accepted });
    return {
      retries: o.retries,
      rate,
      durationMs,
      sent: run.sent,
      codes,
      byOp,
      ...window,
      events: events.map((e) => ({ ...e, atMs: e.atMs + shift })),
      successDuring: successRate(secondsIn(run.timeline, "during", window)),
      successWhole: successRate(run.timeline),
      placedOk: accepted.length,
      invariants,
      timeline: run.timeline,
    };
  } finally {
    await stack.stop();
  }
}
