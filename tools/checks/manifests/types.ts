// The shapes every manifest check shares.

/** One thing wrong, named by the source file (relative to the repository) and the field. */
export interface Problem {
  file: string;
  message: string;
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; every access is checked.
export type Obj = Record<string, any>;

/** One rendered object and the source file it came from (kustomize's origin annotation). */
export interface Manifest {
  file: string;
  obj: Obj;
}

/** What `kustomize build <dir>` produced; `dir` is relative to the repository. */
export interface Render {
  dir: string;
  objects: Manifest[];
}

/** What one skaffold profile (or the default, "") deploys: the renders of its kustomize paths, together. */
export interface Stack {
  profile: string;
  paths: string[];
  objects: Manifest[];
}

export function describe(obj: Obj): string {
  return `${obj.kind ?? "?"} ${obj.metadata?.name ?? "(no name)"}`;
}

/** Collects problems about one object, each message prefixed with "Kind name: ". */
export function reporter(problems: Problem[], file: string, obj?: Obj): (message: string) => void {
  return (message) => problems.push({ file, message: obj ? `${describe(obj)}: ${message}` : message });
}

/** Same file and message once, in first-seen order (an object appears in several renders). */
export function unique(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.file}\0${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
