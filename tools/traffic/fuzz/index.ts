// The bad-input fuzzer: ≥ N generated requests per RPC of the four services, sent as raw protobuf bytes over
// a real grpc-js channel (so invalid UTF-8, unknown fields and broken encodings reach the server), plus raw
// HTTP/2 requests with broken gRPC framing. Reports the status codes seen per RPC and whether every service
// still answers Health/Check SERVING afterwards. Used by test/fuzz*.test.ts and by `npm run reliability`.
//
// Side effects on the target (it is a real stack): users registered, stock reserved/committed/released,
// charges and refunds for made-up order ids, real orders placed by the fuzz user. Reservations the fuzzer
// left RESERVED are released at the end, so stock + committed + reserved still adds up. Login fuzzing trips
// identity's per-source login limit for the fuzzer's address for a few minutes (that is the point of it).
import { randomBytes } from "node:crypto";
import { create, type DescMessage, type DescMethod, type DescService, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "#gen/health/v1/health_pb.js";
import { CatalogService, type ReleaseStockRequestSchema, type ReserveStockResponseSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import {
  IdentityService,
  LoginRequestSchema,
  LoginResponseSchema,
  RegisterRequestSchema,
  RegisterResponseSchema,
} from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { type Dictionary, requestInit } from "./arbitraries.js";
import { frameCases, sendFrames } from "./frames.js";
import { applyDamage, type Damage, damage } from "./wire.js";

export interface FuzzTargets {
  identity: string;
  catalog: string;
  orders: string;
  payment: string;
}

export interface FuzzOptions {
  runsPerRpc: number;
  seed?: number;
  /** Calls in flight per RPC (default 16). */
  concurrency?: number;
  /** Deadline of every call (default 5000 ms): a reply later than this counts as deadline_exceeded. */
  deadlineMs?: number;
  /** Also send raw HTTP/2 frames with broken gRPC framing (default true); `frameRuns` random ones per service. */
  frames?: boolean;
  frameRuns?: number;
  /** The servers' receive limit, for the oversized-message case (default 1 MiB, the kit's). */
  maxReceiveBytes?: number;
  /** Only these RPCs ("Service/Method" or "Method"); default all. */
  only?: string[];
}

export interface Unexpected {
  code: string;
  message: string;
  /** The request bytes, hex, to replay. */
  request: string;
}

export interface FuzzResult {
  rpc: string;
  tried: number;
  codes: Record<string, number>;
  healthyAfter: boolean;
  /** Wall time of this row. */
  ms?: number;
  /** Up to 5 calls answered with a code outside DELIBERATE_CODES (for the failure message). */
  unexpected?: Unexpected[];
  /** Raw-frame rows only: the outcome of each case, by case name. */
  frameOutcomes?: Record<string, string[]>;
}

/**
 * Codes a service may answer deliberately to bad input. Not INTERNAL or UNKNOWN (a bug), not
 * DEADLINE_EXCEEDED (a hang), not UNAVAILABLE/CANCELLED (a crash or reset).
 */
export const DELIBERATE_CODES = new Set([
  "ok",
  "invalid_argument",
  "not_found",
  "unauthenticated",
  "permission_denied",
  "failed_precondition",
  "already_exists",
  "resource_exhausted",
  "out_of_range",
  "aborted",
  "unimplemented",
]);

const SERVICES: [keyof FuzzTargets, DescService][] = [
  ["identity", IdentityService],
  ["catalog", CatalogService],
  ["payment", PaymentService],
  ["orders", OrderService],
];

/** Values the fuzzer starts with; responses add more (SKUs, order, payment and reservation ids). */
const SEED_DICTIONARY: Record<string, string[]> = {
  currency_code: ["USD"],
  number: ["4242424242424242", "4000000000000002", "4000000000009995", "4111111111111111"],
};

const codeName = (code: number) => (grpc.status[code] ?? `code_${code}`).toLowerCase();
const identity = (b: Buffer) => b;

interface Reply {
  code: string;
  message: string;
  bytes?: Buffer;
}

function rawClient(target: string): grpc.Client {
  // No client-side limits: oversized messages must reach the server to be refused there.
  return new grpc.Client(target, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1, "grpc.max_receive_message_length": -1 });
}

function call(client: grpc.Client, method: DescMethod, bytes: Uint8Array, headers: Record<string, string>, deadlineMs: number): Promise<Reply> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      identity,
      identity,
      Buffer.from(bytes),
      md,
      { deadline: Date.now() + deadlineMs },
      (err, value) => resolve(err ? { code: codeName(err.code), message: err.details } : { code: "ok", message: "", bytes: value as Buffer }),
    );
  });
}

async function typedCall<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: DescMethod,
  input: I,
  output: O,
  value: Parameters<typeof create<I>>[1],
  headers: Record<string, string> = {},
): Promise<MessageShape<O>> {
  const reply = await call(client, method, toBinary(input, create(input, value)), headers, 10_000);
  if (reply.code !== "ok" || !reply.bytes) throw new Error(`${method.name}: ${reply.code} ${reply.message}`);
  return fromBinary(output, reply.bytes);
}

/**
 * Whether the whole server ("" service) is SERVING or becomes so within `withinMs`, by Health/Watch: a
 * readiness check can miss one beat on a loaded machine (the database slow to answer its ping), which is
 * not what "unhealthy after the fuzz" means; a crashed or wedged server never reports SERVING.
 */
export function healthy(target: string, withinMs = 15_000): Promise<boolean> {
  const client = rawClient(target);
  const request = Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)));
  return new Promise((resolve) => {
    const stream = client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", identity, identity, request, new grpc.Metadata(), {
      deadline: Date.now() + withinMs,
    });
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      stream.cancel();
      client.close();
      resolve(ok);
    };
    stream.on("data", (b: Buffer) => {
      if (fromBinary(HealthCheckResponseSchema, b).status === HealthCheckResponse_ServingStatus.SERVING) done(true);
    });
    stream.on("error", () => done(false));
    stream.on("end", () => done(false));
  });
}

/** Adds the non-empty string fields of a decoded response to the dictionary, by field name. */
function harvest(desc: DescMessage, message: Record<string, unknown>, dict: Dictionary, depth = 0) {
  if (depth > 3) return;
  for (const f of desc.fields) {
    const v = message[f.localName];
    if (f.fieldKind === "scalar" && typeof v === "string" && v !== "" && v.length <= 64) {
      const set = dict.get(f.name) ?? new Set<string>();
      if (set.size < 64) set.add(v);
      dict.set(f.name, set);
    } else if (f.fieldKind === "message" && v) harvest(f.message, v as Record<string, unknown>, dict, depth + 1);
    else if (f.fieldKind === "list" && f.listKind === "message")
      for (const item of (v as unknown[]) ?? []) harvest(f.message, item as Record<string, unknown>, dict, depth + 1);
  }
}

async function pool<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await run(items[next++]);
    }),
  );
}

type Auth = "token" | "none" | "garbage";
const authArb: fc.Arbitrary<Auth> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("token" as const) },
  { weight: 1, arbitrary: fc.constant("none" as const) },
  { weight: 1, arbitrary: fc.constant("garbage" as const) },
);

/** A user of the fuzzer's own, so calls needing a token get past authentication. */
async function fuzzUser(target: string, dict: Dictionary): Promise<string> {
  const client = rawClient(target);
  try {
    const email = `fuzz-${randomBytes(6).toString("hex")}@example.com`;
    const password = `fuzz-${randomBytes(6).toString("hex")}-9`;
    await typedCall(client, IdentityService.method.register, RegisterRequestSchema, RegisterResponseSchema, { email, password });
    const login = await typedCall(client, IdentityService.method.login, LoginRequestSchema, LoginResponseSchema, { email, password });
    dict.set("email", new Set([email]));
    dict.set("password", new Set([password]));
    return login.accessToken;
  } finally {
    client.close();
  }
}

/** Fuzzes every RPC of the four services at `targets`; see the file comment for what it leaves behind. */
export async function fuzzRpcs(targets: FuzzTargets, opts: FuzzOptions): Promise<FuzzResult[]> {
  const seed = opts.seed ?? Date.now() % 2 ** 31;
  const concurrency = opts.concurrency ?? 16;
  const deadlineMs = opts.deadlineMs ?? 5000;
  const dict: Dictionary = new Map(Object.entries(SEED_DICTIONARY).map(([k, v]) => [k, new Set(v)]));
  const token = await fuzzUser(targets.identity, dict);
  const results: FuzzResult[] = [];
  const reservations = new Set<string>();
  const wanted = (m: DescMethod) => !opts.only || opts.only.includes(m.name) || opts.only.includes(`${m.parent.name}/${m.name}`);

  for (const [key, svc] of SERVICES) {
    const client = rawClient(targets[key]);
    try {
      for (const method of svc.methods.filter(wanted)) {
        const rpc = `${svc.typeName}/${method.name}`;
        const inputs = fc.sample(fc.tuple(requestInit(method.input, dict), damage, authArb, fc.string({ unit: "grapheme-ascii", maxLength: 40 })), {
          numRuns: opts.runsPerRpc,
          seed: seed + results.length,
        });
        const codes: Record<string, number> = {};
        const unexpected: Unexpected[] = [];
        const started = Date.now();
        await pool(inputs, concurrency, async ([init, dmg, auth, junk]) => {
          const bytes = encode(method.input, init, dmg);
          const headers: Record<string, string> =
            auth === "token"
              ? { authorization: `Bearer ${token}` }
              : auth === "garbage"
                ? { authorization: `Bearer ${junk.replace(/[^\x21-\x7e]/g, "x") || "x"}` }
                : {};
          const reply = await call(client, method, bytes, headers, deadlineMs);
          codes[reply.code] = (codes[reply.code] ?? 0) + 1;
          if (!DELIBERATE_CODES.has(reply.code) && unexpected.length < 5)
            unexpected.push({ code: reply.code, message: reply.message, request: Buffer.from(bytes).toString("hex").slice(0, 2000) });
          if (reply.bytes) {
            const out = fromBinary(method.output, reply.bytes);
            harvest(method.output, out as never, dict);
            if (method === CatalogService.method.reserveStock) {
              const r = (out as MessageShape<typeof ReserveStockResponseSchema>).reservation;
              if (r) reservations.add(r.reservationId);
            }
          }
        });
        const ms = Date.now() - started;
        results.push({ rpc, tried: inputs.length, codes, healthyAfter: await healthy(targets[key]), ms, ...(unexpected.length ? { unexpected } : {}) });
      }
      if (key === "catalog") await releaseAll(client, reservations);
    } finally {
      client.close();
    }
  }

  if (opts.frames ?? true) {
    for (const [key, svc] of SERVICES) {
      const method = svc.methods[0];
      const cases = frameCases(`/${svc.typeName}/${method.name}`, { maxReceiveBytes: opts.maxReceiveBytes ?? 1024 * 1024, random: opts.frameRuns ?? 50, seed });
      const outcomes = await sendFrames(targets[key], cases, deadlineMs);
      const codes: Record<string, number> = {};
      for (const list of Object.values(outcomes)) for (const o of list) codes[o] = (codes[o] ?? 0) + 1;
      results.push({ rpc: `${svc.typeName} raw frames`, tried: cases.length, codes, healthyAfter: await healthy(targets[key]), frameOutcomes: outcomes });
    }
  }
  return results;
}

function encode(desc: DescMessage, init: Record<string, unknown>, dmg: Damage): Uint8Array {
  return applyDamage(desc, toBinary(desc, create(desc, init as never)), dmg);
}

/** Releases what the fuzzer reserved and nobody committed or released (RESERVED stock would be stuck). */
async function releaseAll(client: grpc.Client, ids: Set<string>) {
  const method = CatalogService.method.releaseStock;
  await pool([...ids], 8, async (reservationId) => {
    const body: MessageShape<typeof ReleaseStockRequestSchema> = create(method.input, { reservationId });
    await call(client, method, toBinary(method.input, body), {}, 10_000);
  });
}
