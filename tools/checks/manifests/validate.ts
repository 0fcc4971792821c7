// One object at a time: Kubernetes kinds against kubernetes-models plus a strict unknown-field check, Istio
// kinds against their CRD schema (made strict in schemas.ts). Anything else is an unknown kind.
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { ajvMessages, type Schemas } from "./schemas.js";
import { type Manifest, type Obj, type Problem, reporter } from "./types.js";

const K8S_MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "v1/Secret": Secret,
  "v1/ConfigMap": ConfigMap,
  "v1/Pod": Pod,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "batch/v1/Job": Job, // mesh/experiments/mtls-plaintext.yaml
};

export function validateObject({ file, obj }: Manifest, schemas: Schemas): Problem[] {
  const problems: Problem[] = [];
  const say = reporter(problems, file, obj);
  const type = `${obj.apiVersion}/${obj.kind}`;
  if (typeof obj.metadata?.name !== "string" || obj.metadata.name === "") say("metadata.name is missing");
  const Model = K8S_MODELS[type];
  const istio = schemas.istio.get(type);
  if (Model) {
    try {
      new Model(forModel(obj) as never).validate();
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

/**
 * kustomize folds long base64 values over several lines; the API server decodes them (Go's base64 skips line
 * breaks) but kubernetes-models' "byte" format does not, so line breaks are removed before validating.
 */
function forModel(obj: Obj): Obj {
  if (obj.kind !== "Secret" || !obj.data || typeof obj.data !== "object") return obj;
  const data = Object.fromEntries(Object.entries(obj.data).map(([k, v]) => [k, typeof v === "string" ? v.replace(/\s+/g, "") : v]));
  return { ...obj, data };
}

// kubernetes-models accepts unknown fields, so a misspelled key would pass it silently. These lists cover the
// parts meshmart writes; a new field that Kubernetes does support only needs adding here.
const METADATA = ["name", "namespace", "labels", "annotations"];
const TOP: Record<string, string[]> = {
  Namespace: ["apiVersion", "kind", "metadata", "spec"],
  ServiceAccount: ["apiVersion", "kind", "metadata", "automountServiceAccountToken", "imagePullSecrets", "secrets"],
  Secret: ["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"],
  ConfigMap: ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"],
  Service: ["apiVersion", "kind", "metadata", "spec"],
  Pod: ["apiVersion", "kind", "metadata", "spec"],
  Deployment: ["apiVersion", "kind", "metadata", "spec"],
  StatefulSet: ["apiVersion", "kind", "metadata", "spec"],
  HorizontalPodAutoscaler: ["apiVersion", "kind", "metadata", "spec"],
  PodDisruptionBudget: ["apiVersion", "kind", "metadata", "spec"],
  Job: ["apiVersion", "kind", "metadata", "spec"],
};
const SPEC: Record<string, string[]> = {
  Service: ["selector", "ports", "type", "clusterIP", "clusterIPs", "sessionAffinity", "publishNotReadyAddresses", "internalTrafficPolicy", "ipFamilyPolicy"],
  Deployment: ["replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "paused"],
  StatefulSet: [
    "replicas",
    "selector",
    "template",
    "minReadySeconds",
    "revisionHistoryLimit",
    "serviceName",
    "volumeClaimTemplates",
    "podManagementPolicy",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "ordinals",
  ],
  HorizontalPodAutoscaler: ["scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"],
  PodDisruptionBudget: ["selector", "minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy"],
  Job: ["template", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "completions", "parallelism", "suspend"],
};
const SERVICE_PORT = ["name", "port", "targetPort", "protocol", "appProtocol", "nodePort"];
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
  "restartPolicy",
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
  "stdin",
  "tty",
];
const CONTAINER_PORT = ["name", "containerPort", "protocol", "hostPort", "hostIP"];
const ENV = ["name", "value", "valueFrom"];
const VOLUME_MOUNT = ["name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly"];
const VOLUME = ["name", "emptyDir", "secret", "configMap", "persistentVolumeClaim", "projected", "downwardAPI"];
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
const RESOURCES = ["requests", "limits", "claims"];
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

const each = (list: unknown, allowed: string[], at: string): string[] =>
  Array.isArray(list) ? list.flatMap((item, i) => unknownKeys(item, allowed, `${at}[${i}]`)) : [];

function podKeys(pod: Obj | undefined, at: string): string[] {
  const out = [...unknownKeys(pod, POD_SPEC, at), ...unknownKeys(pod?.securityContext, POD_SECURITY, `${at}.securityContext`)];
  out.push(...each(pod?.volumes, VOLUME, `${at}.volumes`));
  for (const group of ["initContainers", "containers"]) {
    (pod?.[group] ?? []).forEach((c: Obj, i: number) => {
      const cat = `${at}.${group}[${i}]`;
      out.push(...unknownKeys(c, CONTAINER, cat), ...unknownKeys(c?.securityContext, CONTAINER_SECURITY, `${cat}.securityContext`));
      out.push(...unknownKeys(c?.resources, RESOURCES, `${cat}.resources`));
      out.push(...each(c?.ports, CONTAINER_PORT, `${cat}.ports`), ...each(c?.env, ENV, `${cat}.env`));
      out.push(...each(c?.volumeMounts, VOLUME_MOUNT, `${cat}.volumeMounts`));
      for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) out.push(...unknownKeys(c?.[probe], PROBE, `${cat}.${probe}`));
    });
  }
  return out;
}

function strictKeys(obj: Obj): string[] {
  const out = [...unknownKeys(obj, TOP[obj.kind] ?? [], ""), ...unknownKeys(obj.metadata, METADATA, "metadata")];
  if (SPEC[obj.kind]) out.push(...unknownKeys(obj.spec, SPEC[obj.kind], "spec"));
  if (obj.kind === "Service") out.push(...each(obj.spec?.ports, SERVICE_PORT, "spec.ports"));
  if (obj.kind === "Pod") out.push(...podKeys(obj.spec, "spec"));
  if (obj.kind === "Deployment" || obj.kind === "StatefulSet" || obj.kind === "Job") {
    out.push(...unknownKeys(obj.spec?.template, ["metadata", "spec"], "spec.template"));
    out.push(...unknownKeys(obj.spec?.template?.metadata, METADATA, "spec.template.metadata"));
    out.push(...podKeys(obj.spec?.template?.spec, "spec.template.spec"));
  }
  return out;
}
