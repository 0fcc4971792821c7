// Puts meshmart on the local control plane the way a cluster gets it: Istio's CRDs (and the istio-system
// namespace an Istio install creates), then the rendered kustomizations through `kubectl apply`, so the API
// server validates every object against its real schemas. A refusal names the object, its source file and the
// server's message.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { renderAll } from "../../checks/manifests/render.js";
import type { Manifest, Render } from "../../checks/manifests/types.js";
import { ROOT } from "../../root.js";
import { EXPERIMENTS_DIR } from "../../traffic/experiment/hypothesis.js";
import { type ControlPlane, ISTIO_CRDS } from "./control-plane.js";

/** What `skaffold dev -p mesh` deploys: the dev overlay, then the mesh policy. */
export const CLUSTER_KUSTOMIZATIONS = ["deploy/overlays/dev", "mesh"];

export class ApplyError extends Error {
  constructor(
    readonly what: string,
    readonly refusals: string[],
  ) {
    super(`the API server refused ${what}:\n  ${refusals.join("\n  ")}`);
  }
}

/** kubectl's error lines (one per refused object), each with the source file of the object it names when known. */
export function refusals(stderr: string, objects: Manifest[] = []): string[] {
  // One refusal per object: its first line, and the field errors kubectl lists under it ("* spec...: ...").
  const lines: string[] = [];
  for (const raw of stderr.split("\n")) {
    const l = raw.trim();
    if (/^(Error from server|The \S+ "[^"]*" is invalid|error:)/.test(l)) lines.push(l);
    else if (l && lines.length > 0) lines[lines.length - 1] += ` ${l}`;
  }
  const list = lines.length > 0 ? lines : [stderr.trim() || "kubectl failed without a message"];
  return list.map((line) => {
    const hit = objects.find((o) => o.obj.metadata?.name && line.includes(`"${o.obj.metadata.name}"`) && line.includes(o.obj.kind));
    return hit ? `${hit.obj.kind} ${hit.obj.metadata.namespace ?? "-"}/${hit.obj.metadata.name} (${hit.file}): ${line}` : line;
  });
}

/** Applies objects in one `kubectl apply -f -`; throws ApplyError naming each refused object. */
export async function applyObjects(cp: ControlPlane, what: string, objects: Manifest[], opts: { dryRun?: boolean } = {}): Promise<string> {
  const yaml = objects.map((o) => stringify(o.obj)).join("---\n");
  const r = await cp.kubectl(["apply", "-f", "-", ...(opts.dryRun ? ["--dry-run=server"] : [])], { input: yaml });
  if (r.code !== 0) throw new ApplyError(what, refusals(r.stderr, objects));
  return r.stdout;
}

/** Istio's CRDs (server-side: some are larger than client-side apply's annotation allows) and istio-system. */
export async function installIstioCrds(cp: ControlPlane): Promise<void> {
  const crds = readFileSync(ISTIO_CRDS, "utf8");
  const r = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: crds });
  if (r.code !== 0) throw new ApplyError(`Istio's CRDs (${ISTIO_CRDS})`, refusals(r.stderr));
  await cp.kubectlOk(["wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"]);
  await cp.kubectlOk(["create", "namespace", "istio-system"]);
}

export interface MeshmartApplied {
  /** Kustomizations applied for real, in order. */
  applied: string[];
  /** Every other rendered kustomization and every experiment file, accepted by `--dry-run=server`. */
  dryRun: string[];
  /** The objects applied for real (the Deployments and Services the launcher registers workloads for). */
  objects: Manifest[];
}

/**
 * Renders every kustomization with the pinned kustomize (tools/checks/manifests/render.ts), applies `apply` for real
 * (a cluster's `skaffold dev -p mesh`), then every other kustomization and experiment file with
 * `--dry-run=server`, so each one is known to be accepted by a real API server.
 */
export async function applyMeshmart(cp: ControlPlane, opts: { apply?: string[]; dryRunOthers?: boolean; root?: string } = {}): Promise<MeshmartApplied> {
  const want = opts.apply ?? CLUSTER_KUSTOMIZATIONS;
  const { renders, problems } = renderAll(opts.root ?? ROOT);
  if (problems.length > 0) throw new Error(`rendering the manifests failed:\n  ${problems.map((p) => `${p.file}: ${p.message}`).join("\n  ")}`);
  const byDir = new Map<string, Render>(renders.map((r) => [r.dir, r]));
  const objects: Manifest[] = [];
  for (const dir of want) {
    const render = byDir.get(dir);
    if (!render) throw new Error(`no kustomization in ${dir}`);
    await applyObjects(cp, `kubectl apply -k ${dir}`, render.objects);
    objects.push(...render.objects);
  }
  const dryRun: string[] = [];
  if (opts.dryRunOthers !== false) {
    for (const r of renders) {
      if (want.includes(r.dir) || r.objects.length === 0) continue;
      await applyObjects(cp, `kubectl apply -k ${r.dir} --dry-run=server`, r.objects, { dryRun: true });
      dryRun.push(r.dir);
    }
    for (const f of readdirSync(EXPERIMENTS_DIR).filter((n) => n.endsWith(".yaml") && !n.endsWith(".hypothesis.yaml") && n !== "kustomization.yaml")) {
      const file = join(EXPERIMENTS_DIR, f);
      const r = await cp.kubectl(["apply", "-f", file, "--dry-run=server"]);
      if (r.code !== 0) throw new ApplyError(`kubectl apply -f mesh/experiments/${f} --dry-run=server`, refusals(r.stderr));
      dryRun.push(`mesh/experiments/${f}`);
    }
  }
  return { applied: want, dryRun, objects };
}
