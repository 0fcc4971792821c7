// Wire-level damage to an encoded request: what a typed client cannot send but the socket allows —
// unknown fields, invalid UTF-8 in a string field, wrong wire types, truncation, plain garbage.
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import fc from "fast-check";

export type Damage =
  | { kind: "none" }
  | { kind: "unknown-fields"; fields: { number: number; wire: "varint" | "len" | "fixed32" | "fixed64"; payload: Uint8Array; n: bigint }[] }
  | { kind: "invalid-utf8"; pick: number; bytes: number[] }
  | { kind: "wrong-wire-type"; pick: number }
  | { kind: "truncate"; at: number }
  | { kind: "garbage"; bytes: Uint8Array };

/** Byte sequences that are not UTF-8: a lone continuation, an overlong form, a surrogate, a cut sequence. */
const INVALID_UTF8 = [[0xff], [0x80], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x61, 0xfe, 0x62]];

export const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 2,
    arbitrary: fc
      .array(
        fc.record({
          number: fc.integer({ min: 100, max: 2 ** 29 - 1 }),
          wire: fc.constantFrom("varint" as const, "len" as const, "fixed32" as const, "fixed64" as const),
          payload: fc.uint8Array({ maxLength: 32 }),
          n: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        }),
        { minLength: 1, maxLength: 4 },
      )
      .map((fields) => ({ kind: "unknown-fields" as const, fields })),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("invalid-utf8" as const), pick: fc.nat(), bytes: fc.constantFrom(...INVALID_UTF8) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("wrong-wire-type" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("garbage" as const), bytes: fc.uint8Array({ maxLength: 64 }) }) },
);

/** String fields reachable from the top level: [field] or [message field, its string field]. */
function stringPaths(desc: DescMessage): DescField[][] {
  const paths: DescField[][] = [];
  for (const f of desc.fields) {
    if ((f.fieldKind === "scalar" || f.fieldKind === "list") && f.scalar === ScalarType.STRING) paths.push([f]);
    if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) {
      for (const g of f.message.fields) if ((g.fieldKind === "scalar" || g.fieldKind === "list") && g.scalar === ScalarType.STRING) paths.push([f, g]);
    }
  }
  return paths;
}

/** Applies the damage to `bytes`, the encoding of a `desc` message. Appended fields win (last one wins) or merge. */
export function applyDamage(desc: DescMessage, bytes: Uint8Array, d: Damage): Uint8Array {
  switch (d.kind) {
    case "none":
      return bytes;
    case "unknown-fields": {
      const w = new BinaryWriter();
      for (const f of d.fields) {
        if (f.wire === "varint") w.tag(f.number, WireType.Varint).uint64(f.n);
        else if (f.wire === "len") w.tag(f.number, WireType.LengthDelimited).bytes(f.payload);
        else if (f.wire === "fixed32") w.tag(f.number, WireType.Bit32).fixed32(Number(f.n & 0xffffffffn));
        else w.tag(f.number, WireType.Bit64).fixed64(f.n);
      }
      return concat(bytes, w.finish());
    }
    case "invalid-utf8": {
      const paths = stringPaths(desc);
      if (paths.length === 0) return applyDamage(desc, bytes, { kind: "garbage", bytes: Uint8Array.from(d.bytes) });
      const path = paths[d.pick % paths.length];
      const bad = Uint8Array.from(d.bytes);
      const w = new BinaryWriter();
      if (path.length === 1) w.tag(path[0].number, WireType.LengthDelimited).bytes(bad);
      else w.tag(path[0].number, WireType.LengthDelimited).bytes(new BinaryWriter().tag(path[1].number, WireType.LengthDelimited).bytes(bad).finish());
      return concat(bytes, w.finish());
    }
    case "wrong-wire-type": {
      if (desc.fields.length === 0) return concat(bytes, Uint8Array.of(0x0f)); // field 1, wire type 7: does not exist
      const f = desc.fields[d.pick % desc.fields.length];
      // A varint where a length-delimited field is declared, and vice versa.
      const scalarVarint = f.fieldKind === "scalar" && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES;
      const w = new BinaryWriter();
      if (scalarVarint) w.tag(f.number, WireType.LengthDelimited).bytes(Uint8Array.of(1, 2, 3));
      else w.tag(f.number, WireType.Varint).uint64(12345n);
      return concat(bytes, w.finish());
    }
    case "truncate":
      return bytes.length === 0 ? Uint8Array.of(0x0a, 0x05, 0x61) : bytes.subarray(0, d.at % bytes.length);
    case "garbage":
      return d.bytes;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
