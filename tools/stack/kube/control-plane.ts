// A Kubernetes control plane on one machine: etcd and kube-apiserver (built by tools/setup/kube/setup.sh) on
// loopback, with token auth and RBAC on, and a kubeconfig for kubectl and istiod. No kubelet, scheduler or
// controller manager: objects are stored, validated and watched exactly as on a cluster, but no pod ever runs.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../root.js";
import { BIN, freePort } from "../devdb.js";

export const KUBE_BIN = { etcd: join(BIN, "etcd"), apiserver: join(BIN, "kube-apiserver"), kubectl: join(BIN, "kubectl") };
/** Istio's CRDs, copied by tools/setup/kube/setup.sh from the istio.io/istio module istiod is built from. */
export const ISTIO_CRDS = join(ROOT, ".cache", "kube", "istio-crds.yaml");
/** `npm start -- --mesh=kube` on fixed ports; tests take free ones. */
export const DEFAULT_KUBE_PORTS = { etcd: 2379, etcdPeer: 2380, apiserver: 6443 };
export type KubePart = "etcd" | "kube-apiserver";
const OUTPUT_KEEP = 32 * 1024;

export interface ControlPlaneOptions {
  /** Working directory (etcd data, certificates, kubeconfig); a temporary one (removed by stop) when omitted. */
  dir?: string;
  ports?: "auto" | Partial<typeof DEFAULT_KUBE_PORTS>;
  /** etcd or the API server exited without being asked to. */
  onExit?: (part: KubePart, code: number | null, signal: NodeJS.Signals | null) => void;
  readyTimeoutMs?: number;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  kubeconfig: string;
  ports: typeof DEFAULT_KUBE_PORTS;
  dir: string;
  /** Runs the built kubectl against this control plane (no shell); never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** Like kubectl, but throws with kubectl's own message on a non-zero exit; resolves with stdout. */
  kubectlOk(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** Environment for a child that should use this control plane: KUBECONFIG, and the built kubectl first on PATH. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  isRunning(part: KubePart): boolean;
  /** Also tells `fn` when etcd or the API server exits without being asked to. */
  onExit(fn: (part: KubePart, code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** Sends `signal` (SIGKILL by default) to one part and waits for its exit (a fault, for tests); it stays down. */
  kill(part: KubePart, signal?: NodeJS.Signals): Promise<void>;
  pid(part: KubePart): number | undefined;
  output(part: KubePart): string;
  /** Stops the API server, then etcd; removes a temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** Fails with a message naming the port and what wanted it when something already listens there. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  const srv = createServer();
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    srv.once("error", resolve);
    srv.listen(port, "127.0.0.1", () => resolve(undefined));
  });
  if (!err) return new Promise((r) => srv.close(() => r()));
  if (err.code === "EADDRINUSE") throw new Error(`port ${port} on 127.0.0.1 (${what}) is already in use: stop what listens there, or start with --ports auto`);
  throw new Error(`cannot listen on 127.0.0.1:${port} (${what}): ${err.message}`);
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  for (const [name, bin] of Object.entries(KUBE_BIN))
    if (!existsSync(bin)) throw new Error(`${name} is not built (${bin}): run tools/setup/setup.sh --kube (about 6 minutes of Go build the first time)`);
  const auto = opts.ports === "auto";
  const ports = { ...DEFAULT_KUBE_PORTS };
  if (auto) for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  else Object.assign(ports, opts.ports);
  await assertPortFree(ports.etcd, "etcd client");
  await assertPortFree(ports.etcdPeer, "etcd peer");
  await assertPortFree(ports.apiserver, "kube-apiserver");

  const temp = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "meshmart-kube-"));
  // A fresh cluster every start: the launcher re-applies everything, and a stale etcd would hold objects
  // (WorkloadEntries with old addresses) the launcher did not create.
  for (const sub of ["etcd", "certs"]) rmSync(join(dir, sub), { recursive: true, force: true });
  mkdirSync(join(dir, "certs"), { recursive: true });
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
  const token = randomBytes(24).toString("hex");
  // The launcher's own identity: a member of system:masters, like a kind cluster's admin kubeconfig.
  writeFileSync(join(dir, "tokens.csv"), `${token},meshmart-admin,meshmart-admin,"system:masters"\n`, { mode: 0o600 });
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const kubeconfig = join(dir, "kubeconfig");
  const caFile = join(dir, "certs", "apiserver.crt"); // self-signed by the API server at its first start

  const procs = new Map<KubePart, ChildProcess>();
  const outputs = new Map<KubePart, string>();
  let stopping = false;
  const exitHandlers = opts.onExit ? [opts.onExit] : [];
  const launch = (part: KubePart, bin: string, args: string[]) => {
    const child = spawn(bin, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => outputs.set(part, ((outputs.get(part) ?? "") + d).slice(-OUTPUT_KEEP));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.once("exit", (code, signal) => {
      if (procs.get(part) === child) procs.delete(part);
      if (!stopping) for (const fn of exitHandlers) fn(part, code, signal);
    });
    procs.set(part, child);
    return child;
  };
  const died = (part: KubePart, child: ChildProcess) =>
    once(child, "exit").then(([code]) => {
      throw new Error(`${part} exited (${code}) before it was ready:\n${(outputs.get(part) ?? "").slice(-3000)}`);
    });

  const stopAll = async () => {
    stopping = true;
    for (const part of ["kube-apiserver", "etcd"] as KubePart[]) {
      const child = procs.get(part);
      if (!child) continue;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(force);
    }
  };

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  try {
    const peer = `http://127.0.0.1:${ports.etcdPeer}`;
    const client = `http://127.0.0.1:${ports.etcd}`;
    const etcd = launch("etcd", KUBE_BIN.etcd, [
      "--name=meshmart",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=meshmart=${peer}`,
      "--log-level=warn",
    ]);
    await Promise.race([poll(`etcd on ${client}`, timeoutMs, async () => (await fetch(`${client}/health`)).ok), died("etcd", etcd)]);

    const apiserver = launch("kube-apiserver", KUBE_BIN.apiserver, [
      `--etcd-servers=${client}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${join(dir, "certs")}`,
      "--authorization-mode=RBAC",
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--profiling=false",
      "--v=0",
    ]);
    await Promise.race([
      poll(`kube-apiserver on ${server}`, timeoutMs, async () => existsSync(caFile) && (await httpsGet(`${server}/readyz`, token, caFile)) === 200),
      died("kube-apiserver", apiserver),
    ]);
    writeFileSync(kubeconfig, kubeconfigYaml(server, caFile, token), { mode: 0o600 });
  } catch (err) {
    await stopAll();
    if (temp) rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const kubectl = kubectlFor(kubeconfig);
  let stopped = false;
  return {
    server,
    kubeconfig,
    ports,
    dir,
    kubectl,
    async kubectlOk(args, o) {
      const r = await kubectl(args, o);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
      return r.stdout;
    },
    env: (base = process.env) => ({ ...base, KUBECONFIG: kubeconfig, PATH: `${BIN}:${base.PATH ?? ""}` }),
    isRunning: (part) => procs.has(part),
    onExit: (fn) => void exitHandlers.push(fn),
    async kill(part, signal = "SIGKILL") {
      const child = procs.get(part);
      if (!child) return;
      const exited = once(child, "exit");
      child.kill(signal);
      await exited;
    },
    pid: (part) => procs.get(part)?.pid,
    output: (part) => outputs.get(part) ?? "",
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopAll();
      if (temp) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type Kubectl = ControlPlane["kubectl"];

/** The built kubectl (.cache/bin) against `kubeconfig`; never throws on a non-zero exit. */
export function kubectlFor(kubeconfig: string): Kubectl {
  return (args, o = {}) =>
    new Promise((resolve) => {
      const child = execFile(
        KUBE_BIN.kubectl,
        [`--kubeconfig=${kubeconfig}`, ...args],
        { timeout: o.timeoutMs ?? 120_000, maxBuffer: 64 << 20 },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(o.input ?? "");
    });
}

function kubeconfigYaml(server: string, caFile: string, token: string): string {
  const ca = readFileSync(caFile).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: meshmart-local
  cluster: {server: "${server}", certificate-authority-data: ${ca}}
users:
- name: meshmart-admin
  user: {token: ${token}}
contexts:
- name: meshmart-local
  context: {cluster: meshmart-local, user: meshmart-admin}
current-context: meshmart-local
`;
}

async function poll(what: string, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      if (await ready()) return;
      last = "not ready";
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms (last: ${last})`);
}

function httpsGet(url: string, token: string, caFile: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(caFile), headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}
