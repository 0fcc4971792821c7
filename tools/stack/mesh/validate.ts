// `istioctl validate` for the local mesh's documents: Istio's own offline validation, its problems mapped back
// to the source files the documents came from (istiod refuses a whole directory for one bad document).
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import type { Manifest, Problem } from "../../checks/manifests/types.js";
import { ROOT } from "../../root.js";
import { MESH_NAMESPACE } from "./bootstrap.js";

const run = promisify(execFile);

export function istioctlBinary(): string {
  const bin = process.env.ISTIOCTL ?? join(ROOT, ".cache", "bin", "istioctl");
  if (!existsSync(bin)) throw new Error(`mesh: ${bin} not found; run tools/setup/setup.sh --mesh (it builds istioctl with Go)`);
  return bin;
}

/**
 * `istioctl validate` over every document (offline: Istio's own validation, the one its admission webhook
 * runs, which also refuses what the CRD schemas let through, e.g. a negative `attempts`). Each problem names
 * the source file and the object. Warnings are not problems.
 */
export async function validateMeshDocs(docs: Manifest[]): Promise<Problem[]> {
  const dir = mkdtempSync(join(tmpdir(), "meshmart-validate-"));
  try {
    const sources = new Map<string, string>();
    const files: string[] = [];
    docs.forEach((m, i) => {
      const f = join(dir, `${i}.yaml`);
      writeFileSync(f, stringify(m.obj));
      sources.set(f, m.file);
      files.push(f);
    });
    if (files.length === 0) return [];
    try {
      await run(istioctlBinary(), ["validate", ...files.flatMap((f) => ["-f", f])], { maxBuffer: 16 << 20 });
      return [];
    } catch (err) {
      const out = `${(err as { stdout?: string }).stdout ?? ""}\n${(err as { stderr?: string }).stderr ?? (err as Error).message}`;
      return problemsOf(out, docs, sources);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Maps istioctl's messages ("... VirtualService/meshmart/payment ...", "... <file>: ...") to source files. */
function problemsOf(out: string, docs: Manifest[], sources: Map<string, string>): Problem[] {
  const problems: Problem[] = [];
  // Warnings ("<file> has warnings:" and their bullets) come first; the errors follow "Error: N error(s) occurred".
  const errorsAt = out.search(/^Error: /m);
  const lines = (errorsAt >= 0 ? out.slice(errorsAt) : out)
    .split("\n")
    .map((l) => l.replace(/^\s*\*\s*/, "").trim())
    .filter((l) => l && !/^Error: \d+ errors? occurred:?$/.test(l) && !/^\d+ errors? occurred:?$/.test(l));
  for (const line of lines) {
    if (/^Warning/i.test(line) || /^"?[\w-]+"? is valid$/.test(line)) continue;
    let file: string | undefined;
    for (const [tmp, src] of sources) if (line.includes(tmp)) file = src;
    if (!file)
      for (const m of docs) {
        const { kind, metadata } = m.obj;
        const ns = metadata?.namespace ?? MESH_NAMESPACE;
        if (line.includes(`${kind}/${ns}/${metadata?.name}`) || line.includes(`${kind}/${ns}.${metadata?.name}`) || line.includes(`${kind}//${metadata?.name}`))
          file = m.file;
      }
    let message = line;
    for (const tmp of sources.keys()) message = message.replaceAll(tmp, "");
    problems.push({ file: file ?? "(mesh config)", message });
  }
  return problems;
}
