// The local mesh with a Kubernetes control plane instead of a config directory (npm start -- --mesh --kube):
// etcd + kube-apiserver (control-plane.ts), Istio's CRDs, meshmart's kustomizations applied with kubectl as
// `skaffold dev -p mesh` would (apply.ts), a WorkloadEntry per local process carrying its Deployment's pod
// labels and ServiceAccount (so the plain Kubernetes Services select them: they stand in for the pods no
// kubelet runs), and istiod in its normal Kubernetes mode (--kubeconfig, no --configDir), watching the API
// server as in a cluster. Config changes go through kubectl; waitInEffect observes istiod holding exactly the
// API server's version of each object (resourceVersion in /debug/configz) and its clients acknowledging it.
import { stringify } from "yaml";
import type { Manifest, Obj } from "../manifests/types.js";
import type { Workload } from "../mesh/bootstrap.js";
import { type MeshInstance, renderMeshConfig } from "../mesh/config.js";
import { type Istiod, startIstiod } from "../mesh/istiod.js";
import { applyMeshmart, applyObjects, installIstioCrds } from "./apply.js";
import { type ControlPlane, type ControlPlaneOptions, type KubePart, startControlPlane } from "./control-plane.js";

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
  stop(): Promise<void>;
}

export async function startKubeMesh(opts: KubeMeshOptions): Promise<KubeMesh> {
  const own = !opts.controlPlane;
  const cp =
    opts.controlPlane ??
    (await startControlPlane({ ...opts.controlPlaneOptions, onExit: (part, code, signal) => opts.onControlPlaneExit?.(part, code, signal) }));
  let istiod: Istiod | undefined;
  try {
    if (own) await installIstioCrds(cp);
    const meshDir = opts.mesh ?? "mesh";
    const { applied } = await applyMeshmart(cp, { apply: ["deploy/overlays/dev", meshDir], dryRunOthers: false });
    // The same WorkloadEntries the file-registry mesh gives istiod (tools/mesh/config.ts), stored in the API server.
    const rendered = renderMeshConfig({ mesh: meshDir, instances: opts.instances, clients: opts.clients });
    const workloadEntries = rendered.docs.filter((m) => m.obj.kind === "WorkloadEntry");
    await applyObjects(cp, "the local processes' WorkloadEntries", workloadEntries);
    istiod = await startIstiod({ registryArgs: [`--kubeconfig=${cp.kubeconfig}`], env: { KUBECONFIG: cp.kubeconfig }, log: opts.log });
    const it = istiod;
    const waitInEffect: KubeMesh["waitInEffect"] = async (objs, since, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      const want = await serverVersions(cp, objs);
      for (;;) {
        const held = new Map((await it.configz()).map((c) => [keyOf(c), String(c.metadata?.resourceVersion ?? "")]));
        const behind = [...want].filter(([k, rv]) => (rv === null ? held.has(k) : held.get(k) !== rv)).map(([k]) => k);
        if (behind.length === 0) break;
        if (Date.now() > deadline) throw new Error(`istiod did not hold the API server's version of ${behind.join(", ")} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await it.waitForPush(since, undefined, Math.max(1000, deadline - Date.now()));
    };
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

/** "Kind/namespace/name" as istiod's /debug/configz names it. */
function keyOf(c: Obj): string {
  return `${c.kind}/${c.metadata?.namespace ?? ""}/${c.metadata?.name}`;
}

/** The API server's resourceVersion of each object (null: it does not exist there), in one `kubectl get`. */
async function serverVersions(cp: ControlPlane, objs: Obj[]): Promise<Map<string, string | null>> {
  const withNs = objs.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? "meshmart" } }));
  const r = await cp.kubectl(["get", "-f", "-", "--ignore-not-found", "-o", "json"], { input: withNs.map((o) => stringify(o)).join("---\n") });
  if (r.code !== 0) throw new Error(`kubectl get (${withNs.map(keyOf).join(", ")}): ${r.stderr.trim()}`);
  const found = new Map<string, string>();
  if (r.stdout.trim()) {
    const parsed = JSON.parse(r.stdout) as Obj;
    for (const item of (parsed.kind === "List" ? parsed.items : [parsed]) as Obj[]) found.set(keyOf(item), String(item.metadata.resourceVersion));
  }
  return new Map(withNs.map((o) => [keyOf(o), found.get(keyOf(o)) ?? null]));
}
