// The local kill-payment experiment end to end (issue 5): payment is SIGKILLed for 5 s under load on a real
// local stack and restarted; the report must show the invariants held over the whole data set (no duplicate
// charge, no lost or stuck order) and its numbers must agree with each other and with the files written.
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { runExperiment } from "../../tools/traffic/experiment/run.js";
import { tempDirFor } from "../support/temp-dir.js";

describe("experiment kill-payment (local stack, real processes)", function () {
  this.timeout(180_000);
  const reports = tempDirFor("meshmart-reports-");

  it("kills payment for 5 s under load; invariants hold and the report adds up", async () => {
    const { report, files } = await runExperiment({
      name: "kill-payment",
      durationMs: 14_000,
      fault: { startAfterMs: 3000, durationMs: 5000 },
      rate: 8,
      reportsDir: reports.path,
    });
    // The fault really happened, for about the planned time.
    expect(report.fault.events.map((e) => e.what)).to.deep.equal(["payment killed (SIGKILL)", "payment starting again", "payment SERVING"]);
    expect(report.fault.actual.endMs - report.fault.actual.startMs, "payment stayed down for the planned 5 s").to.be.at.least(4900);
    // Invariants over the whole data set: no duplicate charge, nothing lost, nothing PENDING after recovery.
    if ("skipped" in report.invariants) throw new Error("invariants were skipped");
    const failed = report.invariants.results.filter((r) => !r.ok);
    expect(failed, JSON.stringify(failed, null, 1)).to.deep.equal([]);
    expect(report.invariants.counts.pending).to.equal(0);
    const placed = report.run.placedOrders.filter((o) => o.code === "ok").length;
    expect(report.invariants.results.find((r) => r.name === "accepted-orders-exist")?.checked).to.equal(placed);
    expect(report.invariants.counts.orders).to.be.at.least(placed);
    // The report's own arithmetic, and the outcome counts against the placed orders.
    expect(report.consistency.filter((c) => !c.ok)).to.deep.equal([]);
    expect(Object.values(report.orderOutcomes).reduce((a, b) => a + b, 0)).to.equal(report.run.placedOrders.length);
    expect(report.checks.find((c) => c.check.startsWith("invariants"))?.ok).to.equal(true);
    // Not held trivially: orders were confirmed, and every status-code check of the hypothesis held.
    expect(report.orderOutcomes["ok CONFIRMED"] ?? 0).to.be.above(0);
    const codeChecks = report.checks.filter((c) => c.check.startsWith("status codes"));
    expect(codeChecks.length).to.be.above(0);
    expect(codeChecks.filter((c) => !c.ok)).to.deep.equal([]);
    // The files say the same as the object.
    const json = JSON.parse(readFileSync(files?.json as string, "utf8"));
    expect(json.run.sent).to.equal(report.run.sent);
    expect(json.invariants.results).to.deep.equal(report.invariants.results);
    const md = readFileSync(files?.md as string, "utf8");
    expect(md).to.contain(`# Experiment kill-payment (local)`);
    for (const r of report.invariants.results) expect(md).to.contain(`| ✅ | ${r.description} | ${r.checked} | 0 |`);
    expect(readFileSync(files?.svg as string, "utf8")).to.match(/^<svg[\s\S]*fill="#f4a261"[\s\S]*<\/svg>\n$/);
    // Issue 16: the waterfalls of the slowest order and of a failed one, the latter from the fault window with
    // payment's UNAVAILABLE on its failing span; the chart points at both.
    const { slowest, failed: broken } = report.traces ?? {};
    expect(slowest?.rows[0].name).to.equal("OrderService/PlaceOrder");
    expect(new Set(slowest?.rows.map((r) => r.service))).to.include.members(["orders", "catalog v1"]);
    const at = (broken?.startMs ?? 0) - Date.parse(report.startedAt);
    expect(at, "the failed order is from the fault window").to.be.within(report.fault.actual.startMs, report.fault.actual.endMs);
    expect(broken?.rows.some((r) => r.name === "→ PaymentService/Charge" && r.code === "UNAVAILABLE" && r.error)).to.equal(true);
    expect(files?.traces).to.have.length(2);
    for (const f of files?.traces ?? []) {
      // a whole SVG, with the PlaceOrder span's row and the run strip's shaded fault window (in either order)
      const svg = readFileSync(f, "utf8");
      expect(svg).to.match(/^<svg[\s\S]*<\/svg>\n$/);
      expect(svg).to.contain("PlaceOrder").and.to.contain('fill="#f4a261"');
    }
    expect(readFileSync(files?.traces[1] as string, "utf8")).to.contain("in the fault window");
    expect(md).to.contain("## Traces").and.to.contain("-slowest-order.svg").and.to.contain("-failed-order.svg");
    expect(readFileSync(files?.svg as string, "utf8")).to.contain("failed order");
  });
});
