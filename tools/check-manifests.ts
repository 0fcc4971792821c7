// Offline checks of the cluster path (no Docker, Kubernetes or Istio here): every YAML document parses, every
// Kubernetes object passes kubernetes-models plus a strict unknown-key check, every Istio object passes the
// Istio 1.29.6 CRD schema (made strict the way the API server prunes unknown fields), skaffold.yaml passes its
// JSON Schema, and the files agree with each other (labels, hosts, subsets, images, probes, Secrets).
//
//   npm run check:manifests            prints every problem as "<file>: <problem>", exits 1 if any
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ISTIO_CRDS = "istio-1.29.6-crd-all.gen.yaml";
const SKAFFOLD_SCHEMA = "skaffold-v4beta14.json";

export interface Problem {
  file: string;
  message: string;
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; every access is checked.
type Obj = Record<string, any>;
interface Manifest {
  file: string;
  obj: Obj;
}

/** The upstream schemas the project carries (tools/schemas, see its README). */
export function sharedSchemasDir(root: string): string {
  return resolve(root, "tools", "schemas");
}

/** The manifest files the cluster path is made of (mesh/experiments/ replace base resources on purpose, so they are not here). */
export function manifestFiles(root: string): string[] {
  const yamlIn = (dir: string) =>
    existsSync(join(root, dir))
      ? readdirSync(join(root, dir))
          .filter((f) => /\.ya?ml$/.test(f))
          .map((f) => `${dir}/${f}`)
      : [];
  const services = existsSync(join(root, "services")) ? readdirSync(join(root, "services")).sort() : [];
  return [...yamlIn("deploy"), ...services.flatMap((s) => yamlIn(`services/${s}/k8s`)), ...yamlIn("mesh")];
}

/** Every problem found under `root`; [] when all is well. Throws if the schemas are missing. */
export function checkManifests(root: string, schemasDir = sharedSchemasDir(root)): Problem[] {
  const schemas = loadSchemas(schemasDir);
  const problems: Problem[] = [];
  const manifests: Manifest[] = [];
  for (const file of manifestFiles(root)) {
    const docs = parseYaml(root, file, problems);
    for (const obj of docs) {
      if (obj === null || obj === undefined) continue;
      if (typeof obj !== "object" || Array.isArray(obj)) {
        problems.push({ file, message: "a document is not a mapping (apiVersion, kind, ...)" });
        continue;
      }
      manifests.push({ file, obj });
      problems.push(...validateObject(file, obj, schemas));
    }
  }
  const skaffold = existsSync(join(root, "skaffold.yaml")) ? parseYaml(root, "skaffold.yaml", problems)[0] : undefined;
  if (!skaffold) problems.push({ file: "skaffold.yaml", message: "missing or empty" });
  else problems.push(...checkSkaffold(root, skaffold, schemas.skaffold, manifests));
  problems.push(...crossCheck(manifests));
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// Schemas

interface Schemas {
  istio: Map<string, ValidateFunction>; // "networking.istio.io/v1/VirtualService" -> validates `spec`
  skaffold: ValidateFunction;
}

function loadSchemas(dir: string): Schemas {
  const missing = [ISTIO_CRDS, SKAFFOLD_SCHEMA].filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new Error(
      `check-manifests: offline schemas not found: ${missing.map((f) => join(dir, f)).join(", ")}. ` +
        "They are carried in tools/schemas (see its README); restore them from git, or pass the schemas directory.",
    );
  }
  // strict: false because the CRD schemas use x-kubernetes-* keywords; formats are not checked (int32, ...).
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const istio = new Map<string, ValidateFunction>();
  for (const doc of parseAllDocuments(readFileSync(join(dir, ISTIO_CRDS), "utf8"))) {
    const crd = doc.toJS() as Obj | null;
    if (crd?.kind !== "CustomResourceDefinition") continue;
    for (const version of crd.spec.versions ?? []) {
      const spec = version.schema?.openAPIV3Schema?.properties?.spec;
      if (spec) istio.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, ajv.compile(closeObjects(structuredClone(spec))));
    }
  }
  const skaffold = ajv.compile(JSON.parse(readFileSync(join(dir, SKAFFOLD_SCHEMA), "utf8")));
  return { istio, skaffold };
}

/**
 * The CRD schemas leave additionalProperties open because the API server prunes unknown fields (and
 * `kubectl --validate=strict` rejects them); close every object that lists its properties, unless it says
 * x-kubernetes-preserve-unknown-fields, so a misspelled field fails here too.
 */
function closeObjects(schema: Obj): Obj {
  if (schema.type === "object" && schema.properties && schema.additionalProperties === undefined && !schema["x-kubernetes-preserve-unknown-fields"]) {
    schema.additionalProperties = false;
  }
  for (const sub of Object.values(schema.properties ?? {})) closeObjects(sub as Obj);
  if (schema.items && typeof schema.items === "object") closeObjects(schema.items);
  if (schema.additionalProperties && typeof schema.additionalProperties === "object") closeObjects(schema.additionalProperties);
  for (const key of ["anyOf", "oneOf", "allOf"]) for (const sub of schema[key] ?? []) closeObjects(sub);
  return schema;
}

function ajvMessages(errors: ErrorObject[] | null | undefined, prefix: string): string[] {
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    // anyOf/oneOf summaries repeat what their branches said; the branch errors are the useful ones.
    if (e.keyword === "anyOf" || e.keyword === "oneOf" || e.keyword === "not") continue;
    const at = `${prefix}${e.instancePath.replaceAll("/", ".")}`.replace(/^\./, "") || "(top level)";
    let detail = e.message;
    if (e.keyword === "additionalProperties") detail = `unknown field "${e.params.additionalProperty}"`;
    if (e.keyword === "enum") detail = `must be one of ${e.params.allowedValues.join(", ")}`;
    seen.add(`${at}: ${detail}`);
  }
  return [...seen];
}

// ---------------------------------------------------------------------------------------------------------
// One object at a time

function parseYaml(root: string, file: string, problems: Problem[]): unknown[] {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(readFileSync(join(root, file), "utf8"))) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ file, message: `YAML: ${e.message.split("\n")[0]}` });
      continue;
    }
    out.push(doc.toJS());
  }
  return out;
}

const K8S_MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "v1/Secret": Secret,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
};

function describe(obj: Obj): string {
  return `${obj.kind ?? "?"} ${obj.metadata?.name ?? "(no name)"}`;
}

function validateObject(file: string, obj: Obj, schemas: Schemas): Problem[] {
  const problems: Problem[] = [];
  const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
  const type = `${obj.apiVersion}/${obj.kind}`;
  if (typeof obj.metadata?.name !== "string" || obj.metadata.name === "") say("metadata.name is missing");
  const Model = K8S_MODELS[type];
  const istio = schemas.istio.get(type);
  if (Model) {
    try {
      new Model(obj as never).validate();
    } catch (err) {
      say(`invalid ${type}: ${(err as Error).message.split("\n").join("; ")}`);
    }
    for (const m of strictKeys(obj)) say(m);
  } else if (istio) {
    for (const m of unknownKeys(obj, ["apiVersion", "kind", "metadata", "spec"], "")) say(m);
    for (const m of unknownKeys(obj.metadata, METADATA, "metadata")) say(m);
    if (!istio(obj.spec ?? {})) for (const m of ajvMessages(istio.errors, "spec")) say(m);
  } else {
    say(`unknown kind ${type} (neither a Kubernetes kind this checker knows nor an Istio 1.29 CRD)`);
  }
  return problems;
}

// kubernetes-models accepts unknown fields, so a misspelled key would pass it silently. These lists cover the
// parts meshmart writes; a new field that Kubernetes does support only needs adding here.
const METADATA = ["name", "namespace", "labels", "annotations"];
const TOP: Record<string, string[]> = {
  ServiceAccount: ["apiVersion", "kind", "metadata", "automountServiceAccountToken", "imagePullSecrets", "secrets"],
  Secret: ["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"],
  Service: ["apiVersion", "kind", "metadata", "spec"],
  Deployment: ["apiVersion", "kind", "metadata", "spec"],
  StatefulSet: ["apiVersion", "kind", "metadata", "spec"],
};
const SERVICE_SPEC = [
  "selector",
  "ports",
  "type",
  "clusterIP",
  "clusterIPs",
  "sessionAffinity",
  "publishNotReadyAddresses",
  "internalTrafficPolicy",
  "ipFamilyPolicy",
];
const SERVICE_PORT = ["name", "port", "targetPort", "protocol", "appProtocol", "nodePort"];
const WORKLOAD_SPEC = ["replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "paused"];
const STATEFULSET_SPEC = [
  ...WORKLOAD_SPEC.filter((k) => k !== "strategy" && k !== "progressDeadlineSeconds" && k !== "paused"),
  "serviceName",
  "volumeClaimTemplates",
  "podManagementPolicy",
  "updateStrategy",
  "persistentVolumeClaimRetentionPolicy",
  "ordinals",
];
const POD_SPEC = [
  "serviceAccountName",
  "automountServiceAccountToken",
  "terminationGracePeriodSeconds",
  "securityContext",
  "containers",
  "initContainers",
  "volumes",
  "affinity",
  "nodeSelector",
  "tolerations",
  "topologySpreadConstraints",
  "priorityClassName",
  "enableServiceLinks",
  "imagePullSecrets",
];
const CONTAINER = [
  "name",
  "image",
  "imagePullPolicy",
  "command",
  "args",
  "workingDir",
  "ports",
  "env",
  "envFrom",
  "resources",
  "volumeMounts",
  "livenessProbe",
  "readinessProbe",
  "startupProbe",
  "lifecycle",
  "securityContext",
  "terminationMessagePolicy",
];
const PROBE = [
  "grpc",
  "httpGet",
  "tcpSocket",
  "exec",
  "initialDelaySeconds",
  "periodSeconds",
  "timeoutSeconds",
  "failureThreshold",
  "successThreshold",
  "terminationGracePeriodSeconds",
];
const POD_SECURITY = ["runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy", "seccompProfile", "supplementalGroups", "sysctls"];
const CONTAINER_SECURITY = [
  "allowPrivilegeEscalation",
  "readOnlyRootFilesystem",
  "privileged",
  "capabilities",
  "runAsNonRoot",
  "runAsUser",
  "runAsGroup",
  "seccompProfile",
];

function unknownKeys(value: unknown, allowed: string[], at: string): string[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.keys(value)
    .filter((k) => !allowed.includes(k))
    .map((k) => `unknown field "${k}"${at ? ` at ${at}` : ""}`);
}

function strictKeys(obj: Obj): string[] {
  const out = [...unknownKeys(obj, TOP[obj.kind] ?? [], ""), ...unknownKeys(obj.metadata, METADATA, "metadata")];
  if (obj.kind === "Service") {
    out.push(...unknownKeys(obj.spec, SERVICE_SPEC, "spec"));
    (obj.spec?.ports ?? []).forEach((p: unknown, i: number) => {
      out.push(...unknownKeys(p, SERVICE_PORT, `spec.ports[${i}]`));
    });
  }
  if (obj.kind === "Deployment" || obj.kind === "StatefulSet") {
    out.push(...unknownKeys(obj.spec, obj.kind === "Deployment" ? WORKLOAD_SPEC : STATEFULSET_SPEC, "spec"));
    out.push(...unknownKeys(obj.spec?.template, ["metadata", "spec"], "spec.template"));
    out.push(...unknownKeys(obj.spec?.template?.metadata, METADATA, "spec.template.metadata"));
    const pod = obj.spec?.template?.spec;
    out.push(...unknownKeys(pod, POD_SPEC, "spec.template.spec"));
    out.push(...unknownKeys(pod?.securityContext, POD_SECURITY, "spec.template.spec.securityContext"));
    (pod?.containers ?? []).forEach((c: Obj, i: number) => {
      const at = `spec.template.spec.containers[${i}]`;
      out.push(...unknownKeys(c, CONTAINER, at), ...unknownKeys(c?.securityContext, CONTAINER_SECURITY, `${at}.securityContext`));
      for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) out.push(...unknownKeys(c?.[probe], PROBE, `${at}.${probe}`));
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// skaffold.yaml

/** Minimal glob for skaffold's rawYaml patterns: `*` matches within one path segment. */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", "[^/]*")}$`);
}

function checkSkaffold(root: string, config: Obj, validate: ValidateFunction, manifests: Manifest[]): Problem[] {
  const file = "skaffold.yaml";
  const problems: Problem[] = [];
  const say = (message: string) => problems.push({ file, message });
  if (!validate(config)) for (const m of ajvMessages(validate.errors, "")) say(`schema v4beta14: ${m}`);

  // Artifacts: each dockerfile exists; each image is used by a Deployment and each Deployment image is built.
  const artifacts: Obj[] = Array.isArray(config.build?.artifacts) ? config.build.artifacts : [];
  const built = new Set<string>();
  for (const a of artifacts) {
    built.add(a.image);
    const context = a.context ?? ".";
    const dockerfile = join(root, context, a.docker?.dockerfile ?? "Dockerfile");
    if (!existsSync(dockerfile)) say(`artifact ${a.image}: dockerfile ${relative(root, dockerfile)} does not exist`);
  }
  const used = new Set<string>();
  for (const { file: mfile, obj } of manifests.filter((m) => m.obj.kind === "Deployment")) {
    for (const c of obj.spec?.template?.spec?.containers ?? []) {
      used.add(c.image);
      if (!built.has(c.image))
        problems.push({ file: mfile, message: `${describe(obj)}: image "${c.image}" is not a skaffold artifact (skaffold.yaml build.artifacts)` });
    }
  }
  for (const image of built) if (!used.has(image)) say(`artifact ${image} is built but no Deployment uses it`);

  // rawYaml: every pattern (base and profiles) matches a file, and every manifest file is deployed by some pattern.
  const patterns: string[] = [...(config.manifests?.rawYaml ?? [])];
  for (const profile of config.profiles ?? []) {
    patterns.push(...(profile.manifests?.rawYaml ?? []));
    for (const patch of profile.patches ?? [])
      if (String(patch.path).startsWith("/manifests/rawYaml") && typeof patch.value === "string") patterns.push(patch.value);
  }
  const files = manifestFiles(root);
  for (const p of patterns) if (!files.some((f) => globToRegExp(p).test(f))) say(`manifests.rawYaml pattern "${p}" matches no manifest file`);
  for (const f of files) if (!patterns.some((p) => globToRegExp(p).test(f))) say(`${f} is deployed by no manifests.rawYaml pattern`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// Files agreeing with each other

const shortHost = (host: string) => String(host).split(".")[0];

function crossCheck(manifests: Manifest[]): Problem[] {
  const problems: Problem[] = [];
  const of = (kind: string) => manifests.filter((m) => m.obj.kind === kind);
  const workloads = [...of("Deployment"), ...of("StatefulSet")];
  const services = new Map(of("Service").map((m) => [m.obj.metadata?.name, m]));
  const accounts = new Set(of("ServiceAccount").map((m) => m.obj.metadata?.name));
  const secrets = new Set(of("Secret").map((m) => m.obj.metadata?.name));
  const accountOwner = new Map<string, string>();

  for (const { file, obj } of workloads) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    const labels: Obj = obj.spec?.template?.metadata?.labels ?? {};
    for (const label of ["app", "version"]) {
      if (!labels[label]) say(`pod template has no "${label}" label (Istio routing and telemetry need app and version)`);
      if (!obj.metadata?.labels?.[label]) say(`metadata has no "${label}" label`);
    }
    for (const [k, v] of Object.entries(obj.spec?.selector?.matchLabels ?? {}))
      if (labels[k] !== v) say(`selector ${k}=${v} does not match the pod template labels`);
    const pod = obj.spec?.template?.spec ?? {};
    const sa = pod.serviceAccountName;
    if (!sa) say("no serviceAccountName: each workload runs as a ServiceAccount of its own (its mesh identity)");
    else {
      if (!accounts.has(sa)) say(`ServiceAccount ${sa} is not defined in the manifests`);
      const owner = accountOwner.get(sa);
      if (owner && owner !== labels.app) say(`ServiceAccount ${sa} is shared with app ${owner}`);
      accountOwner.set(sa, labels.app);
    }
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    for (const c of pod.containers ?? []) {
      const env = new Map<string, Obj>((c.env ?? []).map((e: Obj) => [e.name, e]));
      const ms = (name: string, fallback: number) => Number(env.get(name)?.value ?? fallback);
      const needed = (ms("GRACE_MS", 10_000) + ms("DRAIN_DELAY_MS", 0)) / 1000;
      if (env.has("PORT") && grace <= needed) say(`terminationGracePeriodSeconds ${grace} must exceed GRACE_MS + DRAIN_DELAY_MS (${needed} s)`);
      for (const e of env.values()) {
        const ref = e.valueFrom?.secretKeyRef?.name;
        if (ref && !secrets.has(ref)) say(`env ${e.name} reads Secret ${ref}, which no manifest defines`);
      }
      if ((c.ports ?? []).some((p: Obj) => p.name === "grpc")) {
        for (const probe of ["readinessProbe", "livenessProbe"]) if (!c[probe]?.grpc) say(`container ${c.name}: ${probe} must be a native grpc probe`);
      }
    }
  }

  for (const { file, obj } of of("Service")) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    for (const p of obj.spec?.ports ?? []) {
      if (String(p.name).startsWith("grpc") && p.appProtocol !== "grpc") say(`port ${p.name} must declare appProtocol: grpc`);
    }
    const selector: Obj = obj.spec?.selector ?? {};
    const selects = workloads.some((w) => Object.entries(selector).every(([k, v]) => w.obj.spec?.template?.metadata?.labels?.[k] === v));
    if (!selects) say(`selector ${JSON.stringify(selector)} matches no workload`);
  }

  // One VirtualService and one DestinationRule per host (two for one host conflict: istioctl IST0109).
  const subsetsByHost = new Map<string, Set<string>>();
  for (const kind of ["VirtualService", "DestinationRule"]) {
    const owner = new Map<string, string>();
    for (const { file, obj } of of(kind)) {
      const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
      const hosts: string[] = kind === "VirtualService" ? (obj.spec?.hosts ?? []) : [obj.spec?.host];
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

// ---------------------------------------------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    const problems = checkManifests(ROOT);
    for (const p of problems) console.error(`${p.file}: ${p.message}`);
    const count = manifestFiles(ROOT).length;
    if (problems.length > 0) {
      console.error(`\ncheck-manifests: ${problems.length} problem(s)`);
      process.exit(1);
    }
    console.log(`check-manifests: skaffold.yaml and ${count} manifest files are valid (offline: schemas and cross-checks, no cluster)`);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}
