// The experiment runner's parts without a stack: hypothesis files and their schema, the checks, the report
// arithmetic, the chart, and the cluster command plan run against a FAKE kubectl (a shell script on PATH
// that records its arguments: no cluster exists here).
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { parseAllDocuments } from "yaml";
import { ROOT } from "../tools/devdb.js";
import { chartSvg } from "../tools/experiment/chart.js";
import { clusterPlan, findOnPath, restoreCommands, withClusterFault } from "../tools/experiment/cluster.js";
import { consistency, evaluate, type RunStats, recoveryMs, type Second } from "../tools/experiment/evaluate.js";
import { type Hypothesis, hypothesisFile, loadHypothesis, parseDuration, parseHypothesis } from "../tools/experiment/hypothesis.js";
import { rebase, runExperiment } from "../tools/experiment/run.js";
import { CLUSTER_EXPERIMENTS, LOCAL_EXPERIMENTS } from "./support/experiments.js";

const NAMES = [...CLUSTER_EXPERIMENTS, ...LOCAL_EXPERIMENTS];

/** A 10 s run at 10/s: all ok except seconds 4 and 5 (during a fault from 4 s to 6 s), which fail half. */
function run(): RunStats {
  const timeline: Second[] = Array.from({ length: 10 }, (_, t) => {
    const errors = t === 4 || t === 5 ? 5 : 0;
    return {
      t,
      sent: 10,
      ok: 10 - errors,
      errors,
      codes: (errors ? { ok: 10 - errors, unavailable: errors } : { ok: 10 }) as Record<string, number>,
      p50Ms: 5,
      p99Ms: t === 4 ? 900 : 20,
    };
  });
  const lat = { p50: 5, p90: 10, p99: 20, max: 900, mean: 7 };
  return {
    durationMs: 10_000,
    rate: 10,
    sent: 100,
    completed: 100,
    byOp: { getProduct: { count: 60, codes: { ok: 60 }, latencyMs: lat }, placeOrder: { count: 40, codes: { ok: 30, unavailable: 10 }, latencyMs: lat } },
    timeline,
    placedOrders: Array.from({ length: 40 }, (_, i) => ({ orderId: `o${i}`, idempotencyKey: `k${i}`, code: i < 30 ? "ok" : "unavailable" })),
  };
}
const fault = { startMs: 4000, endMs: 6000 };
const base = (): Hypothesis => loadHypothesis("kill-payment");

describe("experiment runner (unit)", () => {
  describe("hypothesis files", () => {
    for (const name of NAMES) it(`${name}: validates against the schema`, () => expect(loadHypothesis(name).name).to.equal(name));

    it("rejects an unknown field, naming it and the file", () => {
      const raw = { ...base(), expect: [{ successRate: { min: 0.9, window: "during", typo: 1 } }] };
      expect(() => parseHypothesis(raw, "x.hypothesis.yaml")).to.throw(
        /x\.hypothesis\.yaml.*\n.*\/expect\/0\/successRate must NOT have additional properties \(typo\)/,
      );
    });
    it("rejects a fault that ends after the load, and a local target without a local fault", () => {
      expect(() => parseHypothesis({ ...base(), fault: { startAfterMs: 15000, durationMs: 10000, local: { action: "stop-db" } } })).to.throw(
        /fault ends at 25000 ms/,
      );
      expect(() => parseHypothesis({ ...base(), fault: { startAfterMs: 0, durationMs: 1000 } })).to.throw(/fault\/local is required/);
    });
    it("an unknown experiment names the missing file", () => expect(() => loadHypothesis("no-such")).to.throw(/no-such\.hypothesis\.yaml does not exist/));
    it("parses durations and names the flag when wrong", () => {
      expect([parseDuration("20s"), parseDuration("1500ms"), parseDuration("2m"), parseDuration("300")]).to.deep.equal([20_000, 1500, 120_000, 300]);
      expect(() => parseDuration("soon")).to.throw(/--duration must look like/);
    });
  });

  describe("checks", () => {
    it("success rate per window, per op, codes and recovery", () => {
      const h = { ...base(), expect: [] } as Hypothesis;
      h.expect = [
        { successRate: { window: "before", min: 1 } },
        { successRate: { window: "during", max: 0.5 } },
        { successRate: { window: "after", min: 1 } },
        { successRate: { op: "placeOrder", min: 0.8 } },
        { codes: { op: "placeOrder", allowed: ["ok"] } },
        { codes: { expected: ["unavailable", "deadline_exceeded"] } },
        { recovery: { maxMs: 0 } },
      ];
      const r = evaluate(h, run(), fault);
      expect(r.map((c) => [c.ok, c.actual])).to.deep.equal([
        [true, "100.0%"],
        [true, "50.0%"],
        [true, "100.0%"],
        [false, "75.0%"],
        [false, "ok 30, unavailable 10 (unexpected: unavailable)"],
        [false, "ok 90, unavailable 10 (missing: deadline_exceeded)"],
        [true, "0 ms"],
      ]);
    });
    it("recovery counts from the fault's end to the first second that stays good", () => {
      const r = run();
      r.timeline[6] = { ...r.timeline[6], ok: 5, errors: 5 };
      r.timeline[8] = { ...r.timeline[8], ok: 8, errors: 2 };
      expect(recoveryMs(r.timeline, fault)).to.equal(3000); // second 7 was good, 8 was not: from 9 s
      r.timeline[9] = { ...r.timeline[9], ok: 0, errors: 10 };
      expect(recoveryMs(r.timeline, fault)).to.equal(undefined);
    });
    it("the report arithmetic holds for a consistent run and catches a count that does not add up", () => {
      expect(consistency(run()).filter((c) => !c.ok)).to.deep.equal([]);
      const broken = run();
      broken.timeline[3] = { ...broken.timeline[3], sent: 9 };
      broken.placedOrders.pop();
      expect(
        consistency(broken)
          .filter((c) => !c.ok)
          .map((c) => c.check),
      ).to.deep.equal(["sum of arrivals per second = arrivals", "placed orders listed = PlaceOrder calls sent"]);
    });
  });

  it("fault times measured from an estimated start are moved onto the load's clock", () => {
    const log = { startMs: 3000, endMs: 8000, restoredMs: 9500, events: [{ atMs: 3000, what: "killed" }] };
    expect(rebase(log, 400)).to.deep.equal({ startMs: 3400, endMs: 8400, restoredMs: 9900, events: [{ atMs: 3400, what: "killed" }] });
    expect(rebase({ ...log, restoredMs: undefined }, -250).restoredMs).to.equal(undefined);
  });

  it("the chart shades the fault window and draws p50, p99 and the error bars", () => {
    const svg = chartSvg("t <x>", run().timeline, { ...fault, restoredMs: 6500 }, 10_000);
    expect(svg).to.match(/^<svg [^>]*viewBox/);
    expect(svg).to.contain("t &lt;x&gt;");
    expect(svg.match(/fill="#f4a261"/g)).to.have.length(1); // the fault window
    expect(svg.match(/fill="#e63946"/g)).to.have.length(3); // two error bars + the legend swatch
    expect(svg).to.contain("restored");
    expect(svg.match(/<path d="M/g)).to.have.length(2);
  });

  describe("cluster plan (kubectl is a FAKE here: no cluster)", () => {
    let dir: string;
    let log: string;
    let fakeBin: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "meshmart-fake-kubectl-"));
      fakeBin = join(dir, "bin");
      mkdirSync(fakeBin);
      log = join(dir, "calls.log");
      // FAKE kubectl: records each call; "apply -f .../fail.yaml" fails like a rejected manifest would; `get`
      // prints live.json (what the fake cluster holds) if the test wrote one; what `-f -` reads is kept as
      // stdin-<call number>.json.
      writeFileSync(
        join(fakeBin, "kubectl"),
        `#!/bin/sh
echo "$*" >> ${log}
case "$*" in
  *fail*) echo "rejected" >&2; exit 1;;
  get\\ *) [ -f ${dir}/live.json ] && cat ${dir}/live.json; exit 0;;
  *"-f -"*) cat > ${dir}/stdin-$(wc -l < ${log}).json;;
esac
echo applied
`,
      );
      chmodSync(join(fakeBin, "kubectl"), 0o755);
    });
    beforeEach(() => {
      writeFileSync(log, "");
      rmSync(join(dir, "live.json"), { force: true });
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const calls = () => readFileSync(log, "utf8").trim().split("\n").filter(Boolean);
    /** What the fake read on its standard input at call number n (1-based). */
    const stdinOf = (n: number) => JSON.parse(readFileSync(join(dir, `stdin-${n}.json`), "utf8"));
    const env = () => ({ ...process.env, PATH: `${fakeBin}:/usr/bin:/bin` });

    /** A project root with the real files of these experiments (YAML and hypothesis). */
    function project(...names: string[]) {
      const root = mkdtempSync(join(dir, "root-"));
      const experimentsDir = join(root, "mesh", "experiments");
      mkdirSync(experimentsDir, { recursive: true });
      for (const name of names) {
        copyFileSync(join(ROOT, "mesh", "experiments", `${name}.yaml`), join(experimentsDir, `${name}.yaml`));
        copyFileSync(hypothesisFile(name), hypothesisFile(name, experimentsDir));
      }
      return { root, experimentsDir };
    }

    /** The objects of a YAML file as the API server returns them (server fields added), as `kubectl get -o json` prints them. */
    function live(file: string, docs?: number[]) {
      const items = parseAllDocuments(readFileSync(join(ROOT, file), "utf8"))
        .map((d) => d.toJS())
        .filter((o, i) => o && (!docs || docs.includes(i)))
        .map((o, i) => ({
          ...o,
          metadata: {
            namespace: "meshmart",
            ...o.metadata,
            resourceVersion: String(1000 + i),
            uid: `uid-${i}`,
            generation: 3,
            creationTimestamp: "2026-01-01T00:00:00Z",
            managedFields: [{ manager: "kubectl-client-side-apply" }],
            annotations: { ...o.metadata.annotations, "kubectl.kubernetes.io/last-applied-configuration": "{}" },
          },
          status: {},
        }));
      return { apiVersion: "v1", kind: "List", items };
    }

    /** mesh/canary's catalog route (90/10) as a `-p canary` cluster holds it. */
    function canaryCatalog() {
      const list = live("mesh/canary/catalog-90-10.yaml", [0]);
      const base = parseAllDocuments(readFileSync(join(ROOT, "mesh/base/routes.yaml"), "utf8"))
        .map((d) => d.toJS())
        .find((o) => o.metadata.name === "catalog");
      list.items[0].spec.hosts = base.spec.hosts;
      list.items[0].metadata.annotations = { ...base.metadata.annotations, ...list.items[0].metadata.annotations };
      return list;
    }

    it("saves the live objects, applies the experiment's YAML and its extra steps, then its clean-up steps", () => {
      const h = loadHypothesis("retries-recover");
      const plan = clusterPlan(h, project("retries-recover"));
      expect(plan.snapshot.argv).to.deep.equal(["kubectl", "get", "-f", "mesh/experiments/retries-recover.yaml", "-o", "json", "--ignore-not-found"]);
      expect(plan.objects.map((o) => `${o.kind}/${o.namespace}/${o.name}`)).to.deep.equal([
        "DestinationRule/meshmart/payment",
        "VirtualService/meshmart/payment",
      ]);
      expect(plan.apply.map((c) => c.argv.slice(0, 4))).to.deep.equal([
        ["kubectl", "apply", "-f", "mesh/experiments/retries-recover.yaml"],
        ["kubectl", "-n", "meshmart", "exec"],
      ]);
      expect(plan.revert.map((c) => c.argv.slice(0, 4))).to.deep.equal([["kubectl", "-n", "meshmart", "exec"]]);
      expect(plan.revert[0].argv.at(-1)).to.contain("JSON.stringify({})"); // the knob goes back off
    });

    it("restores what kubectl get printed: one object, a List, or nothing (then the file's objects are deleted)", () => {
      const objects = [{ apiVersion: "networking.istio.io/v1", kind: "VirtualService", name: "payment", namespace: "meshmart" }];
      const one = live("mesh/experiments/payment-abort.yaml").items[0];
      for (const printed of [JSON.stringify(one), JSON.stringify({ kind: "List", items: [one] })]) {
        const [cmd, ...rest] = restoreCommands(objects, printed);
        expect(rest).to.deep.equal([]);
        expect(cmd.argv).to.deep.equal(["kubectl", "apply", "-f", "-"]);
        const restored = JSON.parse(cmd.stdin as string).items[0];
        expect(restored.spec).to.deep.equal(one.spec);
        expect(restored.metadata).to.deep.equal({ name: "payment", namespace: "meshmart", annotations: { "meshmart.dev/retry-safe": "PaymentService/*" } });
        expect(restored).not.to.have.property("status");
      }
      const [del, ...none] = restoreCommands(objects, "");
      expect(none).to.deep.equal([]);
      expect(del.argv).to.deep.equal(["kubectl", "delete", "-f", "-", "--ignore-not-found"]);
      expect(JSON.parse(del.stdin as string).items).to.deep.equal([
        { apiVersion: "networking.istio.io/v1", kind: "VirtualService", metadata: { name: "payment", namespace: "meshmart" } },
      ]);
    });

    it("refuses a local-only experiment and an experiment whose YAML is missing", () => {
      expect(() => clusterPlan(loadHypothesis("kill-payment"))).to.throw(/local-only/);
      expect(() => clusterPlan(loadHypothesis("canary-50"), project("retries-recover"))).to.throw(/canary-50\.yaml does not exist/);
    });

    it("without kubectl on PATH fails before running anything", async () => {
      expect(findOnPath("kubectl", "/nonexistent")).to.equal(undefined);
      let ran = false;
      const plan = clusterPlan(loadHypothesis("retries-recover"), project("retries-recover"));
      const err = await withClusterFault(plan, async () => (ran = true), { ...process.env, PATH: "/nonexistent" }).catch((e: Error) => e);
      expect((err as Error).message).to.match(/kubectl is not on PATH/);
      expect(ran).to.equal(false);
    });

    it("when the live objects cannot be read, applies nothing", async () => {
      writeFileSync(join(dir, "live.json"), "error: the server doesn't have a resource type");
      let ran = false;
      const plan = clusterPlan(loadHypothesis("payment-abort"), project("payment-abort"));
      const err = await withClusterFault(plan, async () => (ran = true), env()).catch((e: Error) => e);
      expect((err as Error).message).to.match(/printed no kubectl JSON, nothing applied/);
      expect(ran).to.equal(false);
      expect(calls()).to.deep.equal(["get -f mesh/experiments/payment-abort.yaml -o json --ignore-not-found"]);
    });

    it("with the fake kubectl: save, apply, load, restore in order; the restore runs even when the load fails", async () => {
      writeFileSync(join(dir, "live.json"), JSON.stringify(live("mesh/base/destinations.yaml")));
      const plan = clusterPlan(loadHypothesis("retries-recover"), project("retries-recover"));
      const order: string[] = [];
      const err = await withClusterFault(
        plan,
        async () => {
          order.push(`load after ${calls().length} kubectl calls`);
          throw new Error("load failed");
        },
        env(),
      ).catch((e: Error) => e);
      expect((err as Error).message).to.equal("load failed");
      expect(order).to.deep.equal(["load after 3 kubectl calls"]);
      const c = calls();
      expect(c.slice(0, 2)).to.deep.equal([
        "get -f mesh/experiments/retries-recover.yaml -o json --ignore-not-found",
        "apply -f mesh/experiments/retries-recover.yaml",
      ]);
      expect(c[2]).to.match(/^-n meshmart exec/);
      // DestinationRule payment was there: put back; VirtualService payment was not (in this fake cluster): deleted.
      expect(c.slice(3, 5)).to.deep.equal(["apply -f -", "delete -f - --ignore-not-found"]);
      expect(stdinOf(4).items.map((o: { kind: string; metadata: { name: string } }) => `${o.kind} ${o.metadata.name}`)).to.deep.equal([
        "DestinationRule identity",
        "DestinationRule catalog",
        "DestinationRule orders",
        "DestinationRule payment",
      ]);
      expect(stdinOf(5).items.map((o: { kind: string; metadata: { name: string } }) => `${o.kind} ${o.metadata.name}`)).to.deep.equal([
        "VirtualService payment",
      ]);
      expect(c[5]).to.match(/^-n meshmart exec/); // the knob off, after the objects are back
      expect(c).to.have.length(6);
    });

    it("a failed apply stops before the load and still restores", async () => {
      writeFileSync(join(dir, "live.json"), JSON.stringify(live("mesh/experiments/retries-recover.yaml")));
      const plan = clusterPlan(loadHypothesis("retries-recover"), project("retries-recover"));
      plan.apply[0].argv = ["kubectl", "apply", "-f", "mesh/experiments/fail.yaml"];
      let loaded = false;
      const err = await withClusterFault(plan, async () => (loaded = true), env()).catch((e: Error) => e);
      expect((err as Error).message).to.match(/fail\.yaml failed \(exit 1\): rejected/);
      expect(loaded).to.equal(false);
      expect(calls().slice(0, 3)).to.deep.equal([
        "get -f mesh/experiments/retries-recover.yaml -o json --ignore-not-found",
        "apply -f mesh/experiments/fail.yaml",
        "apply -f -",
      ]);
    });

    it("on a `-p canary` cluster, canary-50 ends at the 90/10 it started from, not the base's 100% v1 (FAKE kubectl and FAKE load)", async () => {
      const canary = canaryCatalog();
      const ingress = live("mesh/canary/catalog-90-10.yaml", [1]).items[0];
      writeFileSync(join(dir, "live.json"), JSON.stringify({ ...canary, items: [...canary.items, ingress] }));
      const { root, experimentsDir } = project("canary-50");
      // FAKE load: the cluster cannot exist here; the numbers are the fixed run() above.
      const fakeLoad = async () => ({ ...run(), startedAt: new Date().toISOString() });
      const { report } = await runExperiment({
        name: "canary-50",
        target: "cluster",
        runLoad: fakeLoad,
        env: env(),
        reportsDir: false,
        root,
        hypothesesDir: experimentsDir,
      });
      expect(calls()).to.deep.equal([
        "get -f mesh/experiments/canary-50.yaml -o json --ignore-not-found",
        "apply -f mesh/experiments/canary-50.yaml",
        "apply -f -",
      ]);
      const restored = stdinOf(3).items;
      const catalog = restored.find((o: { metadata: { name: string } }) => o.metadata.name === "catalog");
      const weights = catalog.spec.http
        .find((r: { name: string }) => r.name === "default")
        .route.map((d: { destination: { subset: string }; weight: number }) => `${d.destination.subset} ${d.weight}`);
      expect(weights).to.deep.equal(["v1 90", "v2 10"]);
      expect(restored.map((o: { metadata: { name: string } }) => o.metadata.name)).to.deep.equal(["catalog", "meshmart-ingress"]);
      for (const o of restored) {
        expect(Object.keys(o.metadata).filter((k) => !["annotations", "name", "namespace"].includes(k))).to.deep.equal([]); // no server fields
        expect(o.metadata.annotations ?? {}).not.to.have.property("kubectl.kubernetes.io/last-applied-configuration");
        expect(o).not.to.have.property("status");
      }
      expect(report.commands?.map((c) => [c.argv.slice(1).join(" "), c.code])).to.deep.equal([
        ["get -f mesh/experiments/canary-50.yaml -o json --ignore-not-found", 0],
        ["apply -f mesh/experiments/canary-50.yaml", 0],
        ["apply -f -", 0],
      ]);
      expect(report.invariants).to.have.property("skipped").that.contains("no --mongodb-uri");
      expect(report.passed, "the fixed run has 10% errors: canary-50 expects none").to.equal(false);
    });

    it("deletes what the experiment created (mtls-plaintext's Job), then runs its own clean-up step", async () => {
      const plan = clusterPlan(loadHypothesis("mtls-plaintext"), project("mtls-plaintext"));
      await withClusterFault(plan, async () => undefined, env());
      const c = calls();
      expect(c.slice(-2)).to.deep.equal(["delete -f - --ignore-not-found", "-n meshmart delete job/mtls-plaintext --ignore-not-found"]);
      expect(stdinOf(c.length - 1).items).to.deep.equal([{ apiVersion: "batch/v1", kind: "Job", metadata: { name: "mtls-plaintext", namespace: "meshmart" } }]);
    });
  });
});
