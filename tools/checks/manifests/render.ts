// Renders every kustomization with the pinned kustomize (v5.8.1, built by tools/setup/setup.sh into .cache/bin),
// in a temporary copy: the Secrets' source files are generated there by tools/setup/dev-secrets.mjs (nothing is
// written into the repository) and every kustomization gets `buildMetadata: [originAnnotations]`, so each
// rendered object says which source file it came from and a problem can name that file.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments, parseDocument } from "yaml";
import { projectRoot } from "../../../services/kit/src/project-root.js";
import type { Obj, Problem, Render } from "./types.js";

/** This checker's own repository (the tools and the kustomize binary live here, even when checking a copy). */
// (The nearest directory with package.json: the same from tools/checks/manifests/ and from a bundle in dist/, e.g.
// npm start's launcher rendering the local mesh's config.)
export const ROOT = projectRoot(dirname(fileURLToPath(import.meta.url)));
const ORIGIN = "config.kubernetes.io/origin";
const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/** The directories that hold the cluster path's YAML: deploy/, mesh/ and every services/<svc>/k8s/. */
export function manifestRoots(root: string): string[] {
  const services = existsSync(join(root, "services")) ? readdirSync(join(root, "services")).sort() : [];
  return ["deploy", ...services.map((s) => `services/${s}/k8s`), "mesh"].filter((d) => existsSync(join(root, d)));
}

/** Every file under `dir` (relative to root), skipping the generated secrets. */
export function filesUnder(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (rel === "deploy/base/secrets") continue;
    if (statSync(join(root, rel)).isDirectory()) out.push(...filesUnder(root, rel));
    else out.push(rel);
  }
  return out;
}

/** Every directory with a kustomization file, relative to root, sorted. */
export function kustomizationDirs(root: string): string[] {
  return manifestRoots(root)
    .flatMap((d) => filesUnder(root, d))
    .filter((f) => KUSTOMIZATION_FILES.some((k) => f.endsWith(`/${k}`)))
    .map((f) => dirname(f))
    .sort();
}

export function kustomizeBinary(): string {
  const bin = process.env.KUSTOMIZE ?? join(ROOT, ".cache", "bin", "kustomize");
  if (!existsSync(bin)) throw new Error(`check-manifests: ${bin} not found; run tools/setup/setup.sh (it builds kustomize v5.8.1 with Go)`);
  return bin;
}

/**
 * Renders every kustomization under root (or only the directories `only`, relative to root); a build that
 * fails is a problem on its kustomization file.
 */
export function renderAll(root: string, only?: string[]): { renders: Render[]; problems: Problem[] } {
  const bin = kustomizeBinary();
  const work = mkdtempSync(join(tmpdir(), "meshmart-render-"));
  try {
    for (const dir of manifestRoots(root)) {
      cpSync(join(root, dir), join(work, dir), { recursive: true, filter: (src) => !src.endsWith(`${sep}deploy${sep}base${sep}secrets`) });
    }
    const script = existsSync(join(root, "tools", "setup", "dev-secrets.mjs"))
      ? join(root, "tools", "setup", "dev-secrets.mjs")
      : join(ROOT, "tools", "setup", "dev-secrets.mjs");
    execFileSync(process.execPath, [script, work], { stdio: ["ignore", "ignore", "pipe"] });
    const dirs = only ?? kustomizationDirs(work);
    for (const dir of dirs) withOriginAnnotations(work, dir);
    const renders: Render[] = [];
    const problems: Problem[] = [];
    for (const dir of dirs) {
      const file = `${dir}/${KUSTOMIZATION_FILES.find((k) => existsSync(join(work, dir, k)))}`;
      let out: string;
      try {
        out = execFileSync(bin, ["build", join(work, dir)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message);
        const message = stderr.replaceAll(`${work}${sep}`, "").replaceAll(work, ".").trim().split("\n")[0];
        problems.push({ file, message: `kustomize build ${dir} fails: ${message}` });
        continue;
      }
      renders.push({ dir, objects: parseRender(work, dir, out) });
    }
    return { renders, problems };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function withOriginAnnotations(work: string, dir: string) {
  const name = KUSTOMIZATION_FILES.find((k) => existsSync(join(work, dir, k)));
  if (!name) return;
  const path = join(work, dir, name);
  const doc = parseDocument(readFileSync(path, "utf8"));
  if (doc.errors.length > 0) return; // kustomize reports it when building
  const meta = (doc.get("buildMetadata") as { toJSON?: () => unknown } | undefined)?.toJSON?.();
  const list = Array.isArray(meta) ? meta : [];
  if (!list.includes("originAnnotations")) doc.set("buildMetadata", [...list, "originAnnotations"]);
  writeFileSync(path, doc.toString());
}

/** Objects with the source file from their origin annotation (which is then removed). */
function parseRender(work: string, dir: string, out: string): Render["objects"] {
  const objects: Render["objects"] = [];
  for (const doc of parseAllDocuments(out)) {
    const obj = doc.toJS() as Obj | null;
    if (!obj || typeof obj !== "object") continue;
    const annotations = obj.metadata?.annotations ?? {};
    let file = `${dir}/kustomization.yaml`;
    if (typeof annotations[ORIGIN] === "string") {
      const origin = parse(annotations[ORIGIN]) as { path?: string; configuredIn?: string };
      const from = origin.path ?? origin.configuredIn;
      if (from)
        file = relative(work, resolve(work, dir, from))
          .split(sep)
          .join("/");
      delete annotations[ORIGIN];
      if (Object.keys(annotations).length === 0) delete obj.metadata.annotations;
    }
    objects.push({ file, obj });
  }
  return objects;
}
