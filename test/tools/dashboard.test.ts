// deploy/observability/meshmart-dashboard.json queries only metrics that exist, with labels they carry: the
// kit's own (read from its prom-client registry, not a copied list) and Istio's documented standard metrics.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { checkDashboard, kitMetrics } from "../../tools/checks/manifests/dashboard.js";
import { ROOT } from "../../tools/checks/manifests/render.js";
import type { Obj } from "../../tools/checks/manifests/types.js";

const FILE = "deploy/observability/meshmart-dashboard.json";
const load = (): Obj => JSON.parse(readFileSync(join(ROOT, FILE), "utf8"));
const exprs = (d: Obj): string[] => d.panels.flatMap((p: Obj) => (p.targets ?? []).map((t: Obj) => t.expr as string));

describe("Grafana dashboard: every query names a real metric and label", () => {
  it("passes, and covers the golden signals per service (Istio) and per gRPC method (the kit)", () => {
    const dashboard = load();
    expect(checkDashboard(FILE, dashboard)).to.deep.equal([]);
    const all = exprs(dashboard).join("\n");
    for (const metric of [
      "istio_requests_total",
      "istio_request_duration_milliseconds_bucket",
      "grpc_server_handled_total",
      "grpc_server_handling_seconds_bucket",
    ])
      expect(all, metric).to.contain(`${metric}{`);
    expect(all).to.match(/grpc_response_status/);
    expect(all).to.match(/by \(grpc_method, grpc_code\)/);
    expect(all).to.match(/histogram_quantile\(0\.99,/);
    expect(all).to.match(/histogram_quantile\(0\.5,/);
  });

  it("knows the kit's metrics from its registry, histograms as buckets", () => {
    const kit = kitMetrics();
    expect(kit.get("grpc_server_handled_total")?.labels).to.include.members(["grpc_service", "grpc_method", "grpc_code"]);
    expect(kit.get("grpc_server_handling_seconds_bucket")?.labels).to.include("le");
    expect(kit.has("grpc_server_handling_seconds")).to.equal(false);
  });

  it("fails a metric that nothing exports", () => {
    const dashboard = load();
    dashboard.panels[1].targets[0].expr = dashboard.panels[1].targets[0].expr.replace("istio_requests_total", "istio_request_total");
    expect(checkDashboard(FILE, dashboard).map((p) => p.message)).to.include.members([
      `panel "${dashboard.panels[1].title}" query A: metric istio_request_total is neither exported by the kit nor an Istio standard metric`,
    ]);
  });

  it("fails a label the metric does not carry, in a selector or a grouping", () => {
    const dashboard = load();
    const panel = dashboard.panels.find((p: Obj) => (p.targets ?? []).some((t: Obj) => /grpc_code!="OK"/.test(t.expr)));
    panel.targets[0].expr = panel.targets[0].expr
      .replace('grpc_code!="OK"', 'grpc_status!="OK"')
      .replace("by (grpc_method, grpc_code)", "by (grpc_methods, grpc_code)");
    const messages = checkDashboard(FILE, dashboard).map((p) => p.message);
    expect(
      messages.some((m) => /grpc_server_handled_total has no label grpc_status/.test(m)),
      messages.join("\n"),
    ).to.equal(true);
    expect(
      messages.some((m) => /groups by grpc_methods/.test(m)),
      messages.join("\n"),
    ).to.equal(true);
  });
});
