// .github/workflows/ci.yml runs what .ci/run runs, and is valid: actionlint (v1.7.12, built by tools/setup/setup.sh)
// checks its syntax, keys, expressions and the inputs of the actions it uses.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { parse } from "yaml";
import { ROOT } from "../../tools/root.js";
import { BIN } from "../../tools/stack/devdb.js";

const WORKFLOW = join(ROOT, ".github", "workflows", "ci.yml");

async function actionlint(file: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(join(BIN, "actionlint"), ["-no-color", file], { cwd: ROOT });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("CI workflow (.github/workflows/ci.yml)", () => {
  it("passes actionlint", async () => {
    const result = await actionlint(WORKFLOW);
    expect(result.out).to.equal("");
    expect(result.code).to.equal(0);
  });

  it("fails actionlint on a misspelled key (so the check is live)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshmart-ci-"));
    try {
      mkdirSync(join(dir, ".github", "workflows"), { recursive: true });
      const broken = join(dir, ".github", "workflows", "ci.yml");
      writeFileSync(broken, readFileSync(WORKFLOW, "utf8").replace("runs-on:", "run-on:"));
      const result = await actionlint(broken);
      expect(result.code).to.equal(1);
      expect(result.out).to.match(/run-on/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs .ci/run's commands on Node 22 with Go, caching the Go build cache and .cache/bin", () => {
    const workflow = parse(readFileSync(WORKFLOW, "utf8"));
    const steps: { uses?: string; run?: string; with?: Record<string, unknown> }[] = Object.values(workflow.jobs as Record<string, { steps: [] }>).flatMap(
      (j) => j.steps,
    );
    const ciRun = readFileSync(join(ROOT, ".ci", "run"), "utf8");
    const commands = ciRun.split("\n").filter((l) => /^npm /.test(l));
    expect(commands).to.deep.equal(["npm ci --no-audit --no-fund", "npm test"]);
    expect(steps.map((s) => s.run).filter(Boolean)).to.deep.equal(commands);
    const node = steps.find((s) => s.uses?.startsWith("actions/setup-node@"));
    expect(String(node?.with?.["node-version"])).to.equal("22");
    const go = steps.find((s) => s.uses?.startsWith("actions/setup-go@"));
    expect(go, "setup-go (its cache keeps the Go build cache)").to.not.equal(undefined);
    expect(go?.with?.cache).to.not.equal(false);
    // Go must be at least the newest go directive of what tools/setup/setup.sh builds (the modules kept here).
    for (const mod of ["tools/setup/devdb/go.mod", "tools/setup/kube/etcd/go.mod", "tools/setup/kube/apiserver/go.mod"]) {
      const wanted = /^go (\d+\.\d+)/m.exec(readFileSync(join(ROOT, mod), "utf8"))?.[1];
      expect(Number(String(go?.with?.["go-version"]).split(".")[1]), mod).to.be.at.least(Number(wanted?.split(".")[1]));
    }
    const cache = steps.find((s) => s.uses?.startsWith("actions/cache@"));
    expect(cache?.with?.path).to.equal(".cache/bin");
  });
});
