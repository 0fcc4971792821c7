// The seeded soak for 60 s (issue 12 item 8): a real local stack under steady shopper load while the seeded
// schedule kills, restarts, stops the database and turns payment's knobs, some at once. Fails if any invariant
// breaks, if nothing was placed or injected, or if a fault could not be driven (a service that did not come back).
import { expect } from "chai";
import { runSoak } from "../../tools/traffic/soak/run.js";
import { soakSchedule } from "../../tools/traffic/soak/schedule.js";

describe("seeded soak, 60 s (local stack, real processes)", function () {
  this.timeout(420_000);

  it("injects the seeded faults under load and every invariant holds over the whole data set", async () => {
    const seed = 1;
    const r = await runSoak({ seed, durationMs: 60_000 });
    const planned = soakSchedule({ seed, durationMs: 60_000 });
    // What was injected is the seeded schedule, each fault really driven.
    expect(r.faults.map((f) => [f.id, f.kind, f.unit, f.atMs])).to.deep.equal(planned.map((f) => [f.id, f.kind, f.unit, f.atMs]));
    expect(r.faults.length).to.be.at.least(3);
    expect(r.faults.flatMap((f) => f.problems.map((p) => `#${f.id}: ${p}`))).to.deep.equal([]);
    for (const f of r.faults) expect(f.endedMs - f.startedMs, `#${f.id} lasted its planned time`).to.be.at.least(f.durationMs - 100);
    // Orders were placed and confirmed while it ran.
    expect(r.placed.ok).to.be.above(0);
    expect(r.placed.confirmed).to.be.above(0);
    // Every invariant, and the three headline figures.
    const broken = r.invariants.results.filter((i) => !i.ok);
    expect(broken, JSON.stringify(broken, null, 1)).to.deep.equal([]);
    expect(r.invariants.results.find((i) => i.name === "accepted-orders-exist")?.checked).to.equal(r.placed.ok);
    expect([r.lost, r.duplicateCharges, r.stuck]).to.deep.equal([0, 0, 0]);
    // Every service came back after every fault.
    expect(r.worstServingAfterMs).to.be.a("number");
  });
});
