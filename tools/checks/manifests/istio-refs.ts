// Istio objects agreeing with the Kubernetes ones in the same stack: every host has a Service, one
// VirtualService and one DestinationRule per host, every subset selects a Deployment, every routed subset is
// defined. (Moved unchanged from tools/checks/check-manifests.ts; the mesh policy checks live in mesh-policy/.)
import { describe, type Manifest, type Obj, type Problem } from "./types.js";

const shortHost = (host: string) => String(host).split(".")[0];

export function checkIstioRefs(manifests: Manifest[]): Problem[] {
  const problems: Problem[] = [];
  const of = (kind: string) => manifests.filter((m) => m.obj.kind === kind);
  const workloads = [...of("Deployment"), ...of("StatefulSet")];
  const services = new Map(of("Service").map((m) => [m.obj.metadata?.name, m]));

  // One VirtualService and one DestinationRule per host (two for one host conflict: istioctl IST0109).
  const subsetsByHost = new Map<string, Set<string>>();
  for (const kind of ["VirtualService", "DestinationRule"]) {
    const owner = new Map<string, string>();
    for (const { file, obj } of of(kind)) {
      const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
      // A VirtualService bound only to gateways names outside hosts ("*"); its destinations are checked below.
      const gatewayOnly = kind === "VirtualService" && (obj.spec?.gateways ?? ["mesh"]).every((g: string) => g !== "mesh");
      const hosts: string[] = kind === "VirtualService" ? (gatewayOnly ? [] : (obj.spec?.hosts ?? [])) : [obj.spec?.host];
      for (const host of hosts) {
        if (!services.has(shortHost(host))) say(`host ${host} has no Service`);
        const first = owner.get(shortHost(host));
        if (first) say(`a second ${kind} for host ${host} (the first is ${first}); keep one per host`);
        else owner.set(shortHost(host), `${describe(obj)} in ${file}`);
      }
      if (kind === "DestinationRule") {
        const service = services.get(shortHost(obj.spec?.host))?.obj;
        const names = new Set<string>();
        for (const subset of obj.spec?.subsets ?? []) {
          names.add(subset.name);
          const want: Obj = { ...(service?.spec?.selector ?? {}), ...(subset.labels ?? {}) };
          const match = workloads.some((w) => Object.entries(want).every(([k, v]) => w.obj.spec?.template?.metadata?.labels?.[k] === v));
          if (!match) say(`subset ${subset.name} (${JSON.stringify(subset.labels ?? {})}) matches no Deployment of host ${obj.spec?.host}`);
        }
        subsetsByHost.set(shortHost(obj.spec?.host), names);
      }
    }
  }
  for (const { file, obj } of of("VirtualService")) {
    for (const route of [...(obj.spec?.http ?? []), ...(obj.spec?.tcp ?? []), ...(obj.spec?.tls ?? [])]) {
      for (const { destination } of route.route ?? []) {
        const host = shortHost(destination?.host);
        if (!services.has(host)) problems.push({ file, message: `${describe(obj)}: route destination ${destination?.host} has no Service` });
        if (destination?.subset && !subsetsByHost.get(host)?.has(destination.subset)) {
          problems.push({ file, message: `${describe(obj)}: route to subset ${destination.subset} of ${destination.host}, which no DestinationRule defines` });
        }
      }
    }
  }
  return problems;
}
