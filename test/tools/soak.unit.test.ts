// The soak's schedule generator (tools/traffic/soak/schedule.ts): reproducible from its seed, within the run, never
// two faults on one resource at once, every kind of fault drawn, some overlapping.
import { expect } from "chai";
import { describeFault, overlapping, SOAK_FAULT_KINDS, soakSchedule } from "../../tools/traffic/soak/schedule.js";

describe("soak schedule (seeded)", () => {
  it("gives the same schedule for the same seed and another for another seed", () => {
    const a = soakSchedule({ seed: 7, durationMs: 600_000 });
    expect(soakSchedule({ seed: 7, durationMs: 600_000 })).to.deep.equal(a);
    expect(soakSchedule({ seed: 8, durationMs: 600_000 })).to.not.deep.equal(a);
  });

  it("keeps every fault inside the run with a quiet start and end, and ids in order", () => {
    for (const seed of [1, 2, 3, 42]) {
      const s = soakSchedule({ seed, durationMs: 60_000 });
      expect(s.length, `seed ${seed}`).to.be.at.least(3);
      s.forEach((f, i) => {
        expect(f.id).to.equal(i + 1);
        expect(f.atMs).to.be.at.least(3000);
        expect(f.atMs + f.durationMs).to.be.at.most(60_000 - 12_000);
        if (i > 0) expect(f.atMs).to.be.above(s[i - 1].atMs);
      });
    }
  });

  it("never puts two faults on one process, on the database or on payment's knobs at once", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const s = soakSchedule({ seed, durationMs: 600_000 });
      const res = (f: (typeof s)[number]) => (f.kind === "db-stop" ? "database" : f.unit);
      for (const f of s)
        for (const g of s) if (f.id < g.id && res(f) === res(g)) expect(g.atMs, `seed ${seed}: #${f.id} and #${g.id}`).to.be.at.least(f.atMs + f.durationMs);
    }
  });

  it("draws every kind of fault over ten minutes, some overlapping, with their knob settings", () => {
    const s = soakSchedule({ seed: 1, durationMs: 600_000 });
    expect(new Set(s.map((f) => f.kind))).to.have.all.keys(...SOAK_FAULT_KINDS);
    expect(overlapping(s)).to.be.above(0);
    for (const f of s) {
      if (f.kind === "payment-slow") expect(f.delayMs).to.be.within(2000, 6000);
      if (f.kind === "payment-fail") expect(f.errorPercent).to.be.within(10, 100);
      if (f.kind === "kill" || f.kind === "sigterm") expect(f.unit).to.be.a("string");
      expect(describeFault(f))
        .to.be.a("string")
        .and.not.match(/undefined/);
    }
  });

  it("refuses a seed that is not a whole number", () => {
    expect(() => soakSchedule({ seed: 1.5, durationMs: 60_000 })).to.throw(RangeError, /seed/);
  });
});
