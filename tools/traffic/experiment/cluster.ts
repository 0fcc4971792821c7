// The cluster side of an experiment, all through kubectl: save the live objects the experiment's file
// replaces, apply mesh/experiments/<name>.yaml (it replaces base resources by name), run any extra steps the
// hypothesis lists, and afterwards put back what was there: the saved objects as they were (a `-p canary`
// cluster goes back to its 90/10, not to the base's 100% v1), and objects the file created are deleted.
// The plan is data, so what would run on a cluster is tested here without one.
// Also the audit of charges without database access (through payment's ListPayments), for a cluster run.
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { delimiter, join, relative } from "node:path";
import { createClient } from "@connectrpc/connect";
import { parseAllDocuments } from "yaml";
import { PaymentService, PaymentState } from "#gen/meshmart/payment/v1/payment_pb.js";
import { createGrpcJsTransport } from "#kit";
import { ROOT } from "../../root.js";
import { EXPERIMENTS_DIR, type Hypothesis } from "./hypothesis.js";

export interface Command {
  argv: string[];
  why: string;
  /** Fed to the command's standard input (`kubectl apply -f -`). */
  stdin?: string;
}

/** One object the experiment's file applies. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface ClusterPlan {
  /** What the file's objects are before the experiment: `kubectl get -f <file> -o json --ignore-not-found`. */
  snapshot: Command;
  /** The objects the file applies (what the revert puts back or deletes). */
  objects: ObjectRef[];
  apply: Command[];
  /** The hypothesis' clean-up steps; they run after the saved objects are restored (restoreCommands). */
  revert: Command[];
}

/** The commands for `h`: save, apply its Istio YAML and extra steps before the load; extra steps after. */
export function clusterPlan(h: Hypothesis, opts: { root?: string; experimentsDir?: string } = {}): ClusterPlan {
  const root = opts.root ?? ROOT;
  const dir = opts.experimentsDir ?? EXPERIMENTS_DIR;
  if (!h.targets.includes("cluster")) throw new Error(`experiment "${h.name}" is local-only (no Istio YAML): run it with --target local`);
  const yaml = join(dir, `${h.name}.yaml`);
  if (!existsSync(yaml)) throw new Error(`experiment "${h.name}": ${yaml} does not exist (the mesh experiments are written in mesh/experiments/)`);
  const rel = relative(root, yaml) || yaml;
  const extra = (list: string[][] | undefined, why: string) => (list ?? []).map((argv) => ({ argv, why }));
  return {
    snapshot: {
      argv: ["kubectl", "get", "-f", rel, "-o", "json", "--ignore-not-found"],
      why: "save the live objects the experiment replaces, to put them back after",
    },
    objects: objectsIn(yaml),
    apply: [
      { argv: ["kubectl", "apply", "-f", rel], why: "inject the fault: the experiment's Istio resources replace the base ones of the same name" },
      ...extra(h.fault.cluster?.before, "experiment step (from the hypothesis file)"),
    ],
    revert: extra(h.fault.cluster?.after, "experiment clean-up step (from the hypothesis file)"),
  };
}

function objectsIn(file: string): ObjectRef[] {
  const out: ObjectRef[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message.split("\n")[0]}`);
    const obj = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } } | null;
    if (!obj) continue;
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new Error(`${file}: an object without apiVersion, kind or metadata.name`);
    out.push({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace });
  }
  return out;
}

// biome-ignore lint/suspicious/noExplicitAny: objects from kubectl's JSON output
type Live = Record<string, any>;

/** Fields the API server owns: applying them back would fail (resourceVersion) or mean nothing. */
function asApplied(obj: Live): Live {
  const { status: _status, ...rest } = obj;
  const { resourceVersion, uid, creationTimestamp, generation, managedFields, selfLink, ...metadata } = rest.metadata ?? {};
  const annotations = { ...(metadata.annotations ?? {}) };
  delete annotations["kubectl.kubernetes.io/last-applied-configuration"]; // kubectl writes it anew
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  else delete metadata.annotations;
  return { ...rest, metadata };
}

const sameObject = (a: ObjectRef, b: Live) =>
  a.kind === b.kind && a.name === b.metadata?.name && (a.namespace === undefined || a.namespace === b.metadata?.namespace);

/**
 * What puts the cluster back as `snapshot` (the output of plan.snapshot) saw it: the saved objects applied
 * again, and the file's objects that did not exist before deleted.
 */
export function restoreCommands(objects: ObjectRef[], snapshot: string): Command[] {
  const text = snapshot.trim();
  const parsed: Live | undefined = text ? JSON.parse(text) : undefined;
  const live: Live[] = !parsed ? [] : parsed.kind === "List" ? (parsed.items ?? []) : [parsed];
  const list = (items: Live[]) => `${JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 2)}\n`;
  const describe = (refs: { kind: string; name: string }[]) => refs.map((o) => `${o.kind} ${o.name}`).join(", ");
  const out: Command[] = [];
  if (live.length > 0)
    out.push({
      argv: ["kubectl", "apply", "-f", "-"],
      why: `revert: put back ${describe(live.map((o) => ({ kind: o.kind, name: o.metadata?.name })))} as they were before the experiment`,
      stdin: list(live.map(asApplied)),
    });
  const created = objects.filter((o) => !live.some((l) => sameObject(o, l)));
  if (created.length > 0)
    out.push({
      argv: ["kubectl", "delete", "-f", "-", "--ignore-not-found"],
      why: `revert: delete ${describe(created)}, which did not exist before the experiment`,
      stdin: list(
        created.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.name, ...(o.namespace ? { namespace: o.namespace } : {}) } })),
      ),
    });
  return out;
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
  /** stdout and stderr, for messages. */
  output: string;
  stdout: string;
}

/** Runs one command (no shell); never throws on a non-zero exit, the caller decides. */
export function runCommand(cmd: Command, env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<CommandRun> {
  return new Promise((resolve) => {
    const child = execFile(cmd.argv[0], cmd.argv.slice(1), { env, cwd, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 127) : 0;
      resolve({ ...cmd, code, output: `${stdout}${stderr}`.trim(), stdout });
    });
    child.stdin?.on("error", () => undefined); // a command that exits without reading its input: its exit code says why
    child.stdin?.end(cmd.stdin ?? "");
  });
}

/**
 * Waits until a change is in effect in the mesh, by observing it (e.g. the local control plane's istiod holds
 * the API server's version and its clients acknowledged it: tools/stack/kube/mesh.ts). `since`: when it was made.
 */
export type Settle = (phase: "applied" | "reverted", since: number) => Promise<void>;

/**
 * Saves the live objects, applies the plan, runs `during` (the load), and always puts the saved objects back,
 * even when the load fails. Fails before touching anything when kubectl is not on PATH or the objects cannot
 * be read, and stops (then reverts) when an apply step fails. With `settle`, the load starts only once the
 * applied change is in effect, and the revert is waited for the same way.
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
  const saved = await runCommand(plan.snapshot, env);
  commands.push(saved);
  if (saved.code !== 0) throw new Error(`${plan.snapshot.argv.join(" ")} failed (exit ${saved.code}), nothing applied: ${saved.output}`);
  let restore: Command[];
  try {
    restore = restoreCommands(plan.objects, saved.stdout);
  } catch (err) {
    throw new Error(`${plan.snapshot.argv.join(" ")} printed no kubectl JSON, nothing applied: ${(err as Error).message}`);
  }
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
    for (const cmd of [...restore, ...plan.revert]) reverted.push(await runCommand(cmd, env));
    commands.push(...reverted);
    const bad = reverted.find((r) => r.code !== 0);
    // A mesh left with the fault applied matters more than the experiment's own result: say so loudly.
    if (bad)
      console.error(
        `REVERT FAILED: ${bad.argv.join(" ")} (exit ${bad.code}): ${bad.output}\nput the mesh policy back by hand: kubectl apply -k mesh (or -k mesh/canary on a canary cluster). What was there:\n${saved.stdout}`,
      );
    else await settle?.("reverted", revertedAt);
  }
  return { result, commands };
}

/** Cluster audit through payment's own RPC: orders with more than one approved payment (a double charge). */
export async function auditCharges(payment: string, orderIds: string[]): Promise<string> {
  const transport = createGrpcJsTransport({ target: payment, defaultTimeoutMs: 5000 });
  const client = createClient(PaymentService, transport);
  let doubled = 0;
  let unreadable = 0;
  try {
    for (const orderId of new Set(orderIds)) {
      try {
        const { payments } = await client.listPayments({ orderId, pageSize: 100 });
        if (payments.filter((p) => p.state === PaymentState.APPROVED).length > 1) doubled++;
      } catch {
        unreadable++;
      }
    }
  } finally {
    transport.close();
  }
  return `${new Set(orderIds).size} accepted orders audited, ${doubled} with more than one approved payment, ${unreadable} unreadable`;
}
