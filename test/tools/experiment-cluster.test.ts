// The experiment runner's cluster path with the REAL kubectl against the local control plane (a real
// kube-apiserver holding meshmart as `skaffold dev -p mesh` deploys it; tools/stack/kube/): the experiment's YAML is
// applied, the load runs while the API server holds it, and the revert puts the base objects back, even when
// the load fails; a file the API server refuses stops before the load. The load here is a FAKE (a fixed run):
// the load through the mesh with istiod watching this API server is test/kube-mesh.test.ts. What still needs
// a fake kubectl (exec into a pod: no kubelet runs pods here) stays in test/tools/experiment.unit.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import type { ControlPlane } from "../../tools/stack/kube/control-plane.js";
import { clusterPlan, withClusterFault } from "../../tools/traffic/experiment/cluster.js";
import type { RunStats } from "../../tools/traffic/experiment/evaluate.js";
import { loadHypothesis } from "../../tools/traffic/experiment/hypothesis.js";
import { runExperiment } from "../../tools/traffic/experiment/run.js";
import { sharedControlPlane } from "../support/kube.js";

describe("experiments --target cluster with the real kubectl against a real API server (local control plane)", function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let dir: string;
  before(async () => {
    ({ cp } = await sharedControlPlane());
    dir = mkdtempSync(join(tmpdir(), "meshmart-experiment-cluster-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The payment VirtualService's first route's fault as the API server holds it now (undefined: none). */
  const paymentFault = async () => JSON.parse(await cp.kubectlOk(["-n", "meshmart", "get", "virtualservice", "payment", "-o", "json"])).spec.http[0].fault;

  it("applies the experiment's YAML, runs the load while the API server holds it, reverts even when the load fails", async () => {
    expect(await paymentFault(), "the base route injects no fault").to.equal(undefined);
    const plan = clusterPlan(loadHypothesis("payment-abort"));
    let during: unknown;
    const err = await withClusterFault(
      plan,
      async () => {
        during = await paymentFault();
        throw new Error("load failed");
      },
      cp.env(),
    ).catch((e: Error) => e);
    expect((err as Error).message).to.equal("load failed");
    expect(during).to.deep.equal({ abort: { grpcStatus: "UNAVAILABLE", percentage: { value: 50 } } });
    expect(await paymentFault(), "reverted: the base route again").to.equal(undefined);
  });

  it("a file the API server refuses stops before the load, with the server's message, and still reverts", async () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(
      broken,
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: payment, namespace: meshmart}\nspec:\n  hosts: [payment]\n  http:\n  - route:\n    - {destination: {host: payment}, weight: ninety}\n",
    );
    const plan = clusterPlan(loadHypothesis("payment-abort"));
    plan.apply[0].argv = ["kubectl", "apply", "-f", broken];
    let loaded = false;
    const err = await withClusterFault(plan, async () => (loaded = true), cp.env()).catch((e: Error) => e);
    expect((err as Error).message).to.match(/broken\.yaml failed \(exit 1\): .*VirtualService.*"payment".*weight/s);
    expect(loaded).to.equal(false);
    expect(await paymentFault()).to.equal(undefined);
  });

  it("on a `-p canary` cluster a canary experiment ends at the 90/10 it started from, not the base's 100% v1 (FAKE load)", async () => {
    const split = async () =>
      JSON.parse(await cp.kubectlOk(["-n", "meshmart", "get", "virtualservice", "catalog", "-o", "json"]))
        .spec.http.find((r: { name: string }) => r.name === "default")
        .route.map((d: { destination: { subset: string }; weight: number }) => `${d.destination.subset} ${d.weight}`);
    await cp.kubectlOk(["apply", "-k", "mesh/canary"]);
    try {
      expect(await split()).to.deep.equal(["v1 90", "v2 10"]);
      const plan = clusterPlan(loadHypothesis("canary-50"));
      const { result } = await withClusterFault(plan, split, cp.env());
      expect(result, "during the experiment").to.deep.equal(["v1 50", "v2 50"]);
      expect(await split(), "after: what was there").to.deep.equal(["v1 90", "v2 10"]);
    } finally {
      await cp.kubectlOk(["apply", "-k", "mesh"]); // the shared control plane goes back to the base for the other tests
    }
    expect(await split()).to.deep.equal(["v1 100"]);
  });

  it("runExperiment --target cluster records the real kubectl steps in the report (FAKE load: a fixed run)", async () => {
    const before = await cp.kubectlOk(["-n", "meshmart", "get", "virtualservice", "catalog", "-o", "jsonpath={.spec}"]);
    const lat = { p50: 5, p90: 8, p99: 9, max: 9, mean: 6 };
    const fixed: RunStats = {
      durationMs: 1000,
      rate: 10,
      sent: 10,
      completed: 10,
      byOp: { getProduct: { count: 10, codes: { ok: 10 }, latencyMs: lat } },
      timeline: [{ t: 0, sent: 10, ok: 10, errors: 0, codes: { ok: 10 }, p50Ms: 5, p99Ms: 9 }],
      placedOrders: [],
    };
    const { report } = await runExperiment({
      name: "canary-50",
      target: "cluster",
      runLoad: async () => ({ ...fixed, startedAt: new Date().toISOString() }),
      env: cp.env(),
      reportsDir: false,
      durationMs: 1000,
    });
    expect(report.commands?.[0]).to.deep.include({
      argv: ["kubectl", "get", "-f", "mesh/experiments/canary-50.yaml", "-o", "json", "--ignore-not-found"],
      code: 0,
    });
    expect(report.commands?.[1]).to.deep.include({ argv: ["kubectl", "apply", "-f", "mesh/experiments/canary-50.yaml"], code: 0 });
    expect(report.commands?.every((c) => c.code === 0)).to.equal(true);
    expect(await cp.kubectlOk(["-n", "meshmart", "get", "virtualservice", "catalog", "-o", "jsonpath={.spec}"]), "reverted").to.equal(before);
  });
});
