// fast-check arbitraries derived from protobuf-es descriptors: one generator for every request message.
// Three flavours, mixed: random (any value of the field's type, boundaries, huge strings, missing fields),
// valid (what the (buf.validate.field) rules allow, so calls get past validation and some succeed)
// and near-valid (a valid message with one field replaced by a random value, so validation is exercised
// field by field, not only at the first rule a random message breaks).
import { type DescField, type DescMessage, getOption, hasOption, ScalarType } from "@bufbuild/protobuf";
import { type FieldRules, field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import fc from "fast-check";

/** Known-good values by proto field name (e.g. `sku`: SKUs that exist), learned from earlier responses or given. */
export type Dictionary = Map<string, Set<string>>;

type Init = Record<string, unknown>;

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const UINT32 = { min: 0, max: 2 ** 32 - 1 };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };
const MAX_DEPTH = 3;
/** Below the servers' 1 MiB receive limit, so the message reaches validation (oversized ones are sent apart). */
const HUGE = 200_000;

const NASTY = [
  "",
  " ",
  "\t\n",
  "\u0000",
  "' OR '1'='1",
  '{"$gt":""}',
  "$where",
  "../../etc/passwd",
  "\u202e\u0301",
  "😀".repeat(70),
  "e\u0301".repeat(40),
  "%s%n%x",
  "__proto__",
  "constructor",
];

/** The part of a field's protovalidate rules the generators aim at (lengths: of a string or of a list). */
interface Rules {
  required: boolean;
  minLen?: number;
  maxLen?: number;
  gte?: bigint;
  lte?: bigint;
  email: boolean;
  pattern?: string;
}

const rulesCache = new WeakMap<DescField, Rules | undefined>();

function rulesOf(field: DescField): Rules | undefined {
  if (!rulesCache.has(field)) rulesCache.set(field, hasOption(field, fieldRules) ? readRules(getOption(field, fieldRules)) : undefined);
  return rulesCache.get(field);
}

// The contracts use string, 32/64-bit integer and repeated rules; a rule of another kind is simply not aimed at.
// Zero stands for "not set" in the lengths (validate.proto is proto2; a zero length limit would be meaningless).
function readRules(r: FieldRules): Rules {
  const out: Rules = { required: r.required, email: false };
  const t = r.type;
  if (t.case === "string") {
    if (t.value.minLen) out.minLen = Number(t.value.minLen);
    if (t.value.maxLen) out.maxLen = Number(t.value.maxLen);
    if (t.value.pattern) out.pattern = t.value.pattern;
    out.email = t.value.wellKnown.case === "email" && t.value.wellKnown.value;
  } else if (t.case === "repeated") {
    if (t.value.minItems) out.minLen = Number(t.value.minItems);
    if (t.value.maxItems) out.maxLen = Number(t.value.maxItems);
  } else if (t.case === "int32" || t.case === "int64" || t.case === "uint32" || t.case === "uint64") {
    if (t.value.greaterThan.case === "gte") out.gte = BigInt(t.value.greaterThan.value);
    if (t.value.lessThan.case === "lte") out.lte = BigInt(t.value.lessThan.value);
  }
  return out;
}

const ALNUM = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

function dictionaryValues(field: DescField, dict: Dictionary): string[] {
  return [...(dict.get(field.name) ?? [])];
}

/** A string of a boundary length: at, just above and far above the max_len rule, or huge. */
function boundaryString(r: Rules | undefined): fc.Arbitrary<string> {
  const max = r?.maxLen ?? 64;
  const min = r?.minLen ?? 0;
  return fc.constantFrom(max, max + 1, max * 4, Math.max(0, min - 1), min, HUGE).map((n) => "x".repeat(n));
}

function randomString(field: DescField, dict: Dictionary): fc.Arbitrary<string> {
  const r = rulesOf(field);
  const known = dictionaryValues(field, dict);
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
    { weight: 2, arbitrary: boundaryString(r) },
    { weight: 2, arbitrary: fc.constantFrom(...NASTY) },
    { weight: 2, arbitrary: validString(field, dict) },
    ...(known.length ? [{ weight: 2, arbitrary: fc.constantFrom(...known) }] : []),
  );
}

function validString(field: DescField, dict: Dictionary): fc.Arbitrary<string> {
  const r = rulesOf(field);
  const known = dictionaryValues(field, dict);
  const max = Math.min(r?.maxLen ?? 32, 32);
  const min = Math.max(r?.minLen ?? 0, r?.required ? 1 : 0);
  let made: fc.Arbitrary<string>;
  if (r?.email) made = fc.emailAddress().filter((e) => e.length <= (r.maxLen ?? 254));
  else if (r?.pattern) made = fc.stringMatching(new RegExp(r.pattern, "u"));
  else made = fc.string({ unit: ALNUM, minLength: min, maxLength: Math.max(min, max) });
  // Known values (real SKUs, ids seen in responses) make calls succeed; made-up ones reach NOT_FOUND paths.
  return known.length ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: made }) : made;
}

/** The range of each 32-bit integer type (numbers in protobuf-es). */
const INT_RANGES: Partial<Record<ScalarType, { min: number; max: number }>> = {
  [ScalarType.INT32]: INT32,
  [ScalarType.SINT32]: INT32,
  [ScalarType.SFIXED32]: INT32,
  [ScalarType.UINT32]: UINT32,
  [ScalarType.FIXED32]: UINT32,
};
/** The range of each 64-bit integer type (bigints in protobuf-es). */
const BIG_RANGES: Partial<Record<ScalarType, { min: bigint; max: bigint }>> = {
  [ScalarType.INT64]: INT64,
  [ScalarType.SINT64]: INT64,
  [ScalarType.SFIXED64]: INT64,
  [ScalarType.UINT64]: UINT64,
  [ScalarType.FIXED64]: UINT64,
};
const intRange = (type: ScalarType) => INT_RANGES[type];
const bigRange = (type: ScalarType) => BIG_RANGES[type];

function randomScalar(field: DescField, type: ScalarType, dict: Dictionary): fc.Arbitrary<unknown> {
  const r = rulesOf(field);
  if (type === ScalarType.STRING) return randomString(field, dict);
  if (type === ScalarType.BOOL) return fc.boolean();
  if (type === ScalarType.BYTES) return fc.uint8Array({ maxLength: 64 });
  if (type === ScalarType.DOUBLE) return fc.double();
  if (type === ScalarType.FLOAT) return fc.float();
  const ints = intRange(type);
  if (ints) {
    const edges = [
      0,
      1,
      -1,
      ints.min,
      ints.max,
      ...(r?.gte !== undefined ? [Number(r.gte) - 1, Number(r.gte)] : []),
      ...(r?.lte !== undefined ? [Number(r.lte), Number(r.lte) + 1] : []),
    ];
    return fc.oneof(fc.constantFrom(...edges.filter((n) => n >= ints.min && n <= ints.max)), fc.integer(ints), validScalar(field, type, dict));
  }
  const bigs = bigRange(type) ?? INT64;
  const edges = [0n, 1n, -1n, bigs.min, bigs.max, ...(r?.gte !== undefined ? [r.gte - 1n, r.gte] : []), ...(r?.lte !== undefined ? [r.lte, r.lte + 1n] : [])];
  return fc.oneof(fc.constantFrom(...edges.filter((n) => n >= bigs.min && n <= bigs.max)), fc.bigInt(bigs), validScalar(field, type, dict));
}

function validScalar(field: DescField, type: ScalarType, dict: Dictionary): fc.Arbitrary<unknown> {
  const r = rulesOf(field);
  if (type === ScalarType.STRING) return validString(field, dict);
  if (type === ScalarType.BOOL) return r?.required ? fc.constant(true) : fc.boolean();
  if (type === ScalarType.BYTES) return fc.uint8Array({ minLength: r?.required ? 1 : 0, maxLength: 16 });
  if (type === ScalarType.DOUBLE || type === ScalarType.FLOAT) return fc.double({ min: 0, max: 1000, noNaN: true });
  const low = r?.gte ?? (r?.required ? 1n : 0n);
  const high = r?.lte ?? low + 10n;
  if (intRange(type)) return fc.integer({ min: Number(low), max: Number(high) });
  return fc.bigInt({ min: low, max: high });
}

function randomEnum(field: DescField & { enum: { values: { number: number }[] } }): fc.Arbitrary<number> {
  // Known values and unknown ones (proto3 enums are open: an unknown number must be handled, not crash).
  return fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer(INT32));
}

/** Any value of the field's type, or a value its rules accept. `undefined` = the field is missing. */
function randomField(field: DescField, dict: Dictionary, depth: number): fc.Arbitrary<unknown> {
  const r = rulesOf(field);
  switch (field.fieldKind) {
    case "scalar":
      return randomScalar(field, field.scalar, dict);
    case "enum":
      return randomEnum(field);
    case "message":
      return depth >= MAX_DEPTH ? fc.constant(undefined) : fc.option(randomMessageInit(field.message, dict, depth + 1), { nil: undefined });
    case "list": {
      const item =
        field.listKind === "message"
          ? depth >= MAX_DEPTH
            ? fc.constant({})
            : fc.oneof(randomMessageInit(field.message, dict, depth + 1), validMessageInit(field.message, dict, depth + 1))
          : field.listKind === "enum"
            ? randomEnum(field as never)
            : randomScalar(field, field.scalar, dict);
      const lists = [fc.array(item, { maxLength: 4 })];
      if (r?.maxLen !== undefined) lists.push(fc.array(item, { minLength: r.maxLen + 1, maxLength: r.maxLen + 1 }));
      return fc.oneof(...lists);
    }
    case "map":
      return fc.dictionary(fc.string({ maxLength: 8 }), field.mapKind === "scalar" ? randomScalar(field, field.scalar, dict) : fc.constant({}), { maxKeys: 3 });
  }
}

function validField(field: DescField, dict: Dictionary, depth: number): fc.Arbitrary<unknown> {
  const r = rulesOf(field);
  switch (field.fieldKind) {
    case "scalar":
      // Absent means the zero value: leave a field out only where zero passes its rules (not `gte: 1`).
      return r?.required || (r?.gte !== undefined && r.gte > 0n) || (r?.lte !== undefined && r.lte < 0n)
        ? validScalar(field, field.scalar, dict)
        : fc.option(validScalar(field, field.scalar, dict), { nil: undefined, freq: 3 });
    case "enum":
      return fc.constantFrom(...field.enum.values.filter((v) => !r?.required || v.number !== 0).map((v) => v.number));
    case "message":
      if (depth >= MAX_DEPTH) return fc.constant(undefined);
      return r?.required ? validMessageInit(field.message, dict, depth + 1) : fc.option(validMessageInit(field.message, dict, depth + 1), { nil: undefined });
    case "list": {
      const item =
        field.listKind === "message"
          ? validMessageInit(field.message, dict, depth + 1)
          : field.listKind === "enum"
            ? fc.constantFrom(...field.enum.values.map((v) => v.number))
            : validScalar(field, field.scalar, dict);
      return fc.array(item, { minLength: Math.max(r?.minLen ?? 0, r?.required ? 1 : 0), maxLength: Math.min(3, r?.maxLen ?? 3) });
    }
    case "map":
      return fc.constant({});
  }
}

function assign(desc: DescMessage, values: Record<string, unknown>): Init {
  const init: Init = {};
  for (const field of desc.fields) {
    const v = values[field.localName];
    if (v === undefined) continue;
    if (field.oneof) init[field.oneof.localName] = { case: field.localName, value: v };
    else init[field.localName] = v;
  }
  return init;
}

function fieldsRecord(desc: DescMessage, make: (f: DescField) => fc.Arbitrary<unknown>): fc.Arbitrary<Init> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.fields) shape[f.localName] = make(f);
  return fc.record(shape).map((values) => assign(desc, values));
}

/** Random values in every field (each field may also be missing). */
export function randomMessageInit(desc: DescMessage, dict: Dictionary, depth = 0): fc.Arbitrary<Init> {
  return fieldsRecord(desc, (f) => fc.option(randomField(f, dict, depth), { nil: undefined, freq: 4 }));
}

/** Values the field rules accept (the domain may still refuse them: unknown SKU, declined card ...). */
export function validMessageInit(desc: DescMessage, dict: Dictionary, depth = 0): fc.Arbitrary<Init> {
  return fieldsRecord(desc, (f) => validField(f, dict, depth));
}

/** A valid message with exactly one field replaced by a random value (or removed). */
export function nearValidMessageInit(desc: DescMessage, dict: Dictionary): fc.Arbitrary<Init> {
  if (desc.fields.length === 0) return fc.constant({});
  return fc.tuple(validMessageInit(desc, dict), fc.constantFrom(...desc.fields)).chain(([valid, field]) =>
    fc.option(randomField(field, dict, 0), { nil: undefined, freq: 5 }).map((value) => {
      const init = { ...valid };
      const key = field.oneof ? field.oneof.localName : field.localName;
      delete init[key];
      return { ...init, ...assign(desc, { [field.localName]: value }) };
    }),
  );
}

/** The mix sent to every RPC: mostly random and near-valid, some fully valid. */
export function requestInit(desc: DescMessage, dict: Dictionary): fc.Arbitrary<Init> {
  return fc.oneof(
    { weight: 4, arbitrary: randomMessageInit(desc, dict) },
    { weight: 4, arbitrary: nearValidMessageInit(desc, dict) },
    { weight: 2, arbitrary: validMessageInit(desc, dict) },
  );
}
