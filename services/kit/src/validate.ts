// Input rules declared in the contracts ((meshmart.common.v1.rules) field options), checked before handlers.
import { type DescField, type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { type FieldRules, rules } from "#gen/meshmart/common/v1/validate_pb.js";
import type { Violation } from "./errors.js";

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ruleCache = new WeakMap<DescField, FieldRules | null>();
const patternCache = new Map<string, RegExp>();

function rulesOf(field: DescField): FieldRules | null {
  let r = ruleCache.get(field);
  if (r === undefined) {
    r = hasOption(field, rules) ? getOption(field, rules) : null;
    ruleCache.set(field, r);
  }
  return r;
}

function fieldValue(message: Record<string, unknown>, field: DescField): unknown {
  if (field.oneof) {
    const o = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o?.case === field.localName ? o.value : undefined;
  }
  return message[field.localName];
}

/** Returns every rule the message breaks; field paths use proto names, e.g. `items[0].quantity`. */
export function violations(schema: DescMessage, message: unknown, path = ""): Violation[] {
  const out: Violation[] = [];
  collect(schema, message as Record<string, unknown>, path, out);
  return out;
}

function collect(schema: DescMessage, message: Record<string, unknown>, path: string, out: Violation[]) {
  for (const field of schema.fields) {
    const r = rulesOf(field);
    const name = path ? `${path}.${field.name}` : field.name;
    const value = fieldValue(message, field);
    switch (field.fieldKind) {
      case "scalar":
        if (r) checkScalar(r, name, value, out);
        break;
      case "enum":
        if (r?.required && (value === undefined || value === 0)) out.push({ field: name, description: "is required" });
        break;
      case "message":
        if (value === undefined) {
          if (r?.required) out.push({ field: name, description: "is required" });
        } else {
          collect(field.message, value as Record<string, unknown>, name, out);
        }
        break;
      case "list": {
        const items = (value as unknown[] | undefined) ?? [];
        if (r) {
          if (r.required && items.length === 0) out.push({ field: name, description: "needs at least one item" });
          if (r.minLen !== undefined && items.length < r.minLen) out.push({ field: name, description: `needs at least ${r.minLen} items` });
          if (r.maxLen !== undefined && items.length > r.maxLen) out.push({ field: name, description: `takes at most ${r.maxLen} items, got ${items.length}` });
        }
        items.forEach((item, i) => {
          if (field.listKind === "message") collect(field.message, item as Record<string, unknown>, `${name}[${i}]`, out);
          else if (r) checkScalar({ ...r, required: false, minLen: undefined, maxLen: undefined }, `${name}[${i}]`, item, out);
        });
        break;
      }
      case "map":
        if (field.mapKind === "message") {
          for (const [k, v] of Object.entries((value as Record<string, unknown>) ?? {}))
            collect(field.message, v as Record<string, unknown>, `${name}["${k}"]`, out);
        }
        break;
    }
  }
}

function checkScalar(r: FieldRules, name: string, value: unknown, out: Violation[]) {
  if (typeof value === "string") {
    const length = [...value].length;
    if (r.required && value.trim() === "") return void out.push({ field: name, description: "is required" });
    if (value === "") return; // optional and absent: length and format rules apply only to given values
    if (r.minLen !== undefined && length < r.minLen) out.push({ field: name, description: `must be at least ${r.minLen} characters` });
    if (r.maxLen !== undefined && length > r.maxLen) out.push({ field: name, description: `must be at most ${r.maxLen} characters, got ${length}` });
    if (r.email && !EMAIL.test(value)) out.push({ field: name, description: "must be an e-mail address" });
    if (r.pattern && !pattern(r.pattern).test(value)) out.push({ field: name, description: `must match ${r.pattern}` });
    return;
  }
  if (typeof value === "number" || typeof value === "bigint") {
    if (r.required && (value === 0 || value === 0n)) out.push({ field: name, description: "is required" });
    if (r.gte !== undefined && value < r.gte) out.push({ field: name, description: `must be at least ${r.gte}, got ${value}` });
    if (r.lte !== undefined && value > r.lte) out.push({ field: name, description: `must be at most ${r.lte}, got ${value}` });
    return;
  }
  if (typeof value === "boolean" && r.required && !value) out.push({ field: name, description: "must be true" });
}

function pattern(source: string): RegExp {
  let re = patternCache.get(source);
  if (!re) patternCache.set(source, (re = new RegExp(source, "u")));
  return re;
}
