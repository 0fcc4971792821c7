// skaffold.yaml: valid against the v4beta14 schema, and in agreement with the repository: what each profile
// deploys (its kustomize paths after the profile's patches), the images it builds, the files it syncs, the
// ports it forwards and the hook it runs.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ValidateFunction } from "ajv";
import { ajvMessages } from "./schemas.js";
import { describe, type Manifest, type Obj, type Problem, type Render, type Stack } from "./types.js";

const FILE = "skaffold.yaml";

interface Stage {
  name?: string;
  /** The stage's ENTRYPOINT (exec form), inherited from the stage it is built FROM. */
  entrypoint: string[];
}

/** A Dockerfile's stages in order, with their names and ENTRYPOINTs. */
export function dockerStages(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const line of text.replace(/\\\n\s*/g, " ").split("\n")) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ name: from[2], entrypoint: stages.find((st) => st.name === from[1])?.entrypoint ?? [] });
    const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/i.exec(line);
    if (entry && stages.length) stages[stages.length - 1].entrypoint = JSON.parse(entry[1]);
  }
  return stages;
}

/** RFC 6901 pointer segments. */
const segments = (pointer: string) =>
  pointer
    .split("/")
    .slice(1)
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));

/** Applies the JSON Patch operations skaffold profiles use (add, replace, remove) to a copy of `config`. */
export function applyPatches(config: Obj, patches: Obj[]): Obj {
  const out = structuredClone(config);
  for (const { op, path, value } of patches) {
    const keys = segments(String(path));
    const last = keys.pop() as string;
    let parent: Obj = out;
    for (const k of keys) {
      if (parent[k] === undefined) throw new Error(`patch ${op} ${path}: ${k} does not exist`);
      parent = parent[k];
    }
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length || (op !== "add" && index >= parent.length))
        throw new Error(`patch ${op} ${path}: no index ${last}`);
      if (op === "add") parent.splice(index, 0, value);
      else if (op === "replace") parent[index] = value;
      else if (op === "remove") parent.splice(index, 1);
      else throw new Error(`patch op ${op} is not supported here`);
    } else if (op === "add" || op === "replace") {
      if (op === "replace" && !(last in parent)) throw new Error(`patch replace ${path}: ${last} does not exist`);
      parent[last] = value;
    } else if (op === "remove") {
      if (!(last in parent)) throw new Error(`patch remove ${path}: ${last} does not exist`);
      delete parent[last];
    } else throw new Error(`patch op ${op} is not supported here`);
  }
  return out;
}

/** The effective config of each profile ("" = no profile): its patches applied, its own sections over the base. */
export function profiles(config: Obj, problems: Problem[]): Map<string, Obj> {
  const out = new Map<string, Obj>([["", config]]);
  for (const p of config.profiles ?? []) {
    try {
      const patched = applyPatches(config, p.patches ?? []);
      for (const key of ["build", "manifests", "deploy", "portForward"]) if (p[key] !== undefined) patched[key] = p[key];
      out.set(p.name, patched);
    } catch (err) {
      problems.push({ file: FILE, message: `profile ${p.name}: ${(err as Error).message}` });
    }
  }
  return out;
}

/** What each profile deploys: the union of the renders of its kustomize paths. */
export function stacksOf(effective: Map<string, Obj>, renders: Render[]): Stack[] {
  return [...effective].map(([profile, config]) => {
    const paths: string[] = (config.manifests?.kustomize?.paths ?? []).map((p: string) => p.replace(/\/$/, "").replace(/^\.\//, ""));
    return { profile, paths, objects: paths.flatMap((p) => renders.find((r) => r.dir === p)?.objects ?? []) };
  });
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === "*" && glob[i + 1] === "*") {
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (ch === "*") re += "[^/]*";
    else re += ch.replace(/[.+^${}()|[\]\\?]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function repoFiles(root: string, dir = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    if (["node_modules", ".git", ".cache", "scratch"].includes(name)) continue;
    const rel = dir ? `${dir}/${name}` : name;
    if (statSync(join(root, rel)).isDirectory()) out.push(...repoFiles(root, rel));
    else out.push(rel);
  }
  return out;
}

export function checkSkaffold(
  root: string,
  config: Obj,
  validate: ValidateFunction,
  renders: Render[],
  failedDirs: Set<string>,
): { problems: Problem[]; stacks: Stack[] } {
  const problems: Problem[] = [];
  const say = (message: string) => problems.push({ file: FILE, message });
  if (!validate(config)) for (const m of ajvMessages(validate.errors, "")) say(`schema v4beta14: ${m}`);
  const effective = profiles(config, problems);
  const stacks = stacksOf(effective, renders);
  const rendered = new Set([...renders.map((r) => r.dir), ...failedDirs]);

  for (const [profile, cfg] of effective) {
    const where = profile ? `profile ${profile}` : "the default (no profile)";
    if (cfg.manifests?.rawYaml) say(`${where}: manifests.rawYaml is set; meshmart renders with kustomize only (raw files skip the Secret generators)`);
    const paths: string[] = cfg.manifests?.kustomize?.paths ?? [];
    if (paths.length === 0) say(`${where}: manifests.kustomize.paths is empty`);
    for (const p of paths)
      if (!rendered.has(p.replace(/\/$/, "").replace(/^\.\//, ""))) say(`${where}: manifests.kustomize.paths "${p}" is not a kustomization directory`);
  }

  // Artifacts: each Dockerfile exists, with the target stage and the SERVICE it is built for; each built image
  // is deployed and each deployed image is built.
  const artifacts: Obj[] = Array.isArray(config.build?.artifacts) ? config.build.artifacts : [];
  const built = new Set<string>(artifacts.map((a) => a.image));
  const files = repoFiles(root);
  const dockerfiles = new Map<string, Stage[]>();
  for (const a of artifacts) {
    const dockerfile = join(a.context ?? ".", a.docker?.dockerfile ?? "Dockerfile").replace(/^\.\//, "");
    if (!existsSync(join(root, dockerfile))) {
      say(`build.artifacts ${a.image}: dockerfile ${dockerfile} does not exist`);
      continue;
    }
    const text = readFileSync(join(root, dockerfile), "utf8");
    const stages = dockerStages(text);
    dockerfiles.set(a.image, stages);
    const workdir = [...text.matchAll(/^WORKDIR\s+(\S+)/gm)].at(-1)?.[1];
    for (const rule of a.sync?.manual ?? []) {
      if (!files.some((f) => globToRegExp(rule.src).test(f))) say(`build.artifacts ${a.image}: sync.manual src "${rule.src}" matches no file`);
      if (workdir && rule.dest !== workdir && rule.dest !== ".")
        say(`build.artifacts ${a.image}: sync.manual dest ${rule.dest} is not the image's WORKDIR ${workdir}`);
    }
    if (/^ARG\s+SERVICE\b/m.test(text)) {
      const svc = a.docker?.buildArgs?.SERVICE;
      if (!svc) say(`build.artifacts ${a.image}: ${dockerfile} is built per service: docker.buildArgs.SERVICE is missing`);
      else if (!existsSync(join(root, "services", svc, "src", "main.ts")))
        say(`build.artifacts ${a.image}: docker.buildArgs.SERVICE "${svc}" is not a service (services/${svc}/src/main.ts)`);
    }
  }
  const used = new Set<string>();
  const deployments = stacks.flatMap((s) => s.objects).filter((m: Manifest) => m.obj.kind === "Deployment");
  for (const { file, obj } of deployments) {
    for (const c of obj.spec?.template?.spec?.containers ?? []) {
      used.add(c.image);
      if (!built.has(c.image))
        problems.push({ file, message: `${describe(obj)}: image "${c.image}" is not a skaffold artifact (skaffold.yaml build.artifacts)` });
    }
  }
  for (const image of built) if (!used.has(image)) say(`build.artifacts ${image} is built but no Deployment uses it`);

  // Per profile, the stage each image is built from matches how its Deployment runs it: a container under
  // `tsx watch` (the dev overlay's file sync) needs a stage that has tsx and the sources, and a Deployment that
  // sets no command (production) must not get such a stage; sync needs the watcher.
  for (const stack of stacks) {
    const cfg = effective.get(stack.profile) ?? {};
    const where = stack.profile ? `profile ${stack.profile}` : "the default (no profile)";
    for (const a of (cfg.build?.artifacts ?? []) as Obj[]) {
      const stages = dockerfiles.get(a.image);
      if (!stages) continue;
      const target = a.docker?.target;
      const stage = target === undefined ? stages.at(-1) : stages.find((st) => st.name === target);
      if (!stage) {
        say(`${where}: build.artifacts ${a.image}: docker.target "${target}" is not a stage of its Dockerfile`);
        continue;
      }
      const stageWatches = /tsx/.test(stage.entrypoint.join(" ")) && stage.entrypoint.includes("watch");
      if (a.sync && !stageWatches) say(`${where}: build.artifacts ${a.image} syncs files into a stage that does not run tsx watch`);
      for (const { file, obj } of stack.objects.filter((m) => m.obj.kind === "Deployment")) {
        for (const c of obj.spec?.template?.spec?.containers ?? []) {
          if (c.image !== a.image) continue;
          // Only an overlay's explicit command asks for the watcher; without one the image runs as production.
          const runs: string[] = c.command ?? [];
          const watches = /tsx/.test(runs.join(" ")) && runs.includes("watch");
          if (watches !== stageWatches)
            problems.push({
              file,
              message: `${where}: ${describe(obj)} ${watches ? "runs tsx watch" : "runs the image as built"} but ${a.image} is built from ${
                target === undefined ? "the last stage" : `stage ${target}`
              } (${stageWatches ? "tsx watch on the sources" : "no tsx watch"})`,
            });
        }
      }
    }
  }

  // Port forwards name an object of the stack, in its namespace, on a port it has (Istio's own gateway excepted).
  for (const stack of stacks) {
    const cfg = effective.get(stack.profile) ?? {};
    const where = stack.profile ? `profile ${stack.profile}` : "the default (no profile)";
    for (const pf of cfg.portForward ?? []) {
      if (pf.namespace === "istio-system" && pf.resourceName === "istio-ingressgateway") continue;
      const kind = { service: "Service", deployment: "Deployment", statefulset: "StatefulSet", pod: "Pod" }[String(pf.resourceType).toLowerCase()];
      const target = stack.objects.find((m) => m.obj.kind === kind && m.obj.metadata?.name === pf.resourceName);
      if (!target) {
        say(`${where}: portForward ${pf.resourceType}/${pf.resourceName} does not exist`);
        continue;
      }
      if (pf.namespace !== target.obj.metadata?.namespace)
        say(`${where}: portForward ${pf.resourceName} namespace ${pf.namespace} is not ${target.obj.metadata?.namespace}`);
      const ports: number[] =
        kind === "Service"
          ? (target.obj.spec?.ports ?? []).map((p: Obj) => p.port)
          : (target.obj.spec?.template?.spec?.containers ?? []).flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => p.containerPort));
      if (!ports.includes(pf.port)) say(`${where}: portForward ${pf.resourceName} port ${pf.port} is not one of its ports (${ports.join(", ")})`);
    }
  }

  // The render hook runs a script of this repository: it must exist.
  for (const hook of [...(config.manifests?.hooks?.before ?? []), ...(config.manifests?.hooks?.after ?? [])]) {
    for (const arg of hook.host?.command ?? []) if (/^tools\//.test(arg) && !existsSync(join(root, arg))) say(`manifests.hooks: ${arg} does not exist`);
  }
  return { problems, stacks };
}
