// What the demo install observes: Telemetry names only providers it has, and no workload turns off the probe
// rewrite that lets kubelet's probes through STRICT mTLS.
import { describe, type Obj, type Problem } from "../types.js";
import type { Cluster } from "./cluster.js";

/**
 * The telemetry providers an install made as the README says (`istioctl install --set profile=demo`) has: the
 * mesh config's built-ins (istio.io/istio pkg/config/mesh/mesh.go) and the demo profile's extension providers
 * (manifests/helm-profiles/demo.yaml), of the Istio version tools/setup/setup.sh builds.
 */
export const DEMO_PROVIDERS = ["prometheus", "stackdriver", "envoy", "otel", "skywalking", "otel-tracing", "jaeger"];

/**
 * Telemetry names only providers the demo install has, and a tracing block names one: the demo profile
 * defines no default tracer, so tracing without a provider sends nothing.
 */
export function checkTelemetry(cluster: Cluster): Problem[] {
  const problems: Problem[] = [];
  for (const { file, obj } of cluster.all.filter((m) => m.obj.kind === "Telemetry")) {
    for (const kind of ["tracing", "accessLogging", "metrics"]) {
      (obj.spec?.[kind] ?? []).forEach((entry: Obj, i: number) => {
        const names: string[] = (entry.providers ?? []).map((p: Obj) => p.name);
        if (names.length === 0 && kind === "tracing")
          problems.push({
            file,
            message: `${describe(obj)}: spec.tracing[${i}].providers: none named, and the demo profile has no default tracer, so no trace is sent (name one: ${DEMO_PROVIDERS.join(", ")})`,
          });
        for (const name of names.filter((n) => !DEMO_PROVIDERS.includes(n)))
          problems.push({
            file,
            message: `${describe(obj)}: spec.${kind}[${i}].providers: ${name} is no provider of the demo install (${DEMO_PROVIDERS.join(", ")})`,
          });
      });
    }
  }
  return problems;
}

/** Probes go through Istio's agent only while probe rewriting is on; under STRICT mTLS a kubelet probe would be refused otherwise. */
export function checkProbeRewrite(cluster: Cluster): Problem[] {
  return cluster.workloads
    .filter((w) => String(w.obj.spec?.template?.metadata?.annotations?.["sidecar.istio.io/rewriteAppHTTPProbers"]) === "false")
    .map((w) => ({
      file: w.file,
      message: `${describe(w.obj)}: spec.template.metadata.annotations sidecar.istio.io/rewriteAppHTTPProbers "false" makes kubelet probe in plaintext, which STRICT mTLS refuses`,
    }));
}
