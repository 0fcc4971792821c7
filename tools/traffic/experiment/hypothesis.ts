// An experiment's hypothesis: what load to run, which fault to inject (Istio config on a cluster, or the
// process-level fault approximating it on the local stack) and what must hold. One small YAML file per
// experiment beside its Istio YAML (mesh/experiments/<name>.hypothesis.yaml), validated by this JSON Schema.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { ROOT } from "../../root.js";
import type { UnitName } from "../../stack/launcher.js";
import { INVARIANTS, type InvariantName } from "../invariants.js";

export const EXPERIMENTS_DIR = join(ROOT, "mesh", "experiments");

export const OPS = ["browse", "search", "getProduct", "login", "placeOrder"] as const;
export type OpName = (typeof OPS)[number];
/** Parts of the run a windowed check looks at: the whole run, before the fault, while it lasts, after it ended. */
export type Window = "whole" | "before" | "during" | "after";

export type LocalFault =
  | { action: "kill"; unit: UnitName; signal?: "SIGKILL" | "SIGTERM" }
  | { action: "stop-db" }
  | { action: "faults"; unit: UnitName; delayMs?: number; delayPercent?: number; errorPercent?: number; methods?: string[] }
  | { action: "rolling-restart"; units: UnitName[] }
  | { action: "none" };

export type Expectation =
  | { successRate: { op?: OpName; window?: Window; min?: number; max?: number } }
  | { latency: { op: OpName; percentile: "p50" | "p90" | "p99"; maxMs: number } }
  | { codes: { op?: OpName; allowed?: string[]; expected?: string[] } }
  | { recovery: { maxMs: number; threshold?: number } };

export interface Hypothesis {
  name: string;
  /** The claim, in a sentence a person can check against the report. */
  hypothesis: string;
  /** Where it can run: a cluster (Istio YAML beside this file) and/or the local stack. */
  targets: ("cluster" | "local")[];
  load: { rate: number; durationMs: number; mix?: Partial<Record<OpName, number>>; deadlineMs?: number };
  fault: {
    startAfterMs: number;
    durationMs: number;
    /** The local approximation; why it approximates the cluster fault. */
    local?: LocalFault & { note?: string };
    /** Extra kubectl argument lists run before the load (after the apply) and after the revert. */
    cluster?: { before?: string[][]; after?: string[][]; note?: string };
  };
  expect: Expectation[];
  /** Invariants over the whole data set after the run ("all", or a list). */
  invariants: "all" | InvariantName[] | "none";
}

const op = { enum: [...OPS] };
const units = { enum: ["identity", "catalog-v1", "catalog-v2", "orders", "payment"] };
const code = { type: "string", pattern: "^[a-z_]+$" };
const share = { type: "number", minimum: 0, maximum: 1 };
const strict = (properties: Record<string, unknown>, required: string[] = []) => ({ type: "object", additionalProperties: false, properties, required });

export const HYPOTHESIS_SCHEMA = strict(
  {
    name: { type: "string", pattern: "^[a-z0-9-]+$" },
    hypothesis: { type: "string", minLength: 10 },
    targets: { type: "array", minItems: 1, uniqueItems: true, items: { enum: ["cluster", "local"] } },
    load: strict(
      {
        rate: { type: "number", exclusiveMinimum: 0, maximum: 1000 },
        durationMs: { type: "integer", minimum: 1000, maximum: 600_000 },
        mix: { type: "object", additionalProperties: false, properties: Object.fromEntries(OPS.map((o) => [o, { type: "number", minimum: 0 }])) },
        deadlineMs: { type: "integer", minimum: 1, maximum: 60_000 },
      },
      ["rate", "durationMs"],
    ),
    fault: strict(
      {
        startAfterMs: { type: "integer", minimum: 0 },
        durationMs: { type: "integer", minimum: 0 },
        local: {
          oneOf: [
            strict({ action: { const: "kill" }, unit: units, signal: { enum: ["SIGKILL", "SIGTERM"] }, note: { type: "string" } }, ["action", "unit"]),
            strict({ action: { const: "stop-db" }, note: { type: "string" } }, ["action"]),
            strict(
              {
                action: { const: "faults" },
                unit: units,
                delayMs: { type: "integer", minimum: 0, maximum: 600_000 },
                delayPercent: { type: "number", minimum: 0, maximum: 100 },
                errorPercent: { type: "number", minimum: 0, maximum: 100 },
                methods: { type: "array", items: { type: "string" } },
                note: { type: "string" },
              },
              ["action", "unit"],
            ),
            strict({ action: { const: "rolling-restart" }, units: { type: "array", minItems: 1, items: units }, note: { type: "string" } }, [
              "action",
              "units",
            ]),
            strict({ action: { const: "none" }, note: { type: "string" } }, ["action"]),
          ],
        },
        cluster: strict({
          before: { type: "array", items: { type: "array", items: { type: "string" } } },
          after: { type: "array", items: { type: "array", items: { type: "string" } } },
          note: { type: "string" },
        }),
      },
      ["startAfterMs", "durationMs"],
    ),
    expect: {
      type: "array",
      items: {
        oneOf: [
          strict({ successRate: strict({ op, window: { enum: ["whole", "before", "during", "after"] }, min: share, max: share }) }, ["successRate"]),
          strict(
            {
              latency: strict({ op, percentile: { enum: ["p50", "p90", "p99"] }, maxMs: { type: "number", exclusiveMinimum: 0 } }, [
                "op",
                "percentile",
                "maxMs",
              ]),
            },
            ["latency"],
          ),
          strict({ codes: strict({ op, allowed: { type: "array", items: code }, expected: { type: "array", items: code } }) }, ["codes"]),
          strict({ recovery: strict({ maxMs: { type: "integer", minimum: 0 }, threshold: share }, ["maxMs"]) }, ["recovery"]),
        ],
      },
    },
    invariants: { oneOf: [{ enum: ["all", "none"] }, { type: "array", items: { enum: Object.keys(INVARIANTS) } }] },
  },
  ["name", "hypothesis", "targets", "load", "fault", "expect", "invariants"],
);

const ajv = new Ajv({ allErrors: true });
const validate = ajv.compile(HYPOTHESIS_SCHEMA);

/** Validates a parsed hypothesis; errors name the file and the field. */
export function parseHypothesis(raw: unknown, source = "hypothesis"): Hypothesis {
  if (!validate(raw)) {
    const errors = (validate.errors ?? []).map(
      (e) => `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? ` (${e.params.additionalProperty})` : ""}`,
    );
    throw new Error(`${source}: invalid hypothesis:\n  ${[...new Set(errors)].join("\n  ")}`);
  }
  const h = raw as unknown as Hypothesis;
  if (h.fault.startAfterMs + h.fault.durationMs > h.load.durationMs)
    throw new Error(`${source}: /fault ends at ${h.fault.startAfterMs + h.fault.durationMs} ms, after the load (/load/durationMs ${h.load.durationMs})`);
  if (h.targets.includes("local") && !h.fault.local) throw new Error(`${source}: /fault/local is required when targets include local`);
  return h;
}

export const hypothesisFile = (name: string, dir = EXPERIMENTS_DIR) => join(dir, `${name}.hypothesis.yaml`);

/** Reads and validates mesh/experiments/<name>.hypothesis.yaml. */
export function loadHypothesis(name: string, dir = EXPERIMENTS_DIR): Hypothesis {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`experiment name must be lower-case words joined by "-", got "${name}"`);
  const file = hypothesisFile(name, dir);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`no hypothesis for experiment "${name}": ${file} does not exist`);
  }
  const h = parseHypothesis(parse(text), file);
  if (h.name !== name) throw new Error(`${file}: /name is "${h.name}", the file says "${name}"`);
  return h;
}

/** "20s", "1500ms", "2m" or a number of milliseconds. */
export function parseDuration(text: string, flag = "--duration"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`${flag} must look like 20s, 1500ms or 2m, got "${text}"`);
  const n = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[(m[2] ?? "ms") as "ms" | "s" | "m"];
  return Math.round(n);
}

export type { InvariantName };
