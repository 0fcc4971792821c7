// The local-mesh side of an experiment (--target mesh): the experiment's own Istio YAML from mesh/experiments/
// is applied to the real istiod of a local mesh stack (replacing objects by name, as `kubectl apply` would),
// the load runs as a proxyless mesh client, and afterwards what was there before is put back. Each change is
// waited for by observing it (istiod holds the new revision in /debug/configz, then every xDS client has
// acknowledged a push made after it in /debug/syncz), never by sleeping.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Manifest } from "../../checks/manifests/types.js";
import { ROOT } from "../../root.js";
import type { Stack, UnitName } from "../../stack/launcher.js";
import { readMeshFile, whyLeftOut } from "../../stack/mesh/config.js";
import { EXPERIMENTS_DIR, type Hypothesis } from "./hypothesis.js";
import type { FaultLog } from "./local.js";

/**
 * Experiments with Istio YAML that proxyless gRPC cannot honour, and why. Everything else with a file in
 * mesh/experiments/ runs through the local mesh.
 */
export const MESH_REFUSED: Record<string, string> = {
  "outlier-ejection": "Istio does not translate a DestinationRule's outlierDetection for proxyless gRPC clients (only Envoy ejects hosts)",
};

/** The annotation by which an experiment's YAML asks for a real failure (the kit's knob) on some pods. */
const FAULT_KNOB = "meshmart.dev/fault-knob";
const run = promisify(execFile);
const UNIT_OF_SERVICE: Record<string, UnitName> = { identity: "identity", catalog: "catalog-v1", orders: "orders", payment: "payment" };

/** Why `h` cannot run with --target mesh, or undefined when it can. */
export function meshRefusal(h: Hypothesis, experimentsDir = EXPERIMENTS_DIR): string | undefined {
  if (MESH_REFUSED[h.name]) return `experiment "${h.name}" cannot run through the local mesh: ${MESH_REFUSED[h.name]}`;
  if (!h.targets.includes("cluster") || !existsSync(join(experimentsDir, `${h.name}.yaml`)))
    return `experiment "${h.name}" has no Istio YAML (it is a process-level fault): run it with --target local`;
  return undefined;
}

/** The experiment's documents (namespace meshmart unless they say otherwise). */
export function experimentDocs(h: Hypothesis, experimentsDir = EXPERIMENTS_DIR): Manifest[] {
  return readMeshFile(join(experimentsDir, `${h.name}.yaml`), `mesh/experiments/${h.name}.yaml`);
}

/**
 * Applies the experiment to the stack's mesh (and the fault knobs its YAML asks for), runs `during`, and
 * always puts back what was there, even when `during` fails.
 */
export async function withMeshFault<T>(
  stack: Stack,
  h: Hypothesis,
  during: () => Promise<T>,
  experimentsDir = EXPERIMENTS_DIR,
): Promise<{ result: T; fault: FaultLog }> {
  const mesh = stack.mesh;
  if (!mesh) throw new Error("--target mesh needs a stack started with mesh");
  const refused = meshRefusal(h, experimentsDir);
  if (refused) throw new Error(refused);
  const all = experimentDocs(h, experimentsDir);
  const jobs = all.filter((d) => d.obj.kind === "Job");
  const docs = all.filter((d) => !whyLeftOut(d.obj) && d.obj.kind !== "Job");
  const skipped = all.filter((d) => whyLeftOut(d.obj));
  const knobs = docs.flatMap((d) => {
    const raw = d.obj.metadata?.annotations?.[FAULT_KNOB];
    if (!raw) return [];
    const k = JSON.parse(raw) as { service: string; faults: Record<string, unknown> };
    const unit = UNIT_OF_SERVICE[k.service];
    if (!unit) throw new Error(`${d.file}: ${FAULT_KNOB} names service "${k.service}", which has no local instance`);
    return [{ unit, faults: k.faults }];
  });
  const t0 = Date.now();
  const events: FaultLog["events"] = [];
  const note = (what: string) => events.push({ atMs: Date.now() - t0, what });
  for (const d of skipped) note(`not applied: ${d.obj.kind} ${d.obj.metadata?.name}: ${whyLeftOut(d.obj)}`);
  const applied = docs.length > 0 ? await mesh.apply(docs) : undefined;
  if (applied)
    note(
      `applied ${docs.map((d) => `${d.obj.kind} ${d.obj.metadata.name}`).join(", ")} from mesh/experiments/${h.name}.yaml; istiod pushed it, every client acknowledged`,
    );
  let result: T;
  try {
    for (const j of jobs) await runJobOutsideTheMesh(stack, j, note);
    for (const k of knobs) {
      await stack.setFaults(k.unit, k.faults);
      note(`${k.unit} fault knobs on: ${JSON.stringify(k.faults)}`);
    }
    result = await during();
  } finally {
    for (const k of knobs) await stack.setFaults(k.unit, {}).catch((err: Error) => note(`${k.unit} knobs NOT reset: ${err.message}`));
    if (applied) {
      await mesh.revert(applied);
      note("reverted to the objects that were there before; istiod pushed it, every client acknowledged");
    }
  }
  // The fault is on for the whole load (applied before it started), as on a cluster.
  return { result, fault: { startMs: 0, endMs: Number.POSITIVE_INFINITY, events } };
}

/**
 * A Job of an experiment (mtls-plaintext: grpcurl without a sidecar, so without a mesh certificate) runs here as
 * the process its container would run, with `<service>:<port>` pointed at that service's mesh address. As on a
 * cluster, where the runner waits for the Job to fail, it must fail at the connection: an answer, even
 * PERMISSION_DENIED (the TLS handshake passed), fails the experiment.
 */
async function runJobOutsideTheMesh(stack: Stack, job: Manifest, note: (what: string) => void): Promise<void> {
  const container = job.obj.spec?.template?.spec?.containers?.[0];
  const image = String(container?.image ?? "");
  if (!image.startsWith("fullstorydev/grpcurl")) throw new Error(`${job.file}: Job ${job.obj.metadata?.name}: only grpcurl Jobs run locally, not ${image}`);
  const args = ((container?.args ?? []) as string[]).map((a) => {
    const m = a.match(/^([a-z-]+):(\d+)$/);
    const unit = m ? UNIT_OF_SERVICE[m[1]] : undefined;
    return unit ? stack.endpoints[unit].grpc : a;
  });
  const started = Date.now();
  const r = await run(join(ROOT, ".cache", "bin", "grpcurl"), args, { timeout: 30_000 }).then(
    (out) => ({ code: 0, text: `${out.stdout}${out.stderr}` }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? 1, text: `${err.stdout ?? ""}${err.stderr ?? ""}` }),
  );
  const said = r.text.trim().split("\n").slice(-2).join(" ");
  note(
    `Job ${job.obj.metadata?.name} as a local process without a mesh certificate: grpcurl ${args.join(" ")} → exit ${r.code} after ${Date.now() - started} ms: ${said}`,
  );
  if (r.code === 0) throw new Error(`Job ${job.obj.metadata?.name}: grpcurl got an answer from a mesh port without a certificate: ${said}`);
  if (/PermissionDenied|code = Unimplemented|SERVING/.test(r.text))
    throw new Error(`Job ${job.obj.metadata?.name}: the server answered (${said}): the connection should have been refused before any RPC`);
}
