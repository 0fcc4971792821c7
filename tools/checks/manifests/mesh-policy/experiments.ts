// The experiment files (mesh/experiments/*.yaml): each parses, validates, lives in the meshmart namespace,
// replaces base resources by kind and name (one per host), names a fault knob the kit accepts, and leaves the
// routes passing once applied over the base.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseFaults } from "../../../../services/kit/src/faults.js";
import { describe, type Manifest, type Obj, type Problem } from "../types.js";
import { type Cluster, isGatewayVs, matchesLabels, NAMESPACE, shortHost } from "./cluster.js";
import type { CodeFile } from "./code.js";
import { checkRoutes } from "./routes.js";

export const FAULT_KNOB = "meshmart.dev/fault-knob";

/** Hosts and subsets of VirtualServices/DestinationRules outside the base (the base ones are checked with the manifests). */
function checkHostsAndSubsets(cluster: Cluster, objects: Manifest[], all: Manifest[]): Problem[] {
  const problems: Problem[] = [];
  const subsets = new Map<string, Set<string>>();
  for (const m of all.filter((x) => x.obj.kind === "DestinationRule"))
    subsets.set(shortHost(m.obj.spec?.host), new Set((m.obj.spec?.subsets ?? []).map((s: Obj) => s.name)));
  for (const { file, obj } of objects) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    if (obj.kind === "DestinationRule") {
      const host = shortHost(obj.spec?.host);
      if (!cluster.services.has(host)) say(`spec.host: ${obj.spec?.host} has no Service`);
      const selector = cluster.services.get(host)?.obj.spec?.selector ?? {};
      for (const s of obj.spec?.subsets ?? [])
        if (!cluster.workloads.some((w) => matchesLabels({ ...selector, ...(s.labels ?? {}) }, w.labels)))
          say(`spec.subsets ${s.name}: labels ${JSON.stringify(s.labels ?? {})} select no Deployment of ${host}`);
    }
    if (obj.kind === "VirtualService") {
      if (!isGatewayVs(obj)) for (const h of obj.spec?.hosts ?? []) if (!cluster.services.has(shortHost(h))) say(`spec.hosts: ${h} has no Service`);
      (obj.spec?.http ?? []).forEach((route: Obj, i: number) => {
        for (const d of route.route ?? []) {
          const host = shortHost(d.destination?.host);
          if (!cluster.services.has(host)) say(`spec.http[${i}].route destination ${d.destination?.host} has no Service`);
          else if (d.destination?.subset && !subsets.get(host)?.has(d.destination.subset))
            say(`spec.http[${i}].route destination subset ${d.destination.subset} of ${host} is defined by no DestinationRule`);
        }
      });
    }
  }
  return problems;
}

function parseFile(root: string, file: string, problems: Problem[]): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(readFileSync(join(root, file), "utf8"))) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ file, message: `YAML: ${e.message.split("\n")[0]}` });
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    if (typeof obj !== "object" || Array.isArray(obj)) problems.push({ file, message: "a document is not a mapping (apiVersion, kind, ...)" });
    else out.push(obj);
  }
  return out;
}

/** The experiment files: mesh/experiments/*.yaml but their kustomization and the runner's *.hypothesis.yaml. */
export function experimentFiles(root: string): string[] {
  const dir = join(root, "mesh", "experiments");
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f) && !/^kustomization\.ya?ml$|\.hypothesis\.ya?ml$/.test(f))
        .sort()
        .map((f) => `mesh/experiments/${f}`)
    : [];
}

const ISTIO_GROUP = /\.istio\.io\//;

/**
 * Each experiment file parses, validates, and replaces base resources by kind and name (never a second
 * VirtualService or DestinationRule for a host); the cluster with it applied still passes the route checks.
 */
export function checkExperiments(
  root: string,
  base: Manifest[],
  validate: (file: string, obj: Obj) => Problem[],
  cluster: Cluster,
  code: Map<string, CodeFile[]>,
  baseRoutes: Problem[],
): Problem[] {
  const problems: Problem[] = [];
  const key = (o: Obj) => `${o.kind}/${o.metadata?.name}`;
  const byKey = new Map(base.map((m) => [key(m.obj), m]));
  const known = new Set(baseRoutes.map((p) => `${p.file}\0${p.message}`));
  for (const file of experimentFiles(root)) {
    const mine: Manifest[] = [];
    for (const obj of parseFile(root, file, problems)) {
      const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
      problems.push(...validate(file, obj));
      const original = byKey.get(key(obj));
      // The runner runs `kubectl apply -f <file>` without -n: without this the objects would land in the
      // context's default namespace, next to nothing they are meant to replace.
      if (obj.metadata?.namespace !== NAMESPACE) say(`metadata.namespace must be ${NAMESPACE} (the file is applied with kubectl apply -f, without -n)`);
      if (ISTIO_GROUP.test(String(obj.apiVersion))) {
        if (!original)
          say(`replaces no base resource (no ${obj.kind} named ${obj.metadata?.name} in mesh/base): an experiment must reuse a base name, one per host`);
        else if (obj.kind === "VirtualService" && JSON.stringify(obj.spec?.hosts) !== JSON.stringify(original.obj.spec?.hosts))
          say(`spec.hosts ${JSON.stringify(obj.spec?.hosts)} differ from the base's ${JSON.stringify(original.obj.spec?.hosts)} (${original.file})`);
        else if (obj.kind === "DestinationRule" && obj.spec?.host !== original.obj.spec?.host)
          say(`spec.host ${obj.spec?.host} differs from the base's ${original.obj.spec?.host} (${original.file})`);
      }
      const knob = obj.metadata?.annotations?.[FAULT_KNOB];
      if (knob !== undefined) {
        try {
          const k = JSON.parse(knob);
          if (!cluster.services.has(k.service)) say(`metadata.annotations ${FAULT_KNOB}: service ${k.service} has no Service`);
          parseFaults(k.faults ?? {});
        } catch (err) {
          say(`metadata.annotations ${FAULT_KNOB}: ${(err as Error).message}`);
        }
      }
      mine.push({ file, obj });
    }
    const replaced = new Set(mine.map((m) => key(m.obj)));
    const applied = [...base.filter((m) => !replaced.has(key(m.obj))), ...mine];
    problems.push(...checkHostsAndSubsets(cluster, mine, applied));
    // Route problems the base does not already have come from this file (directly, or by disagreeing with the base).
    for (const p of checkRoutes(code, applied))
      if (!known.has(`${p.file}\0${p.message}`)) problems.push(p.file === file ? p : { file, message: `applied over the base: ${p.file}: ${p.message}` });
  }
  return problems;
}
