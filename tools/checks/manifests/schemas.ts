// The offline schemas: Istio 1.29.6 CRDs (made strict) and skaffold v4beta14, carried in tools/checks/schemas.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { parseAllDocuments } from "yaml";
import type { Obj } from "./types.js";

const ISTIO_CRDS = "istio-1.29.6-crd-all.gen.yaml";
const SKAFFOLD_SCHEMA = "skaffold-v4beta14.json";

export interface Schemas {
  istio: Map<string, ValidateFunction>; // "networking.istio.io/v1/VirtualService" -> validates `spec`
  skaffold: ValidateFunction;
}

/** The upstream schemas the project carries (tools/checks/schemas, see its README). */
export function sharedSchemasDir(root: string): string {
  return resolve(root, "tools", "checks", "schemas");
}

const loaded = new Map<string, Schemas>();

/** Compiling every Istio CRD takes seconds: once per directory and process. */
export function loadSchemas(dir: string): Schemas {
  const cached = loaded.get(resolve(dir));
  if (cached) return cached;
  const schemas = compileSchemas(dir);
  loaded.set(resolve(dir), schemas);
  return schemas;
}

function compileSchemas(dir: string): Schemas {
  const missing = [ISTIO_CRDS, SKAFFOLD_SCHEMA].filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new Error(
      `check-manifests: offline schemas not found: ${missing.map((f) => join(dir, f)).join(", ")}. ` +
        "They are carried in tools/checks/schemas (see its README); restore them from git, or pass the schemas directory.",
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
export function closeObjects(schema: Obj): Obj {
  if (schema.type === "object" && schema.properties && schema.additionalProperties === undefined && !schema["x-kubernetes-preserve-unknown-fields"]) {
    schema.additionalProperties = false;
  }
  for (const sub of Object.values(schema.properties ?? {})) closeObjects(sub as Obj);
  if (schema.items && typeof schema.items === "object") closeObjects(schema.items);
  if (schema.additionalProperties && typeof schema.additionalProperties === "object") closeObjects(schema.additionalProperties);
  for (const key of ["anyOf", "oneOf", "allOf"]) for (const sub of schema[key] ?? []) closeObjects(sub);
  return schema;
}

/** Ajv errors as "field.path: what is wrong", without the anyOf/oneOf summaries. */
export function ajvMessages(errors: ErrorObject[] | null | undefined, prefix: string): string[] {
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
