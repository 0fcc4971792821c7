// One local Kubernetes control plane (etcd + kube-apiserver, tools/kube/control-plane.ts) for the whole test
// run: started by the first suite that asks for it, with Istio's CRDs installed, stopped by the global
// teardown (test/support/global.ts). Starting one takes ~15-30 s on a loaded machine, so suites share it.
import { type ControlPlane, startControlPlane } from "../../tools/kube/control-plane.js";
import { installIstioCrds } from "../../tools/kube/apply.js";

let shared: Promise<ControlPlane> | undefined;

export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= (async () => {
    const cp = await startControlPlane({ ports: "auto" });
    try {
      await installIstioCrds(cp);
    } catch (err) {
      await cp.stop();
      throw err;
    }
    return cp;
  })();
  return shared;
}

export async function stopSharedControlPlane(): Promise<void> {
  const cp = await shared?.catch(() => undefined);
  shared = undefined;
  await cp?.stop();
}
