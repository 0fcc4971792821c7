// The experiment runner's parts without a stack: hypothesis files and their schema, the checks, the report
// arithmetic, the chart, and the cluster command plan's exec steps against a FAKE kubectl (a shell script on
// PATH that records its arguments: `kubectl exec` needs a pod, and no kubelet runs pods here; everything else
// of the cluster path runs against the real API server in test/tools/experiment-cluster.test.ts).
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { ROOT } from "../../tools/root.js";
import type { Stack } from "../../tools/stack/launcher.js";
import { chartSvg } from "../../tools/traffic/experiment/chart.js";
import { clusterPlan, findOnPath, restoreCommands, withClusterFault } from "../../tools/traffic/experiment/cluster.js";
import { consistency, evaluate, type RunStats, recoveryMs, type Second } from "../../tools/traffic/experiment/evaluate.js";
import { type Hypothesis, loadHypothesis, parseDuration, parseHypothesis } from "../../tools/traffic/experiment/hypothesis.js";
import { driveLocalFault } from "../../tools/traffic/experiment/local.js";
import { rebase } from "../../tools/traffic/experiment/run.js";
import { CLUSTER_EXPERIMENTS, LOCAL_EXPERIMENTS } from "../support/experiments.js";

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

  // The same steps with the real kubectl against a real API server: test/tools/experiment-cluster.test.ts. A FAKE
  // kubectl stays for the one thing no API server can do here: `kubectl exec` into a pod (no kubelet runs pods).
  describe("cluster plan (kubectl is a FAKE here: the exec steps need pods)", () => {
    let dir: string;
    let log: string;
    let fakeBin: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "meshmart-fake-kubectl-"));
      fakeBin = join(dir, "bin");
      mkdirSync(fakeBin);
      log = join(dir, "calls.log");
      // FAKE kubectl: records each call; `get` prints nothing (as `--ignore-not-found` does for objects that are
      // not there); "apply -f .../fail.yaml" fails like a rejected manifest would.
      writeFileSync(
        join(fakeBin, "kubectl"),
        `#!/bin/sh\necho "$*" >> ${log}\ncase "$*" in *fail*) echo "rejected" >&2; exit 1;; get\\ *) exit 0;; esac\ncat > /dev/null\necho applied\n`,
      );
      chmodSync(join(fakeBin, "kubectl"), 0o755);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const calls = () => readFileSync(log, "utf8").trim().split("\n");
    const env = () => ({ ...process.env, PATH: `${fakeBin}:/usr/bin:/bin` });

    /** A project root with the real YAML of these experiments. */
    function project(...names: string[]) {
      const root = mkdtempSync(join(dir, "root-"));
      mkdirSync(join(root, "mesh", "experiments"), { recursive: true });
      for (const name of names) copyFileSync(join(ROOT, "mesh", "experiments", `${name}.yaml`), join(root, "mesh", "experiments", `${name}.yaml`));
      return { root, experimentsDir: join(root, "mesh", "experiments") };
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

    it("restores what kubectl get printed, server fields stripped: one object, a List, or nothing (then the file's objects are deleted)", () => {
      const objects = [{ apiVersion: "networking.istio.io/v1", kind: "VirtualService", name: "payment", namespace: "meshmart" }];
      const spec = { hosts: ["payment"], http: [{ name: "default", route: [{ destination: { host: "payment", port: { number: 50051 } } }] }] };
      const live = {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: {
          name: "payment",
          namespace: "meshmart",
          resourceVersion: "1234",
          uid: "u-1",
          generation: 3,
          creationTimestamp: "2026-01-01T00:00:00Z",
          managedFields: [{ manager: "kubectl-client-side-apply" }],
          annotations: { "meshmart.dev/retry-safe": "PaymentService/*", "kubectl.kubernetes.io/last-applied-configuration": "{}" },
        },
        spec,
        status: {},
      };
      for (const printed of [JSON.stringify(live), JSON.stringify({ kind: "List", items: [live] })]) {
        const [cmd, ...rest] = restoreCommands(objects, printed);
        expect(rest).to.deep.equal([]);
        expect(cmd.argv).to.deep.equal(["kubectl", "apply", "-f", "-"]);
        expect(JSON.parse(cmd.stdin as string).items).to.deep.equal([
          {
            apiVersion: "networking.istio.io/v1",
            kind: "VirtualService",
            metadata: { name: "payment", namespace: "meshmart", annotations: { "meshmart.dev/retry-safe": "PaymentService/*" } },
            spec,
          },
        ]);
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

    it("with the FAKE kubectl: the exec steps run after the apply and after the restore, around the load, even when it fails", async () => {
      writeFileSync(log, "");
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
      expect(c[3]).to.equal("delete -f - --ignore-not-found"); // nothing was there in the fake: the file's objects go
      expect(c[4]).to.match(/^-n meshmart exec/);
      expect(c).to.have.length(5);
    });
  });
});

describe("local fault driver", () => {
  it("a fault that starts late still lasts its planned duration (payment down 5 s even when second 0 was slow)", async () => {
    // STAND-IN for the stack: only kill/start are used by a kill fault; they record and return at once.
    const calls: string[] = [];
    const stack = { kill: async (u: string) => void calls.push(`kill ${u}`), start: async (u: string) => void calls.push(`start ${u}`) } as unknown as Stack;
    const h = { name: "late", fault: { startAfterMs: 1000, durationMs: 1000, local: { action: "kill", unit: "payment" } } } as unknown as Hypothesis;
    // The estimated load start is 2.5 s ago: the planned start (1 s) and end (2 s) have both passed already.
    const log = await driveLocalFault(stack, h, Date.now() - 2500);
    expect(calls).to.deep.equal(["kill payment", "start payment"]);
    expect(log.endMs - log.startMs).to.be.at.least(990);
  });
});
