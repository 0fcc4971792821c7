// The local mesh with a Kubernetes control plane instead of a config directory (npm start -- --mesh --kube):
// etcd + kube-apiserver (control-plane.ts), Istio's CRDs, meshmart's kustomizations applied with kubectl as
// `skaffold dev -p mesh` would (apply.ts), a WorkloadEntry per local process carrying its Deployment's pod
// labels and ServiceAccount (so the plain Kubernetes Services select them: they stand in for the pods no
// kubelet runs), and istiod in its normal Kubernetes mode (--kubeconfig, no --configDir), watching the API
// server as in a cluster. Config changes go through kubectl; waitInEffect observes istiod holding exactly the
// API server's version of each object (resourceVersion in /debug/configz) and its clients acknowledging it.
import { stringify } from "yaml";
import type { Manifest, Obj } from "../../checks/manifests/types.js";
import type { Workload } from "../mesh/bootstrap.js";
import { type MeshInstance, renderMeshConfig } from "../mesh/config.js";
import { type Istiod, startIstiod } from "../mesh/istiod.js";
import { applyMeshmart, applyObjects, installIstioCrds } from "./apply.js";
import { type ControlPlane, type ControlPlaneOptions, type Kubectl, type KubePart, startControlPlane } from "./control-plane.js";

export interface KubeMeshOptions {
  /** Use this control plane (tests share one); else one is started (and stopped with the mesh). */
  controlPlane?: ControlPlane;
  /** For a control plane started here. */
  controlPlaneOptions?: ControlPlaneOptions;
  /** The mesh kustomization; default "mesh"; "mesh/canary" for the 90/10 split. */
  mesh?: string;
  instances: MeshInstance[];
  clients: Workload[];
  log?: (line: string) => void;
  /** etcd or the API server exited (istiod and the services keep serving their last config). */
  onControlPlaneExit?: (part: KubePart, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface KubeMesh {
  controlPlane: ControlPlane;
  istiod: Istiod;
  /** The WorkloadEntries registered for the local processes and clients. */
  workloadEntries: Manifest[];
  /** What was applied for real, from which kustomizations. */
  applied: string[];
  /**
   * Resolves once istiod holds, for each object, the version the API server has now (or no longer holds one
   * the API server deleted), and every connected client acknowledged a push made after `since`.
   */
  waitInEffect(objs: Obj[], since: number, timeoutMs?: number): Promise<void>;
  /**
   * `kubectl apply` of `docs` (each replaces the object of the same name), waited until in effect; answers
   * what was there before, for revert. What the local mesh's `--target mesh` experiments call.
   */
  apply(docs: Manifest[]): Promise<KubeApplied>;
  /** Puts back what apply replaced (deletes what it added), waited until in effect. */
  revert(applied: KubeApplied): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeApplied {
  /** Per object: the API server's copy before the apply (as applyable YAML), or null when it was new. */
  before: Map<string, { obj: Obj; previous: Obj | null }>;
  written: Obj[];
}

export async function startKubeMesh(opts: KubeMeshOptions): Promise<KubeMesh> {
  const own = !opts.controlPlane;
  const cp = opts.controlPlane ?? (await startControlPlane(opts.controlPlaneOptions));
  if (opts.onControlPlaneExit) cp.onExit(opts.onControlPlaneExit);
  let istiod: Istiod | undefined;
  try {
    if (own) await installIstioCrds(cp);
    const meshDir = opts.mesh ?? "mesh";
    const { applied } = await applyMeshmart(cp, { apply: ["deploy/overlays/dev", meshDir], dryRunOthers: false });
    // The same WorkloadEntries the file-registry mesh gives istiod (tools/stack/mesh/config.ts), stored in the API server.
    const rendered = renderMeshConfig({ mesh: meshDir, instances: opts.instances, clients: opts.clients });
    const workloadEntries = rendered.docs.filter((m) => m.obj.kind === "WorkloadEntry");
    await applyObjects(cp, "the local processes' WorkloadEntries", workloadEntries);
    istiod = await startIstiod({ registryArgs: [`--kubeconfig=${cp.kubeconfig}`], env: { KUBECONFIG: cp.kubeconfig }, log: opts.log });
    const it = istiod;
    const waitInEffect: KubeMesh["waitInEffect"] = (objs, since, timeoutMs) => waitUntilInEffect(cp.kubectl, it, objs, since, timeoutMs);
    // istiod's first view: every WorkloadEntry and mesh object in, pushed to nobody yet (no client connected).
    await waitInEffect(
      workloadEntries.map((m) => m.obj),
      0,
    );
    const started = istiod;
    return {
      controlPlane: cp,
      istiod: started,
      workloadEntries,
      applied,
      waitInEffect,
      async apply(docs) {
        const current = await serverObjects(
          cp.kubectl,
          docs.map((d) => d.obj),
        );
        const before = new Map(
          docs.map((d) => [keyOf(withNamespace(d.obj)), { obj: withNamespace(d.obj), previous: maybe(current.get(keyOf(withNamespace(d.obj)))) }]),
        );
        const since = Date.now();
        await applyObjects(cp, `kubectl apply (${[...before.keys()].join(", ")})`, docs);
        await waitInEffect(
          docs.map((d) => d.obj),
          since,
        );
        return { before, written: docs.map((d) => d.obj) };
      },
      async revert(done) {
        const since = Date.now();
        for (const { obj, previous } of done.before.values()) {
          if (previous) await applyObjects(cp, `kubectl apply (revert ${keyOf(obj)})`, [{ file: "(before the experiment)", obj: previous }]);
          else await cp.kubectlOk(["delete", "-f", "-", "--ignore-not-found"], { input: stringify(obj) });
        }
        await waitInEffect(
          [...done.before.values()].map((b) => b.obj),
          since,
        );
      },
      async stop() {
        await started.stop();
        if (own) await cp.stop();
      },
    };
  } catch (err) {
    await istiod?.stop();
    if (own) await cp.stop();
    throw err;
  }
}

/** What waitUntilInEffect needs of istiod: its debug endpoints (tools/stack/mesh/istiod.ts). */
export type IstiodView = Pick<Istiod, "configz" | "waitForPush">;

/**
 * Resolves once istiod holds, for each object, the version the API server has now (resourceVersion, as
 * istiod's /debug/configz shows it), or no longer holds one the API server does not have, and then every
 * connected client acknowledged a push made after `since`: the change is what the mesh runs on.
 */
export async function waitUntilInEffect(kubectl: Kubectl, istiod: IstiodView, objs: Obj[], since: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const want = await serverVersions(kubectl, objs);
  for (;;) {
    const held = new Map((await istiod.configz()).map((c) => [keyOf(c), String(c.metadata?.resourceVersion ?? "")]));
    const behind = [...want].filter(([k, rv]) => (rv === null ? held.has(k) : held.get(k) !== rv)).map(([k]) => k);
    if (behind.length === 0) break;
    if (Date.now() > deadline) throw new Error(`istiod did not hold the API server's version of ${behind.join(", ")} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await istiod.waitForPush(since, undefined, Math.max(1000, deadline - Date.now()));
}

/** "Kind/namespace/name" as istiod's /debug/configz names it. */
function keyOf(c: Obj): string {
  return `${c.kind}/${c.metadata?.namespace ?? ""}/${c.metadata?.name}`;
}

const maybe = (o: Obj | undefined): Obj | null => (o ? applyable(o) : null);

function withNamespace(o: Obj): Obj {
  return { ...o, metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? "meshmart" } };
}

/** The API server's copy of each object that exists, by key, ready to be applied again (server fields removed). */
async function serverObjects(kubectl: Kubectl, objs: Obj[]): Promise<Map<string, Obj>> {
  const r = await kubectl(["get", "-f", "-", "--ignore-not-found", "-o", "json"], { input: objs.map((o) => stringify(withNamespace(o))).join("---\n") });
  if (r.code !== 0) throw new Error(`kubectl get (${objs.map((o) => keyOf(withNamespace(o))).join(", ")}): ${r.stderr.trim()}`);
  const found = new Map<string, Obj>();
  if (!r.stdout.trim()) return found;
  const parsed = JSON.parse(r.stdout) as Obj;
  for (const item of (parsed.kind === "List" ? parsed.items : [parsed]) as Obj[]) found.set(keyOf(item), item);
  return found;
}

/** An object as read from the API server, without the fields the server owns (so it can be applied again). */
function applyable(o: Obj): Obj {
  const { resourceVersion, uid, creationTimestamp, generation, managedFields, ...metadata } = o.metadata ?? {};
  const annotations = { ...metadata.annotations };
  delete annotations["kubectl.kubernetes.io/last-applied-configuration"];
  const { status, ...rest } = o;
  return { ...rest, metadata: { ...metadata, annotations } };
}

/** The API server's resourceVersion of each object (null: it does not exist there), in one `kubectl get`. */
async function serverVersions(kubectl: Kubectl, objs: Obj[]): Promise<Map<string, string | null>> {
  const found = await serverObjects(kubectl, objs);
  return new Map(objs.map((o) => [keyOf(withNamespace(o)), (found.get(keyOf(withNamespace(o)))?.metadata?.resourceVersion as string | undefined) ?? null]));
}
