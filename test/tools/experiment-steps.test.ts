// The kubectl steps a hypothesis file runs on a cluster name real things: every `exec deploy/<d> -c <c>`
// a Deployment of ours and one of its containers, every `job/<j>` a Job in the experiment's own YAML. No
// cluster runs these here, so a renamed Deployment or container would otherwise only show up on a user's
// cluster (it happened: the steps named deploy/payment and container payment; they are payment-v1/server).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { parseAllDocuments } from "yaml";
import { ROOT } from "../../tools/root.js";
import { EXPERIMENTS_DIR, loadHypothesis } from "../../tools/traffic/experiment/hypothesis.js";

// biome-ignore lint/suspicious/noExplicitAny: untyped YAML, every access is checked.
type Obj = Record<string, any>;

function objectsIn(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
}

const containersByDeployment = new Map<string, string[]>();
for (const svc of readdirSync(join(ROOT, "services"))) {
  let files: string[] = [];
  try {
    files = readdirSync(join(ROOT, "services", svc, "k8s")).filter((f) => f.endsWith(".yaml"));
  } catch {
    continue; // the kit has no manifests
  }
  for (const f of files)
    for (const o of objectsIn(join(ROOT, "services", svc, "k8s", f)))
      if (o.kind === "Deployment")
        containersByDeployment.set(
          o.metadata.name,
          (o.spec.template.spec.containers as Obj[]).map((c) => c.name),
        );
}

/** Problems with one step's references, for an experiment whose YAML holds `own` objects. */
function stepProblems(step: string[], own: Obj[]): string[] {
  const problems: string[] = [];
  const exec = step.indexOf("exec");
  if (exec >= 0) {
    const target = step.slice(exec + 1).find((a) => a.startsWith("deploy/"));
    const container = step[step.indexOf("-c") + 1];
    const deployment = target?.slice("deploy/".length) ?? "";
    const containers = containersByDeployment.get(deployment);
    if (!containers) problems.push(`exec names Deployment "${deployment}", which services/*/k8s does not define`);
    else if (step.includes("-c") && !containers.includes(container))
      problems.push(`exec names container "${container}", not one of ${deployment}'s (${containers.join(", ")})`);
  }
  for (const arg of step.filter((a) => a.startsWith("job/"))) {
    const job = arg.slice("job/".length);
    if (!own.some((o) => o.kind === "Job" && o.metadata?.name === job)) problems.push(`names ${arg}, which the experiment's YAML does not create`);
  }
  return problems;
}

describe("experiments: the cluster steps in hypothesis files name real objects", () => {
  const names = readdirSync(EXPERIMENTS_DIR)
    .filter((f) => f.endsWith(".hypothesis.yaml"))
    .map((f) => f.slice(0, -".hypothesis.yaml".length));

  it("finds our Deployments and their containers to check against", () => {
    expect(containersByDeployment.get("payment-v1")).to.deep.equal(["server"]);
  });

  for (const name of names)
    it(`${name}`, () => {
      const h = loadHypothesis(name);
      const yamlFile = join(EXPERIMENTS_DIR, `${name}.yaml`);
      let own: Obj[] = [];
      try {
        own = objectsIn(yamlFile);
      } catch {
        own = []; // local-only experiments have no Istio YAML
      }
      const steps = [...(h.fault?.cluster?.before ?? []), ...(h.fault?.cluster?.after ?? [])];
      expect(steps.flatMap((s) => stepProblems(s, own).map((p) => `${name}: ${s.join(" ").slice(0, 60)}…: ${p}`))).to.deep.equal([]);
    });

  it("catches a wrong Deployment, a wrong container and a Job the YAML does not create", () => {
    expect(stepProblems(["kubectl", "-n", "meshmart", "exec", "deploy/payment", "-c", "server", "--", "true"], [])).to.have.length(1);
    expect(stepProblems(["kubectl", "-n", "meshmart", "exec", "deploy/payment-v1", "-c", "payment", "--", "true"], [])[0]).to.match(/container "payment"/);
    expect(stepProblems(["kubectl", "wait", "job/nope"], [{ kind: "Job", metadata: { name: "other" } }])[0]).to.match(/job\/nope/);
  });
});
