// Bad input on every RPC of the four services (grpc-js engine), in-process over real gRPC + the real database.
import { expect } from "chai";
import { DELIBERATE_CODES, type FuzzResult, fuzzRpcs } from "../tools/fuzz/index.js";
import { type InProcessStack, startInProcessStack } from "./support/stack.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

describe("fuzz: bad input on every RPC (grpc-js engine)", function () {
  this.timeout(300_000);
  let stack: InProcessStack;
  let results: FuzzResult[];

  before(async () => {
    stack = await startInProcessStack({ engine: (process.env.FUZZ_ENGINE as "grpc-js") ?? "grpc-js" });
    const t0 = Date.now();
    results = await fuzzRpcs(stack.targets, { runsPerRpc: RUNS, seed: 20261125 });
    console.log(`fuzz took ${Date.now() - t0} ms`);
    for (const r of results)
      console.log(
        r.rpc,
        r.tried,
        JSON.stringify(r.codes),
        r.healthyAfter,
        r.unexpected ? JSON.stringify(r.unexpected.slice(0, 2)) : "",
        r.frameOutcomes ? JSON.stringify(r.frameOutcomes).slice(0, 600) : "",
      );
  });
  after(() => stack?.stop());

  it("answers every request with a deliberate status", () => {
    for (const r of results.filter((x) => !x.frameOutcomes)) {
      expect(r.tried, r.rpc).to.be.at.least(RUNS);
      expect(r.unexpected ?? [], r.rpc).to.deep.equal([]);
    }
  });
});
