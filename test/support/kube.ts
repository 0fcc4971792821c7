// One local Kubernetes control plane (etcd + kube-apiserver, tools/stack/kube/control-plane.ts) for the whole test
// run: started by the first suite that asks for it, with Istio's CRDs installed and meshmart applied as a
// cluster gets it (every other kustomization and experiment file checked with --dry-run=server), stopped by the
// global teardown (test/support/global.ts). Starting one takes ~15-60 s on a loaded machine, so suites share it.
import { applyMeshmart, installIstioCrds, type MeshmartApplied } from "../../tools/stack/kube/apply.js";
import { type ControlPlane, startControlPlane } from "../../tools/stack/kube/control-plane.js";

export interface SharedControlPlane {
  cp: ControlPlane;
  applied: MeshmartApplied;
}

let shared: Promise<SharedControlPlane> | undefined;

export async function sharedControlPlane(): Promise<SharedControlPlane> {
  // A suite that killed part of it on purpose (test/kube-mesh.test.ts's fault) leaves it broken: start afresh.
  const current = await shared?.catch(() => undefined);
  if (current && !(current.cp.isRunning("kube-apiserver") && current.cp.isRunning("etcd"))) {
    await current.cp.stop();
    shared = undefined;
  }
  shared ??= (async () => {
    const cp = await startControlPlane({ ports: "auto" });
    try {
      await installIstioCrds(cp);
      return { cp, applied: await applyMeshmart(cp) };
    } catch (err) {
      await cp.stop();
      throw err;
    }
  })();
  return shared;
}

export async function stopSharedControlPlane(): Promise<void> {
  const s = await shared?.catch(() => undefined);
  shared = undefined;
  await s?.cp.stop();
}
