// Istio's own checks, run by the real istioctl (tools/setup/setup.sh --mesh builds it into .cache/bin; or $ISTIOCTL):
// `istioctl analyze --use-kube=false -A` over every rendered kustomization, every skaffold profile's stack (what
// is deployed together) and every experiment file applied over the `mesh` stack; `istioctl validate` over every
// rendered object and every experiment file. Validate refuses field errors the CRD schemas let through (e.g. a
// negative `attempts`) and warns where analyze may not look (IST0133). A message counts as a problem unless
// SUPPRESSED lists its code and resource with the reason.
// Offline, analyze skips its destination-host, destination-rule, gateway and port-name analyzers (they need
// a live API server); tools/checks/manifests/mesh-policy/ checks what they would find (e.g. IST0112, ports).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { istioctlBinary } from "../../stack/mesh/config.js";
import type { Manifest, Obj, Problem, Render, Stack } from "./types.js";

/** An analyzer message accepted on purpose: `resource` as istioctl's --suppress takes it ("Kind name.namespace", `*` allowed). */
export interface Suppression {
  code: string;
  resource: string;
  reason: string;
}

/** None today: every message istioctl gives the manifests was fixed. Add one only with the reason beside it. */
export const SUPPRESSED: Suppression[] = [];

/** One set of objects istioctl looks at together, and where a message about one of them is reported. */
interface ObjectSet {
  name: string; // for messages: "render mesh/canary", "stack mesh", "mesh/experiments/x.yaml over the mesh stack"
  objects: Manifest[];
}

const key = (kind: string, namespace: string | undefined, name: string) => `${kind}/${namespace ?? ""}/${name}`;
const keyOf = (o: Obj) => key(o.kind, o.metadata?.namespace, o.metadata?.name);

function run(bin: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const out = spawnSync(bin, args, { encoding: "utf8", maxBuffer: 64 << 20, timeout: 120_000 });
  if (out.error) return { code: 1, stdout: "", stderr: out.error.message };
  return { code: out.status ?? 1, stdout: out.stdout, stderr: out.stderr };
}

/** Writes a set's objects into one file, remembering which source file each document came from. */
function writeSet(work: string, index: number, set: ObjectSet): { path: string; sourceOf: Map<string, string> } {
  const path = join(work, `set-${index}.yaml`);
  writeFileSync(path, set.objects.map((m) => stringify(m.obj)).join("---\n"));
  return { path, sourceOf: new Map(set.objects.map((m) => [keyOf(m.obj), m.file])) };
}

interface AnalyzerMessage {
  code: string;
  level: string;
  message: string;
  origin?: string; // "VirtualService meshmart/payment"
}

function analyze(bin: string, work: string, sets: ObjectSet[]): Problem[] {
  const problems: Problem[] = [];
  const found = new Map<string, { file: string; text: string; sets: string[] }>(); // one message, all the sets it came from
  const suppress = SUPPRESSED.flatMap((s) => ["--suppress", `${s.code}=${s.resource}`]);
  const done = new Set<string>();
  sets.forEach((set, i) => {
    const content = JSON.stringify(set.objects.map((m) => m.obj));
    if (set.objects.length === 0 || done.has(content)) return; // e.g. mesh/ renders exactly what mesh/base does
    done.add(content);
    const { path, sourceOf } = writeSet(work, i, set);
    const out = run(bin, ["analyze", "--use-kube=false", "--all-namespaces", "--output", "json", ...suppress, path]);
    let messages: AnalyzerMessage[];
    try {
      messages = JSON.parse(out.stdout) as AnalyzerMessage[];
    } catch {
      problems.push({ file: set.objects[0].file, message: `istioctl analyze (${set.name}) failed (exit ${out.code}): ${firstLine(out.stderr || out.stdout)}` });
      return;
    }
    if (/could not be parsed|Error\(s\) adding files/.test(out.stderr))
      problems.push({ file: set.objects[0].file, message: `istioctl analyze (${set.name}) could not read every object: ${firstLine(out.stderr)}` });
    for (const m of messages) {
      const [kind, where = ""] = String(m.origin ?? "").split(" ");
      const [namespace, name] = where.includes("/") ? where.split("/") : [undefined, where];
      const file = sourceOf.get(key(kind, namespace, name)) ?? sourceOf.get(key(kind, undefined, name)) ?? set.objects[0].file;
      const text = `${m.level} ${m.code} on ${m.origin ?? "?"}: ${m.message}`;
      const seen = found.get(`${file}\0${text}`) ?? { file, text, sets: [] };
      seen.sets.push(set.name);
      found.set(`${file}\0${text}`, seen);
    }
  });
  for (const { file, text, sets: where } of found.values())
    problems.push({ file, message: `istioctl analyze (${where[0]}${where.length > 1 ? ` and ${where.length - 1} more` : ""}): ${text}` });
  return problems;
}

/**
 * `istioctl validate` on every distinct object, grouped by source file; one run for all, and a run per file
 * only when that one fails (its errors do not say which file they are in).
 */
function validate(bin: string, work: string, root: string, objects: Manifest[], experimentFiles: string[]): Problem[] {
  const files: { source: string; path: string }[] = [];
  const bySource = new Map<string, Obj[]>();
  const seen = new Set<string>();
  for (const m of objects) {
    const id = `${m.file}\0${JSON.stringify(m.obj)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    bySource.set(m.file, [...(bySource.get(m.file) ?? []), m.obj]);
  }
  [...bySource].forEach(([source, objs], i) => {
    const path = join(work, `validate-${i}.yaml`);
    writeFileSync(path, objs.map((o) => stringify(o)).join("---\n"));
    files.push({ source, path });
  });
  for (const f of experimentFiles) files.push({ source: f, path: join(root, f) });
  const sourceOf = new Map(files.map((f) => [f.path, f.source]));
  const problems: Problem[] = [];
  const collect = (list: typeof files) => {
    const out = run(bin, ["validate", ...list.flatMap((f) => ["-f", f.path])]);
    // Warnings: `"<path>" has warnings:` then one `\t* Kind/ns/name: message` line each.
    let current: string | undefined;
    for (const line of `${out.stdout}\n${out.stderr}`.split("\n")) {
      const head = line.match(/^"(.+)" has warnings:/);
      if (head) current = sourceOf.get(head[1]) ?? head[1];
      else if (current && /^\s+\* /.test(line)) problems.push({ file: current, message: `istioctl validate: warning: ${line.replace(/^\s+\* /, "")}` });
      else if (!/^\s/.test(line)) current = undefined;
    }
    return out;
  };
  const all = collect(files);
  if (all.code !== 0) {
    problems.length = 0; // the runs per file below give each message again, with its file
    for (const f of files) {
      const out = collect([f]);
      if (out.code === 0) continue;
      const errors = `${out.stderr}\n${out.stdout}`
        .split("\n")
        .filter((l) => /^\s+\* /.test(l))
        .map((l) => l.replace(/^\s+\* /, ""));
      for (const e of errors.length > 0 ? [...new Set(errors)] : [firstLine(out.stderr || out.stdout)])
        problems.push({ file: f.source, message: `istioctl validate: refused: ${e}` });
    }
  }
  return problems;
}

const firstLine = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l && !/^\d{4}-\d\d-\d\dT/.test(l)) ?? "(no output)";

/**
 * Every message istioctl analyze and validate give, as problems naming the source file. `stacks` are the
 * skaffold profiles' stacks; the experiments are applied over the `mesh` one as the runner applies them
 * (same kind and name replaced).
 */
export function checkWithIstioctl(input: {
  root: string;
  renders: Render[];
  stacks: Stack[];
  experiments: { file: string; objects: Obj[] }[];
  bin?: string;
}): Problem[] {
  const bin = input.bin ?? istioctlBinary();
  const work = mkdtempSync(join(tmpdir(), "meshmart-istioctl-"));
  try {
    const mesh = input.stacks.find((s) => s.profile === "mesh");
    const sets: ObjectSet[] = [
      ...input.renders.map((r) => ({ name: `kustomization ${r.dir}`, objects: r.objects })),
      ...input.stacks.map((s) => ({ name: `skaffold ${s.profile ? `-p ${s.profile}` : "default"}`, objects: s.objects })),
      ...input.experiments.map((e) => {
        const mine = new Set(e.objects.map(keyOf));
        const base = (mesh?.objects ?? []).filter((m) => !mine.has(keyOf(m.obj)));
        return { name: `${e.file} over skaffold -p mesh`, objects: [...base, ...e.objects.map((obj) => ({ file: e.file, obj }))] };
      }),
    ];
    return [
      ...analyze(bin, work, sets),
      ...validate(
        bin,
        work,
        input.root,
        input.renders.flatMap((r) => r.objects),
        input.experiments.map((e) => e.file),
      ),
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
