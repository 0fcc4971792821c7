// What the Kubernetes schemas cannot say: every workload is hardened and probed the way the issue asks, and
// in each deployable stack every name one object refers to (ServiceAccount, Secret and key, ConfigMap,
// HPA target, PDB and Service selectors, namespace) exists.
import { type Manifest, type Obj, type Problem, reporter, type Stack } from "./types.js";

const WORKLOADS = new Set(["Deployment", "StatefulSet"]);
/** Namespaces the cluster already has: Istio's (istioctl install), where policy for the ingress gateway lives. */
const EXTERNAL_NAMESPACES = new Set(["istio-system"]);
const podOf = (obj: Obj): Obj => obj.spec?.template?.spec ?? {};
const podLabels = (obj: Obj): Obj => obj.spec?.template?.metadata?.labels ?? {};
const selects = (selector: Obj, labels: Obj) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Skaffold's file sync (deploy/overlays/dev) runs the server under `tsx watch`; only then may the root filesystem be writable. */
const syncMode = (c: Obj) => Array.isArray(c.command) && c.command.some((a: string) => /tsx/.test(a)) && c.command.includes("watch");

/** Per object: labels, probes, resources, security context, grace period, gRPC Service ports. */
export function checkObject({ file, obj }: Manifest): Problem[] {
  const problems: Problem[] = [];
  const say = reporter(problems, file, obj);
  if (obj.kind === "Service") {
    for (const p of obj.spec?.ports ?? []) {
      if (String(p.name).startsWith("grpc") && p.appProtocol !== "grpc") say(`spec.ports ${p.name}: a gRPC port must declare appProtocol: grpc`);
      if (p.appProtocol === "grpc" && !String(p.name).startsWith("grpc")) say(`spec.ports ${p.name}: a gRPC port is named grpc (Istio reads the name too)`);
    }
  }
  if (!WORKLOADS.has(obj.kind)) return problems;

  const labels = podLabels(obj);
  for (const label of ["app", "version"]) {
    if (!labels[label]) say(`spec.template.metadata.labels has no "${label}" (Istio routing and telemetry need app and version)`);
    if (!obj.metadata?.labels?.[label]) say(`metadata.labels has no "${label}"`);
  }
  for (const [k, v] of Object.entries(obj.spec?.selector?.matchLabels ?? {}))
    if (labels[k] !== v) say(`spec.selector.matchLabels ${k}=${v} does not match the pod template labels`);

  const pod = podOf(obj);
  if (!pod.serviceAccountName) say("spec.template.spec.serviceAccountName is missing: each workload runs as a ServiceAccount of its own (its mesh identity)");
  if (pod.securityContext?.runAsNonRoot !== true) say("spec.template.spec.securityContext.runAsNonRoot must be true");
  if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") say("spec.template.spec.securityContext.seccompProfile.type must be RuntimeDefault");

  const grace = pod.terminationGracePeriodSeconds ?? 30;
  (pod.containers ?? []).forEach((c: Obj, i: number) => {
    const at = `spec.template.spec.containers[${i}] (${c.name})`;
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) say(`${at}.securityContext.allowPrivilegeEscalation must be false`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) say(`${at}.securityContext.capabilities.drop must include ALL`);
    if (sc.readOnlyRootFilesystem !== true && !syncMode(c))
      say(`${at}.securityContext.readOnlyRootFilesystem must be true (only skaffold's file sync under tsx watch may write)`);
    for (const kind of ["requests", "limits"]) for (const r of ["cpu", "memory"]) if (!c.resources?.[kind]?.[r]) say(`${at}.resources.${kind}.${r} is missing`);

    if ((c.ports ?? []).some((p: Obj) => p.name === "grpc")) {
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) if (!c[probe]?.grpc) say(`${at}.${probe} must be a native grpc probe`);
    }
    const env = new Map<string, Obj>((c.env ?? []).map((e: Obj) => [e.name, e]));
    const ms = (name: string, fallback: number) => Number(env.get(name)?.value ?? fallback);
    const needed = (ms("GRACE_MS", 10_000) + ms("DRAIN_DELAY_MS", 0)) / 1000;
    if (env.has("PORT") && grace <= needed)
      say(`spec.template.spec.terminationGracePeriodSeconds ${grace} must exceed GRACE_MS + DRAIN_DELAY_MS (${needed} s), the kit's drain`);
  });
  return problems;
}

/** The Deployments of the default overlay run at least 2 replicas (one can drain while the other serves). */
export function checkReplicas(objects: Manifest[], minimum = 2): Problem[] {
  const problems: Problem[] = [];
  for (const { file, obj } of objects)
    if (obj.kind === "Deployment" && (obj.spec?.replicas ?? 1) < minimum)
      reporter(problems, file, obj)(`spec.replicas is ${obj.spec?.replicas ?? 1}; the default overlay runs at least ${minimum}`);
  return problems;
}

/** Every reference inside one deployable stack resolves to an object of that stack. */
export function checkReferences(stack: Stack): Problem[] {
  const problems: Problem[] = [];
  const objects = stack.objects;
  const of = (kind: string) => objects.filter((m) => m.obj.kind === kind);
  const named = (kind: string) => new Map(of(kind).map((m) => [m.obj.metadata?.name, m.obj]));
  const secrets = named("Secret");
  const configMaps = named("ConfigMap");
  const accounts = named("ServiceAccount");
  const namespaces = named("Namespace");
  const workloads = objects.filter((m) => WORKLOADS.has(m.obj.kind));
  const in_ = stack.profile ? ` (skaffold profile ${stack.profile})` : " (skaffold default)";
  const keysOf = (o: Obj | undefined) => new Set([...Object.keys(o?.data ?? {}), ...Object.keys(o?.stringData ?? {}), ...Object.keys(o?.binaryData ?? {})]);

  for (const { file, obj } of objects) {
    const say = reporter(problems, file, obj);
    if (obj.kind !== "Namespace") {
      const ns = obj.metadata?.namespace;
      if (!ns) say(`metadata.namespace is not set${in_}: kustomize's namespace field sets it`);
      else if (!namespaces.has(ns) && !EXTERNAL_NAMESPACES.has(ns)) say(`metadata.namespace ${ns} is not created by the stack${in_}`);
    }
    if (!WORKLOADS.has(obj.kind)) continue;
    const pod = podOf(obj);
    const sa = pod.serviceAccountName;
    if (sa && !accounts.has(sa)) say(`spec.template.spec.serviceAccountName: ServiceAccount ${sa} does not exist${in_}`);
    const ref = (what: string, kind: "Secret" | "ConfigMap", name: string | undefined, key?: string) => {
      const target = (kind === "Secret" ? secrets : configMaps).get(name);
      if (!target) say(`${what} reads ${kind} ${name}, which does not exist${in_}`);
      else if (key !== undefined && !keysOf(target).has(key)) say(`${what} reads key "${key}" of ${kind} ${name}, which has no such key${in_}`);
    };
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        const m = e.valueFrom?.configMapKeyRef;
        if (s && !s.optional) ref(`container ${c.name} env ${e.name}`, "Secret", s.name, s.key);
        if (m && !m.optional) ref(`container ${c.name} env ${e.name}`, "ConfigMap", m.name, m.key);
      }
      for (const from of c.envFrom ?? []) {
        if (from.secretRef && !from.secretRef.optional) ref(`container ${c.name} envFrom`, "Secret", from.secretRef.name);
        if (from.configMapRef && !from.configMapRef.optional) ref(`container ${c.name} envFrom`, "ConfigMap", from.configMapRef.name);
      }
    }
    for (const v of pod.volumes ?? []) {
      if (v.secret && !v.secret.optional) ref(`volume ${v.name}`, "Secret", v.secret.secretName);
      if (v.configMap && !v.configMap.optional) ref(`volume ${v.name}`, "ConfigMap", v.configMap.name);
    }
  }

  // One ServiceAccount per app (catalog v1 and v2 are one app and share theirs, as bookinfo's reviews do).
  const owner = new Map<string, string>();
  for (const { file, obj } of workloads) {
    const sa = podOf(obj).serviceAccountName;
    const app = podLabels(obj).app;
    if (!sa) continue;
    const first = owner.get(sa);
    if (first && first !== app) reporter(problems, file, obj)(`ServiceAccount ${sa} is shared with app ${first}; each workload runs as its own`);
    else owner.set(sa, app);
  }

  for (const { file, obj } of of("Service")) {
    const selector: Obj = obj.spec?.selector ?? {};
    if (!workloads.some((w) => selects(selector, podLabels(w.obj))))
      reporter(problems, file, obj)(`spec.selector ${JSON.stringify(selector)} matches no workload${in_}`);
  }
  for (const { file, obj } of of("HorizontalPodAutoscaler")) {
    const say = reporter(problems, file, obj);
    const target = obj.spec?.scaleTargetRef ?? {};
    const workload = workloads.find((w) => w.obj.kind === target.kind && w.obj.metadata?.name === target.name);
    if (!workload) say(`spec.scaleTargetRef: ${target.kind} ${target.name} does not exist${in_}`);
    else if ((obj.spec?.minReplicas ?? 1) > (workload.obj.spec?.replicas ?? 1))
      say(`spec.minReplicas ${obj.spec?.minReplicas} is above ${target.kind} ${target.name}'s replicas ${workload.obj.spec?.replicas ?? 1}`);
  }
  for (const { file, obj } of of("PodDisruptionBudget")) {
    const selector: Obj = obj.spec?.selector?.matchLabels ?? {};
    if (!workloads.some((w) => selects(selector, podLabels(w.obj))))
      reporter(problems, file, obj)(`spec.selector.matchLabels ${JSON.stringify(selector)} selects no pods${in_}`);
  }
  return problems;
}
