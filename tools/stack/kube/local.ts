// What `npm start -- --mesh --kube` leaves beside its kubeconfig for the tools run in another terminal:
// `KUBECONFIG=.cache/kube/kubeconfig npm run experiment -- <name> --target cluster` finds there that the
// cluster is the local control plane, and so where istiod is (to wait until each kubectl change is in effect),
// how to be a client in its mesh (the load's xDS bootstrap) and where the database is (for the invariants).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Obj } from "../../checks/manifests/types.js";
import type { Settle } from "../../traffic/experiment/cluster.js";
import type { LoadTargets } from "../../traffic/load/shopper.js";
import { istiodAt } from "../mesh/istiod.js";
import { kubectlFor } from "./control-plane.js";
import { waitUntilInEffect } from "./mesh.js";

export const LOCAL_MESH_FILE = "local-mesh.json";

export interface LocalMeshInfo {
  kubeconfig: string;
  /** istiod's HTTP (debug) address. */
  istiod: string;
  /** The load generator's targets as a mesh client (xds:/// and its bootstrap). */
  targets: LoadTargets;
  mongodb: string;
}

export function writeLocalMeshInfo(info: LocalMeshInfo): string {
  const file = join(dirname(info.kubeconfig), LOCAL_MESH_FILE);
  writeFileSync(file, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** The local control plane's info when KUBECONFIG is the kubeconfig it wrote; undefined for any other cluster. */
export function localMeshInfo(env: NodeJS.ProcessEnv = process.env): LocalMeshInfo | undefined {
  if (!env.KUBECONFIG || env.KUBECONFIG.includes(":")) return undefined; // a merged list is not ours
  const kubeconfig = resolve(env.KUBECONFIG);
  const file = join(dirname(kubeconfig), LOCAL_MESH_FILE);
  if (!existsSync(file)) return undefined;
  const info = JSON.parse(readFileSync(file, "utf8")) as LocalMeshInfo;
  return info.kubeconfig === kubeconfig ? info : undefined;
}

/** Waits, after each kubectl step of an experiment, until istiod holds the API server's version of `objs` and pushed it. */
export function localSettle(info: LocalMeshInfo, objs: Obj[]): Settle {
  const kubectl = kubectlFor(info.kubeconfig);
  const istiod = istiodAt(info.istiod);
  return (_phase, since) => waitUntilInEffect(kubectl, istiod, objs, since);
}
