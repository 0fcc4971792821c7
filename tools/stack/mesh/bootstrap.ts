// Per-process xDS bootstrap for proxyless gRPC: what a meshmart process in mesh mode tells grpc-js-xds about
// istiod and about itself, as the Istio agent would write it into a pod (istio-agent's grpc bootstrap).
//
// API (the sec and kube helpers build on it; keep it stable):
//   bootstrapFor(w: Workload, xdsAddress: string, extra?): Bootstrap   the JSON object
//   bootstrapEnv(w, xdsAddress, extra?): { GRPC_XDS_BOOTSTRAP_CONFIG }  env for a child process
//   xdsChannelOptions(bootstrap): grpc ChannelOptions                   one channel with its own bootstrap
//                                                                       (a process talking as several workloads: tests, load)
//   nodeId(w): "sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local"
//   `extra` merges top-level fields into the object (replacing certificate_providers, for instance).
//   The certificate provider "default" (file_watcher, Workload.certDir) is always there: see bootstrapFor.
//
// istiod finds a proxyless workload (its labels, service account, policies) by the IP in its node id and
// INSTANCE_IPS, so every instance needs an address of its own (tools/stack/mesh/config.ts gives each one a
// 127.0.0.x and a WorkloadEntry with that address).

import { join } from "node:path";
import { ROOT } from "../../root.js";

export const MESH_NAMESPACE = "meshmart";
export const MESH_DOMAIN = "cluster.local";
/** istiod's cluster id when it runs from a config directory (its --clusterID). */
export const MESH_CLUSTER_ID = "Kubernetes";
/** The inbound listener name istiod serves to a proxyless gRPC server (XdsServer). */
export const SERVER_LISTENER_TEMPLATE = "xds.istio.io/grpc/lds/inbound/%s";

export interface Workload {
  /** Its own loopback address (INSTANCE_IPS and the node id). */
  address: string;
  /** The pod-like name: "catalog-v1", "load". */
  name: string;
  namespace?: string;
  /** Kubernetes ServiceAccount name (in the namespace). */
  serviceAccount?: string;
  /**
   * Where its mesh certificate would be (cert-chain.pem, key.pem, root-cert.pem), for the certificate provider
   * "default". Default: .cache/mesh/certs/<serviceAccount or name>.
   */
  certDir?: string;
}

export interface Bootstrap {
  xds_servers: { server_uri: string; channel_creds: { type: string }[]; server_features: string[] }[];
  node: { id: string; locality: Record<string, never>; metadata: Record<string, string> };
  server_listener_resource_name_template: string;
  [extra: string]: unknown;
}

export function nodeId(w: Workload): string {
  const ns = w.namespace ?? MESH_NAMESPACE;
  return `sidecar~${w.address}~${w.name}.${ns}~${ns}.svc.${MESH_DOMAIN}`;
}

/** The bootstrap of workload `w` talking to istiod's plaintext xDS port at `xdsAddress` ("127.0.0.1:15010"). */
export function bootstrapFor(w: Workload, xdsAddress: string, extra: Record<string, unknown> = {}): Bootstrap {
  const ns = w.namespace ?? MESH_NAMESPACE;
  const certs = w.certDir ?? join(ROOT, ".cache", "mesh", "certs", w.serviceAccount ?? w.name);
  const metadata: Record<string, string> = { GENERATOR: "grpc", NAMESPACE: ns, INSTANCE_IPS: w.address, CLUSTER_ID: MESH_CLUSTER_ID };
  if (w.serviceAccount) metadata.SERVICE_ACCOUNT = w.serviceAccount;
  return {
    xds_servers: [{ server_uri: xdsAddress, channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] }],
    node: { id: nodeId(w), locality: {}, metadata },
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
    // Istio's clusters for ISTIO_MUTUAL DestinationRules name the certificate provider "default": grpc-js-xds
    // NACKs a cluster naming a provider its bootstrap lacks. It reads the files only for a channel with xDS
    // credentials (mTLS); with insecure channel credentials, as here, the call is plaintext and they need not exist.
    certificate_providers: {
      default: {
        plugin_name: "file_watcher",
        config: {
          certificate_file: join(certs, "cert-chain.pem"),
          private_key_file: join(certs, "key.pem"),
          ca_certificate_file: join(certs, "root-cert.pem"),
          refresh_interval: "900s",
        },
      },
    },
    ...extra,
  };
}

/** Environment for a child process that is workload `w` (grpc-js-xds reads it once, at its first xds channel). */
export function bootstrapEnv(w: Workload, xdsAddress: string, extra?: Record<string, unknown>): { GRPC_XDS_BOOTSTRAP_CONFIG: string } {
  return { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrapFor(w, xdsAddress, extra)) };
}

/**
 * grpc-js-xds's per-channel bootstrap (its channel option named TEST_ONLY...: it gives the channel an xDS
 * client of its own instead of the process-wide one). For a process that acts as another workload than the
 * one in its environment: the load generator inside the experiment runner, the tests.
 */
export function xdsChannelOptions(bootstrap: Bootstrap | string): Record<string, string> {
  return { "grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config": typeof bootstrap === "string" ? bootstrap : JSON.stringify(bootstrap) };
}

/** The xds target of a mesh service port, as a client in the cluster would dial it. */
export function xdsTarget(service: string, port: number, namespace = MESH_NAMESPACE): string {
  return `xds:///${service}.${namespace}.svc.${MESH_DOMAIN}:${port}`;
}
