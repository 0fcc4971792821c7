// Bad input on every RPC of the four services, on the launcher's stack (each service its own process, real gRPC
// sockets, the real database):
// ≥ 1000 generated messages per RPC on the grpc-js engine (all RPCs), 250 on connect-node (a subset), plus
// raw HTTP/2 requests with broken framing. Every answer must be a deliberate status and every service must
// still be SERVING afterwards. FUZZ_RUNS / FUZZ_SEED override the count and the seed (to replay a failure).
import { expect } from "chai";
import { type Stack, serviceTargets, startStack, UNITS } from "../tools/stack/launcher.js";
import { DELIBERATE_CODES, type FuzzResult, fuzzRpcs } from "../tools/traffic/fuzz/index.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
/** Frame outcomes that are not an answer: the server reset the stream or never replied. */
const NOT_AN_ANSWER = ["internal", "unknown", "timeout", "reset"];
const RPC_COUNT = 16;
/** The fuzzer registers users by the dozen: the lowest accepted scrypt cost keeps that from dominating the run. */
const CHEAP_HASHES = { PASSWORD_HASH_LN: "10" };
const CONNECT_RUNS = Math.min(RUNS, 250);
/** Every unit on connect-node's server engine. */
const CONNECT_NODE = Object.fromEntries(UNITS.map((u) => [u, { ENGINE: "connect-node" }]));

function describeResults(results: FuzzResult[]): string {
  return results.map((r) => `${r.rpc} ${r.ms ?? ""}ms ${r.tried} ${JSON.stringify(r.codes)} healthy=${r.healthyAfter}`).join("\n");
}

function checks(get: () => FuzzResult[], rpcs: number, runs: number) {
  it("sends at least the required number of inputs to each RPC", () => {
    const rows = get().filter((r) => !r.frameOutcomes);
    expect(rows).to.have.length(rpcs);
    for (const r of rows) expect(r.tried, r.rpc).to.be.at.least(runs);
  });

  it("answers every input with a deliberate status: never INTERNAL, UNKNOWN, a crash or a hang", () => {
    for (const r of get().filter((x) => !x.frameOutcomes)) {
      expect(r.unexpected ?? [], r.rpc).to.deep.equal([]);
      for (const code of Object.keys(r.codes)) expect(DELIBERATE_CODES.has(code), `${r.rpc}: ${code}`).to.equal(true);
    }
  });

  it("gets past validation: every RPC sees more than INVALID_ARGUMENT, and calls succeed", () => {
    const rows = get().filter((r) => !r.frameOutcomes);
    for (const r of rows)
      expect(
        Object.keys(r.codes).filter((c) => c !== "invalid_argument"),
        r.rpc,
      ).to.not.be.empty;
    expect(rows.filter((r) => (r.codes.ok ?? 0) > 0).length).to.be.at.least(rpcs - 2);
  });

  it("answers broken gRPC framing, oversized messages included, with a status", () => {
    const frames = get().filter((r) => r.frameOutcomes);
    expect(frames).to.have.length(4);
    for (const r of frames) {
      expect(
        Object.keys(r.codes).filter((c) => NOT_AN_ANSWER.includes(c)),
        `${r.rpc} ${JSON.stringify(r.frameOutcomes)}`,
      ).to.deep.equal([]);
      expect(r.frameOutcomes?.["oversized message (limit + 1 KiB)"]).to.deep.equal(["resource_exhausted"]);
    }
  });

  it("leaves every service SERVING", () => {
    for (const r of get()) expect(r.healthyAfter, r.rpc).to.equal(true);
  });
}

describe("fuzz: bad input on every RPC (grpc-js engine)", function () {
  this.timeout(600_000);
  let stack: Stack;
  let results: FuzzResult[] = [];

  before(async () => {
    stack = await startStack({ logLevel: "warn", env: { identity: CHEAP_HASHES } });
    results = await fuzzRpcs(serviceTargets(stack), { runsPerRpc: RUNS, seed: SEED, concurrency: 8, deadlineMs: 15_000 });
    if (process.env.FUZZ_PRINT) console.log(describeResults(results));
  });
  after(() => stack?.stop());
  checks(() => results, RPC_COUNT, RUNS);
});

describe("fuzz: bad input on a subset of RPCs (connect-node engine)", function () {
  this.timeout(600_000);
  // ListProducts and PlaceOrder feed the dictionary (real SKUs, order ids), so GetProduct and GetOrder can succeed.
  const SUBSET = ["GetMe", "ListProducts", "GetProduct", "SearchProducts", "ReserveStock", "Charge", "PlaceOrder", "GetOrder"];
  let stack: Stack;
  let results: FuzzResult[] = [];

  before(async () => {
    stack = await startStack({ logLevel: "warn", env: { ...CONNECT_NODE, identity: { ENGINE: "connect-node", ...CHEAP_HASHES } } });
    results = await fuzzRpcs(serviceTargets(stack), { runsPerRpc: CONNECT_RUNS, seed: SEED + 1, concurrency: 8, deadlineMs: 15_000, only: SUBSET });
    if (process.env.FUZZ_PRINT) console.log(describeResults(results));
  });
  after(() => stack?.stop());
  checks(() => results, SUBSET.length, CONNECT_RUNS);
});
