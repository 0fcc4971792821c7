// The cluster side of an experiment, all through kubectl: apply mesh/experiments/<name>.yaml (it replaces
// base resources by name), run any extra steps the hypothesis lists, and afterwards revert by re-applying
// the base mesh policy. The plan is data, so what would run on a cluster is tested here without one.
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join, relative } from "node:path";
import { ROOT } from "../devdb.js";
import { EXPERIMENTS_DIR, type Hypothesis } from "./hypothesis.js";

export interface Command {
  argv: string[];
  why: string;
}

export interface ClusterPlan {
  apply: Command[];
  revert: Command[];
}

/** The commands for `h`: apply its Istio YAML and extra steps before the load; revert and extra steps after. */
export function clusterPlan(h: Hypothesis, opts: { root?: string; experimentsDir?: string } = {}): ClusterPlan {
  const root = opts.root ?? ROOT;
  const dir = opts.experimentsDir ?? EXPERIMENTS_DIR;
  if (!h.targets.includes("cluster")) throw new Error(`experiment "${h.name}" is local-only (no Istio YAML): run it with --target local`);
  const yaml = join(dir, `${h.name}.yaml`);
  if (!existsSync(yaml)) throw new Error(`experiment "${h.name}": ${yaml} does not exist (the mesh experiments are written in mesh/experiments/)`);
  const meshDir = join(root, "mesh");
  const rel = (p: string) => relative(root, p) || ".";
  // `kubectl apply -f mesh/` is not recursive, so it re-applies the base files and never the experiments.
  const base: Command = existsSync(join(meshDir, "kustomization.yaml"))
    ? { argv: ["kubectl", "apply", "-k", rel(meshDir)], why: "revert: re-apply the base mesh policy (kustomization)" }
    : { argv: ["kubectl", "apply", "-f", `${rel(meshDir)}/`], why: "revert: re-apply the base mesh policy (replaces the experiment's resources by name)" };
  const extra = (list: string[][] | undefined, why: string) => (list ?? []).map((argv) => ({ argv, why }));
  return {
    apply: [
      { argv: ["kubectl", "apply", "-f", rel(yaml)], why: "inject the fault: the experiment's Istio resources replace the base ones of the same name" },
      ...extra(h.fault.cluster?.before, "experiment step (from the hypothesis file)"),
    ],
    revert: [base, ...extra(h.fault.cluster?.after, "experiment clean-up step (from the hypothesis file)")],
  };
}

/** The executable `bin` would resolve to on `path` (PATH), or undefined. */
export function findOnPath(bin: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, bin);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export interface CommandRun extends Command {
  code: number;
  output: string;
}

/** Runs one command (no shell); never throws on a non-zero exit, the caller decides. */
export function runCommand(cmd: Command, env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<CommandRun> {
  return new Promise((resolve) => {
    execFile(cmd.argv[0], cmd.argv.slice(1), { env, cwd, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 127) : 0;
      resolve({ ...cmd, code, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/**
 * Waits until a change is in effect in the mesh, by observing it (e.g. the local control plane's istiod holds
 * the API server's version and its clients acknowledged it: tools/kube/mesh.ts). `since`: when it was made.
 */
export type Settle = (phase: "applied" | "reverted", since: number) => Promise<void>;

/**
 * Applies the plan, runs `during` (the load), and always reverts, even when the load fails. Fails before
 * touching anything when kubectl is not on PATH, and stops (then reverts) when an apply step fails. With
 * `settle`, the load starts only once the applied change is in effect, and the revert is waited for the same way.
 */
export async function withClusterFault<T>(
  plan: ClusterPlan,
  during: () => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
  settle?: Settle,
): Promise<{ result: T; commands: CommandRun[] }> {
  if (!findOnPath("kubectl", env.PATH))
    throw new Error("kubectl is not on PATH: --target cluster needs kubectl pointed at a cluster running meshmart with Istio (skaffold dev -p mesh)");
  const commands: CommandRun[] = [];
  let result: T;
  const since = Date.now();
  try {
    for (const cmd of plan.apply) {
      const run = await runCommand(cmd, env);
      commands.push(run);
      if (run.code !== 0) throw new Error(`${cmd.argv.join(" ")} failed (exit ${run.code}): ${run.output}`);
    }
    await settle?.("applied", since);
    result = await during();
  } finally {
    const revertedAt = Date.now();
    const reverted = [];
    for (const cmd of plan.revert) reverted.push(await runCommand(cmd, env));
    commands.push(...reverted);
    const bad = reverted.find((r) => r.code !== 0);
    // A mesh left with the fault applied matters more than the experiment's own result: say so loudly.
    if (bad) console.error(`REVERT FAILED: ${bad.argv.join(" ")} (exit ${bad.code}): ${bad.output}\nre-apply the base mesh policy by hand.`);
    else await settle?.("reverted", revertedAt);
  }
  return { result, commands };
}
