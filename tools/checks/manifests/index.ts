// Offline checks of the cluster path (no Docker, Kubernetes or cluster here): every kustomization renders with
// the pinned kustomize, every rendered object passes its schema strictly (kubernetes-models + unknown-field
// lists for core kinds, the Istio 1.29.6 CRDs made strict), skaffold.yaml passes v4beta14 and agrees with the
// renders, inside what each skaffold profile deploys every reference resolves, and Istio's own istioctl
// analyze and validate find nothing (./istioctl.ts). Problems name the source file (kustomize's origin
// annotation) and the field.
//
//   npm run check:manifests            prints every problem as "<file>: <problem>", exits 1 if any
import { existsSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { parseAllDocuments } from "yaml";
import { istioctlBinary } from "../../stack/mesh/config.js";
import { checkObject, checkReferences, checkReplicas } from "./core-checks.js";
import { checkDashboardFile } from "./dashboard.js";
import { checkIstioRefs } from "./istio-refs.js";
import { checkWithIstioctl } from "./istioctl.js";
import { checkMeshPolicy, experimentFiles } from "./mesh-policy/index.js";
import { filesUnder, kustomizationDirs, manifestRoots, renderAll } from "./render.js";
import { loadSchemas, sharedSchemasDir } from "./schemas.js";
import { checkSkaffold } from "./skaffold-checks.js";
import { type Obj, type Problem, unique } from "./types.js";
import { validateObject } from "./validate.js";

export { sharedSchemasDir } from "./schemas.js";
export type { Manifest, Problem, Render, Stack } from "./types.js";

/** The overlay whose Deployments must run at least 2 replicas. */
export const DEFAULT_OVERLAY = "deploy/overlays/default";

export interface CheckOptions {
  /** Run istioctl analyze and validate too (default); off only in tests of the other checks, which it slows. */
  istioctl?: boolean;
}

/** Every problem found under `root`; [] when all is well. Throws if the schemas, kustomize or istioctl are missing. */
export function checkManifests(root: string, schemasDir = sharedSchemasDir(root), opts: CheckOptions = {}): Problem[] {
  const istioctl = opts.istioctl === false ? undefined : istioctlBinary(); // before the slow part: fail fast
  const schemas = loadSchemas(schemasDir);
  const { renders, problems } = renderAll(root);
  const failed = new Set(problems.map((p) => p.file.replace(/\/[^/]+$/, "")));

  const seen = new Set<string>();
  for (const render of renders) {
    for (const m of render.objects) {
      const key = `${m.file}\0${JSON.stringify(m.obj)}`;
      if (seen.has(key)) continue; // the same object in several renders is checked once
      seen.add(key);
      problems.push(...validateObject(m, schemas), ...checkObject(m));
    }
  }
  const overlay = renders.find((r) => r.dir === DEFAULT_OVERLAY);
  if (!overlay && !failed.has(DEFAULT_OVERLAY)) problems.push({ file: `${DEFAULT_OVERLAY}/kustomization.yaml`, message: "the default overlay is missing" });
  if (overlay) problems.push(...checkReplicas(overlay.objects));
  problems.push(...unlisted(root, renders));
  for (const file of manifestRoots(root)
    .flatMap((d) => filesUnder(root, d))
    .filter((f) => /^deploy\/observability\/.*\.json$/.test(f)))
    problems.push(...checkDashboardFile(root, file));

  const skaffold = readSkaffold(root, problems);
  if (skaffold) {
    const { problems: found, stacks } = checkSkaffold(root, skaffold, schemas.skaffold, renders, failed);
    problems.push(...found);
    for (const stack of stacks) problems.push(...checkReferences(stack), ...checkIstioRefs(stack.objects));
    problems.push(...checkMeshPolicy({ root, stacks, renders, schemas }));
    if (istioctl) {
      const experiments = experimentFiles(root).map((file) => ({ file, objects: parseQuietly(root, file) }));
      problems.push(...checkWithIstioctl({ root, renders, stacks, experiments, bin: istioctl }));
    }
  }
  return unique(problems);
}

/** A YAML file under deploy/ or services/<svc>/k8s/ that no kustomization renders is never deployed: say so. */
function unlisted(root: string, renders: { objects: { file: string }[] }[]): Problem[] {
  const used = new Set([...renders.flatMap((r) => r.objects.map((o) => o.file)), ...patchFiles(root)]);
  const kustomizations = new Set(kustomizationDirs(root).map((d) => d));
  return manifestRoots(root)
    .filter((d) => d !== "mesh") // mesh/experiments/*.yaml are applied one at a time by the experiment runner
    .flatMap((d) => filesUnder(root, d))
    .filter((f) => /\.ya?ml$/.test(f) && !/\/kustomization\.ya?ml$/.test(f) && !used.has(f))
    .filter((f) => !kustomizations.has(f))
    .map((file) => ({ file, message: "no kustomization lists this file, so nothing deploys it" }));
}

/**
 * The patch files the kustomizations (and components) name: a patch changes objects of other files, so no
 * rendered object comes from it (deploy/components/service/deployment.yaml is the body every service shares).
 */
function patchFiles(root: string): string[] {
  const out: string[] = [];
  for (const dir of kustomizationDirs(root)) {
    const name = ["kustomization.yaml", "kustomization.yml"].find((k) => existsSync(join(root, dir, k)));
    const k = name ? (parseQuietly(root, `${dir}/${name}`)[0] ?? {}) : {};
    const paths = [
      ...((k.patches ?? []) as Obj[]).map((p) => p?.path),
      ...((k.patchesJson6902 ?? []) as Obj[]).map((p) => p?.path),
      ...((k.patchesStrategicMerge ?? []) as unknown[]),
    ];
    for (const p of paths) if (typeof p === "string") out.push(posix.normalize(`${dir}/${p}`));
  }
  return out;
}

/** The objects of a file; documents that do not parse are left out (the mesh policy check reports them). */
function parseQuietly(root: string, file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(root, file), "utf8"))
    .filter((d) => d.errors.length === 0)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null && typeof o === "object" && !Array.isArray(o));
}

function readSkaffold(root: string, problems: Problem[]): Obj | undefined {
  const file = "skaffold.yaml";
  if (!existsSync(join(root, file))) {
    problems.push({ file, message: "missing" });
    return undefined;
  }
  const docs = parseAllDocuments(readFileSync(join(root, file), "utf8"));
  for (const doc of docs) for (const e of doc.errors) problems.push({ file, message: `YAML: ${e.message.split("\n")[0]}` });
  const config = docs[0]?.errors.length === 0 ? (docs[0].toJS() as Obj | null) : null;
  if (!config && docs.every((d) => d.errors.length === 0)) problems.push({ file, message: "empty" });
  return config ?? undefined;
}
