// The load generator's own logic, without a network: the open-loop schedule (arrival times, a slow
// target, a blocked event loop, the in-flight cap, abort), the per-second timeline, the latency
// histogram math, the seeded mix and the CLI's values.
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { formatReadyLine, parseReadyLine } from "../../tools/stack/ready-line.js";
import { parseDuration, parseTargets } from "../../tools/traffic/load/args.js";
import { latencyHistogram, merged, recordMs, summarize } from "../../tools/traffic/load/histogram.js";
import { type Op, opPicker, parseMix, seededRng } from "../../tools/traffic/load/mix.js";
import { Recorder, type SecondStats } from "../../tools/traffic/load/recorder.js";
import { arrivalCount, checkBounds, DROPPED, dueMs, MAX_RATE, type Outcome, runOpenLoop } from "../../tools/traffic/load/schedule.js";
import { codeName, codeOf } from "../../tools/traffic/load/shopper.js";

const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("load generator: arrival schedule", () => {
  it("spaces arrivals 1/rate apart from the start, the first at 0", () => {
    expect(arrivalCount(50, 1000)).to.equal(50);
    expect(arrivalCount(3, 1000)).to.equal(3); // no floating-point loss of the last arrival
    expect(arrivalCount(0.5, 10_000)).to.equal(5);
    expect(arrivalCount(7, 2500)).to.equal(17);
    expect([0, 1, 2, 49].map((i) => dueMs(i, 50))).to.deep.equal([0, 20, 40, 980]);
    expect(dueMs(3, 0.5)).to.equal(6000);
  });

  it("refuses rates, durations and in-flight caps out of bounds, naming the option", () => {
    expect(() => checkBounds({ rate: 0, durationMs: 1000 })).to.throw(RangeError, /rate/);
    expect(() => checkBounds({ rate: MAX_RATE + 1, durationMs: 1000 })).to.throw(RangeError, /rate/);
    expect(() => checkBounds({ rate: Number.NaN, durationMs: 1000 })).to.throw(RangeError, /rate/);
    expect(() => checkBounds({ rate: 10, durationMs: 0 })).to.throw(RangeError, /durationMs/);
    expect(() => checkBounds({ rate: 10, durationMs: 11 * 60_000 })).to.throw(RangeError, /durationMs/);
    expect(() => checkBounds({ rate: 10, durationMs: 1000, maxInFlight: 0 })).to.throw(RangeError, /maxInFlight/);
    expect(() => checkBounds({ rate: 10, durationMs: 1000, maxInFlight: 5 })).not.to.throw();
  });

  it("keeps sending on schedule while the target is slow (open loop), latency counted from the due time", async () => {
    const outcomes: Outcome<number>[] = [];
    const result = await runOpenLoop({
      rate: 100,
      durationMs: 300,
      next: (i) => i,
      send: () => wait(150).then(() => "ok"),
      onOutcome: (o) => outcomes.push(o),
    });
    expect(result).to.include({ sent: 30, completed: 30, dropped: 0 });
    // A closed loop with one caller would never have more than one call out; this one does not wait for answers.
    expect(result.peakInFlight).to.be.greaterThan(1);
    expect(outcomes.map((o) => o.index).sort((a, b) => a - b)).to.deep.equal([...Array(30).keys()]);
    for (const o of outcomes) {
      expect(o.dueMs).to.equal(o.index * 10);
      expect(o.latencyMs, `arrival ${o.index}`).to.be.at.least(145); // timers may round down by a millisecond or so
    }
  });

  it("charges a late send to latency: arrivals held up by a blocked event loop are sent at once and timed from when they were due", async () => {
    const outcomes: Outcome<number>[] = [];
    const result = await runOpenLoop({
      rate: 100,
      durationMs: 300,
      next: (i) => i,
      send: async (i) => {
        if (i === 0) {
          const until = performance.now() + 200;
          while (performance.now() < until); // the process is stuck for 200 ms, as under a GC pause or CPU starvation
        }
        return "ok";
      },
      onOutcome: (o) => outcomes.push(o),
    });
    expect(result.sent).to.equal(30); // the backlog is sent, not skipped
    expect(result.sendLagMs.max, "the generator reports its own lag").to.be.at.least(185);
    const byIndex = new Map(outcomes.map((o) => [o.index, o]));
    // Arrival 1 was due at 10 ms but could only go out after 200 ms: its latency shows the wait.
    expect(byIndex.get(1)?.latencyMs).to.be.at.least(185);
    expect(byIndex.get(10)?.latencyMs).to.be.at.least(95);
  });

  it("drops arrivals beyond maxInFlight and counts them as such, never silently", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const outcomes: Outcome<number>[] = [];
    const result = await runOpenLoop({
      rate: 100,
      durationMs: 200,
      maxInFlight: 5,
      next: (i) => i,
      send: () => gate.then(() => "unavailable"),
      onOutcome: (o) => outcomes.push(o),
      onProgress: (ms) => ms >= 200 && release(), // answers come only once the whole schedule has run
    });
    expect(result).to.include({ sent: 20, completed: 5, dropped: 15, peakInFlight: 5 });
    const dropped = outcomes.filter((o) => o.code === DROPPED);
    expect(dropped).to.have.length(15);
    expect(dropped.every((o) => o.latencyMs === undefined)).to.equal(true);
    expect(outcomes.filter((o) => o.code === "unavailable").map((o) => o.index)).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it("stops arriving when aborted and still reports the calls in flight", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const outcomes: Outcome<number>[] = [];
    const result = await runOpenLoop({
      rate: 50,
      durationMs: 60_000,
      signal: controller.signal,
      next: (i) => i,
      send: () => wait(50).then(() => "ok"),
      onOutcome: (o) => outcomes.push(o),
    });
    expect(result.sent).to.be.within(1, 100);
    expect(result.completed).to.equal(result.sent);
    expect(outcomes).to.have.length(result.sent);
  });
});

describe("load generator: per-second timeline", () => {
  it("puts each arrival in the second it was due, reports a second only when all of it is answered, and adds up", () => {
    const seen: SecondStats[] = [];
    const r = new Recorder<Op>(2500, (s) => seen.push(s));
    r.arrival("getProduct", 100);
    r.arrival("placeOrder", 900);
    r.arrival("getProduct", 1500);
    r.arrival("browse", 2400);
    r.scheduledThrough(1200);
    r.outcome("getProduct", 100, "ok", 4);
    expect(seen, "second 0 still has a call out").to.have.length(0);
    r.outcome("placeOrder", 900, "unavailable", 30);
    expect(seen.map((s) => s.t)).to.deep.equal([0]);
    expect(seen[0]).to.include({ sent: 2, ok: 1, errors: 1 });
    expect(seen[0].codes).to.deep.equal({ ok: 1, unavailable: 1 });
    r.outcome("getProduct", 1500, "ok", 2);
    r.outcome("browse", 2400, DROPPED);
    expect(seen, "second 1 is not over until the schedule passes it").to.have.length(1);
    r.scheduleDone();
    expect(seen.map((s) => s.t)).to.deep.equal([0, 1, 2]);
    expect(seen[2]).to.include({ sent: 1, ok: 0, errors: 1, p50Ms: 0 }); // dropped: counted, no latency

    const byOp = r.byOp();
    expect(byOp.getProduct).to.deep.include({ count: 2, codes: { ok: 2 } });
    expect(byOp.browse).to.deep.include({ count: 1, codes: { dropped: 1 } });
    expect(byOp.browse?.latencyMs.max).to.equal(0);
    const sum = (f: (s: SecondStats) => number) => r.timeline().reduce((n, s) => n + f(s), 0);
    expect(sum((s) => s.sent)).to.equal(4);
    expect(sum((s) => s.ok + s.errors)).to.equal(4);
  });
});

describe("load generator: latency histograms", () => {
  it("gives the known percentiles of known inputs (within HdrHistogram's 0.1%)", () => {
    const h = latencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) recordMs(h, ms);
    const s = summarize(h);
    expect(s.p50).to.be.closeTo(500, 0.5);
    expect(s.p90).to.be.closeTo(900, 0.9);
    expect(s.p99).to.be.closeTo(990, 1);
    expect(s.max).to.be.closeTo(1000, 1);
    expect(s.mean).to.be.closeTo(500.5, 0.5);
  });

  it("keeps sub-millisecond latencies to the microsecond and clamps nonsense instead of throwing", () => {
    const h = latencyHistogram();
    recordMs(h, 0.25);
    recordMs(h, 0.75);
    expect(summarize(h).max).to.be.closeTo(0.75, 0.001);
    expect(summarize(h).p50).to.be.closeTo(0.25, 0.001);
    recordMs(h, -3); // a clock step backwards
    recordMs(h, 1e12);
    expect(h.totalCount).to.equal(4);
    expect(summarize(h).max).to.be.closeTo(600_000, 600);
  });

  it("merges histograms into the histogram of all their values", () => {
    const low = latencyHistogram();
    const high = latencyHistogram();
    const all = latencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) {
      recordMs(ms <= 700 ? low : high, ms);
      recordMs(all, ms);
    }
    const m = merged([low, high]);
    expect(m.totalCount).to.equal(1000);
    expect(summarize(m)).to.deep.equal(summarize(all));
    expect(summarize(low).max).to.be.closeTo(700, 1);
  });

  it("never puts a percentile above the largest value recorded (HdrHistogram rounds up to its bucket's top)", () => {
    const h = latencyHistogram();
    recordMs(h, 73.824);
    expect(summarize(h)).to.include({ p50: 73.824, p99: 73.824, max: 73.824 });
  });

  it("answers zeros for an empty histogram (an op that was never answered)", () => {
    expect(summarize(latencyHistogram())).to.deep.equal({ p50: 0, p90: 0, p99: 0, max: 0, mean: 0 });
  });
});

describe("load generator: shopper mix and codes", () => {
  it("draws ops in proportion to the weights, the same sequence for the same seed", () => {
    const draw = (seed: number) => {
      const pick = opPicker({ getProduct: 3, placeOrder: 1 }, seededRng(seed));
      return Array.from({ length: 4000 }, pick);
    };
    const a = draw(7);
    expect(draw(7)).to.deep.equal(a);
    expect(draw(8)).not.to.deep.equal(a);
    expect(new Set(a)).to.deep.equal(new Set(["getProduct", "placeOrder"]));
    const share = a.filter((op) => op === "placeOrder").length / a.length;
    expect(share).to.be.within(0.2, 0.3); // weight 1 of 4
  });

  it("parses a mix and names what is wrong with a bad one", () => {
    expect(parseMix("placeOrder=1, getProduct=5")).to.deep.equal({ placeOrder: 1, getProduct: 5 });
    expect(() => parseMix("checkout=1")).to.throw(RangeError, /unknown op "checkout"/);
    expect(() => parseMix("login=-1")).to.throw(RangeError, /weight of login/);
    expect(() => parseMix("login")).to.throw(RangeError, /op=weight/);
    expect(() => parseMix("login=0")).to.throw(RangeError, /at least one weight/);
  });

  it("names outcomes with grpc's code names in lower case", () => {
    expect(codeName(Code.DeadlineExceeded)).to.equal("deadline_exceeded");
    expect(codeName(Code.Unavailable)).to.equal("unavailable");
    expect(codeOf(new ConnectError("no", Code.InvalidArgument))).to.equal("invalid_argument");
    expect(codeOf(new Error("not a gRPC error"))).to.equal("unknown");
  });
});

describe("load generator: command-line values", () => {
  it("reads durations and targets", () => {
    expect(parseDuration("10s")).to.equal(10_000);
    expect(parseDuration("500ms")).to.equal(500);
    expect(parseDuration("2m")).to.equal(120_000);
    expect(parseDuration("3")).to.equal(3000);
    expect(() => parseDuration("ten")).to.throw(RangeError, /--duration/);
    expect(parseTargets('{"identity":"a:1","catalog":"b:2","orders":"c:3"}')).to.deep.equal({
      identity: "a:1",
      catalog: "b:2",
      orders: "c:3",
      payment: undefined,
    });
    // A `meshmart ready` line's JSON works as is, in both modes.
    expect(parseTargets('{"identity":{"grpc":"a:1"},"catalog-v1":{"grpc":"b:2"},"orders":{"grpc":"c:3"},"payment":{"grpc":"d:4"}}')).to.deep.equal({
      identity: "a:1",
      catalog: "b:2",
      orders: "c:3",
      payment: "d:4",
    });
    expect(parseTargets('{"monolith":{"grpc":"m:5"}}')).to.deep.equal({ identity: "m:5", catalog: "m:5", orders: "m:5", payment: "m:5" });
    expect(() => parseTargets('{"identity":"a:1"}')).to.throw(RangeError, /no address for catalog/);
  });

  it("writes and reads the `meshmart ready` line through one helper; other lines are not it", () => {
    const ready = { monolith: { grpc: "127.0.0.1:5", admin: "http://127.0.0.1:6" }, mongodb: "mongodb://127.0.0.1:7/" };
    const line = formatReadyLine(ready);
    expect(line).to.match(/^meshmart ready \{/);
    expect(parseReadyLine(line)).to.deep.equal(ready);
    expect(parseTargets(line.slice(line.indexOf("{")))).to.deep.equal({
      identity: "127.0.0.1:5",
      catalog: "127.0.0.1:5",
      orders: "127.0.0.1:5",
      payment: "127.0.0.1:5",
    });
    expect(parseReadyLine('{"level":30,"msg":"meshmart ready soon"}')).to.equal(undefined);
  });
});
