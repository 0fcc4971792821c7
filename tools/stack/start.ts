// Runs meshmart on one machine, no cluster: the embedded database and every service (catalog as v1 and v2),
// each as its own process on its default port (DEFAULT_PORTS in tools/stack/units.ts), with readable logs. Waits for
// health, prints endpoints and grpcurl recipes. Ctrl-C stops everything cleanly. `npm start` runs it compiled
// (node dist/start.js, after npm run build), and the services it starts too (dist/<service>.js).
//
//   npm start                    default ports, data kept in .cache/devdb/data
//   npm start -- --mode monolith all services in one process, on one port (50050; admin 9090)
//   npm start -- --fresh         start from an empty database
//   npm start -- --mesh          the services in a local Istio mesh: real istiod from the rendered mesh/ policy,
//                                orders → catalog/payment as proxyless gRPC (tools/stack/mesh/); --mesh-config mesh/canary
//                                for the 90/10 split. Builds istiod + istioctl first if needed (setup.sh --mesh).
//   npm start -- --mesh --kube   the same mesh on a local Kubernetes control plane (tools/stack/kube/): etcd +
//                                kube-apiserver on loopback, the manifests applied with kubectl, a WorkloadEntry per
//                                process, istiod in Kubernetes mode; KUBECONFIG=.cache/kube/kubeconfig. Builds them
//                                first if needed (setup.sh --mesh --kube).
//   npm start -- --ports auto    free ports everywhere (tests); prints "meshmart ready {json}"
//   MONGODB_URI=mongodb://...    use that server instead of the embedded one
//   Spans go to <data-dir>/traces/<unit>.jsonl (npm run trace -- <order id>); OTEL_SDK_DISABLED=true turns that off,
//   OTEL_EXPORTER_OTLP_ENDPOINT sends them to a collector as well.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../root.js";
import { claim, inUse, ownerFile, refusal } from "./in-use.js";
import { writeLocalMeshInfo } from "./kube/local.js";
import { DEFAULT_PORTS, type Endpoints, MONOLITH_PORTS, type MonolithUnit, type Stack, type StackOptions, startStack, UNITS } from "./launcher.js";
import { ensureMeshTools } from "./mesh/istiod.js";
import { formatReadyLine } from "./ready-line.js";

const { values: args } = parseArgs({
  options: {
    fresh: { type: "boolean", default: false },
    ports: { type: "string", default: "default" },
    mode: { type: "string", default: "services" },
    mesh: { type: "boolean", default: false },
    kube: { type: "boolean", default: false },
    "mesh-config": { type: "string", default: "mesh" },
    "data-dir": { type: "string", default: join(ROOT, ".cache", "devdb", "data") },
  },
});

const auto = args.ports === "auto";

let stack: Stack | Stack<MonolithUnit> | undefined;
let stopping = false;
let release: () => void = () => undefined;
process.on("exit", () => release());

async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  console.error("\nstopping meshmart...");
  await stack?.stop();
  release();
  process.exit(code);
}
process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));

async function main() {
  if (args.ports !== "auto" && args.ports !== "default") throw new Error(`--ports must be auto or default, got "${args.ports}"`);
  // Before anything is deleted or opened: is a stack already running on this data directory or these ports?
  const ownDb = !process.env.MONGODB_URI;
  const fixed = args.mode === "monolith" ? MONOLITH_PORTS : Object.values(DEFAULT_PORTS).flat();
  const why = refusal(args["data-dir"], await inUse(args["data-dir"], auto ? [] : [...fixed, ...(ownDb ? [27017] : [])]));
  if (why) throw new Error(why);
  mkdirSync(dirname(ownerFile(args["data-dir"])), { recursive: true });
  release = claim(args["data-dir"]);
  if (args.fresh) rmSync(args["data-dir"], { recursive: true, force: true });
  // What every mode shares; the monolith is one unit, the services five.
  const common: Omit<StackOptions<string>, "monolith"> = {
    ports: auto ? "auto" : "default",
    mongoUri: process.env.MONGODB_URI,
    dataDir: args["data-dir"],
    traces: { dir: join(args["data-dir"], "traces") },
    stdio: "inherit",
    logFormat: process.env.LOG_FORMAT === "json" ? "json" : "pretty",
    onUnexpectedExit: (unit, code, signal) => {
      // While starting, startStack stops what it started and throws (main's catch reports it); exiting here
      // first would leave those processes running with no parent.
      if (!stack) return;
      console.error(`${unit} exited (${signal ?? code}); stopping the rest`);
      void stopAll(1);
    },
  };
  if (args.mode === "monolith") {
    // The one process writes one span file; a TRACES_FILE in the environment still names it, as it always did.
    const tracesFile = process.env.TRACES_FILE;
    const monolith = await startStack({ ...common, monolith: true, env: tracesFile ? { monolith: { TRACES_FILE: tracesFile } } : undefined });
    stack = monolith;
    return printMonolith(monolith);
  }
  if (args.mesh || args.kube) args.mode = "mesh";
  if (args.mode !== "services" && args.mode !== "mesh") throw new Error(`--mode must be services, monolith or mesh, got "${args.mode}"`);
  const mesh = args.mode === "mesh";
  // istiod and istioctl are built only for the mesh (several minutes of Go the first time): not for plain npm start.
  if (mesh) ensureMeshTools();
  // The control plane too only when asked for (about 6 minutes of Go the first time).
  if (args.kube) execFileSync(join(ROOT, "tools", "setup", "setup.sh"), ["--kube"], { stdio: ["ignore", "inherit", "inherit"] });

  const services = await startStack({
    ...common,
    mesh: mesh
      ? {
          kustomization: args["mesh-config"],
          clients: ["load", "cli"],
          onIstiodExit: (code, signal) => void istiodDied(code, signal),
          kube: args.kube
            ? {
                ports: auto ? "auto" : undefined,
                dir: join(ROOT, ".cache", "kube"),
                onExit: (part, code, signal) =>
                  // Stopping the stack stops etcd and kube-apiserver too: that is not news.
                  stopping ||
                  console.error(
                    `${part} exited (${signal ?? code}): istiod and the services keep serving on the config they last received, but kubectl, experiments and config changes fail until you restart npm start -- --mesh --kube`,
                  ),
              }
            : undefined,
        }
      : undefined,
  });
  stack = services;
  if (services.mesh) {
    // The clients' bootstraps on disk, for `npm run flow -- --mesh` and `npm run load -- --target mesh`.
    const dir = join(ROOT, ".cache", "mesh");
    mkdirSync(dir, { recursive: true });
    for (const client of ["cli", "load"]) writeFileSync(join(dir, `${client}-bootstrap.json`), `${JSON.stringify(services.mesh.bootstrap(client), null, 2)}\n`);
    const kube = services.mesh.kube;
    // For `KUBECONFIG=.cache/kube/kubeconfig npm run experiment -- <name> --target cluster` in another terminal.
    if (kube)
      writeLocalMeshInfo({
        kubeconfig: kube.controlPlane.kubeconfig,
        istiod: kube.istiod.httpUrl,
        targets: { ...services.mesh.targets, xdsBootstrap: JSON.stringify(services.mesh.bootstrap("load")) },
        mongodb: services.mongoUri,
      });
  }
  if (auto) {
    const m = services.mesh;
    const meshInfo = m
      ? {
          mesh: {
            istiod: m.istiod.httpUrl,
            xds: m.istiod.xdsAddress,
            pid: m.istiod.pid(),
            configDir: m.config?.dir,
            targets: m.targets,
            bootstrap: { load: m.bootstrap("load"), cli: m.bootstrap("cli") },
          },
        }
      : {};
    console.log(formatReadyLine({ ...services.ready(), pids: services.pids(), ...meshInfo }));
  } else if (!services.mesh) printWelcome(services.endpoints, services.mongoUri);
  if (services.mesh) printMesh(stack);
}

/** istiod died: the services keep their last config (xDS clients cache it); start it again, as Kubernetes would. */
async function istiodDied(code: number | null, signal: NodeJS.Signals | null) {
  const istiod = stack?.mesh?.istiod;
  if (!istiod || stopping) return;
  console.error(`istiod exited (${signal ?? code}); the services keep serving on the config they last received (xDS clients cache it). Restarting istiod...`);
  for (let attempt = 1; !stopping; attempt++) {
    try {
      await istiod.restart();
      console.error(`istiod is back (pid ${istiod.pid()}); the services reconnect to it and get its config again`);
      return;
    } catch (err) {
      console.error(`istiod restart ${attempt} failed: ${err instanceof Error ? err.message : err}`);
      await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt))); // back off, like a crash loop
    }
  }
}

function printMesh(s: Stack) {
  const m = s.mesh;
  if (!m) return;
  console.log(`
Local mesh: istiod (pid ${m.istiod.pid()}) serves xDS on ${m.istiod.xdsAddress}, ${
    m.kube
      ? `in Kubernetes mode, watching the local API server ${m.kube.controlPlane.server}
(${m.kube.applied.join(" and ")} applied with kubectl, a WorkloadEntry per process; no pod runs: no kubelet).
  kubectl:    export KUBECONFIG=${m.kube.controlPlane.kubeconfig}; .cache/bin/kubectl get ns,svc,sa,deploy,workloadentries -n meshmart
  experiment: KUBECONFIG=${m.kube.controlPlane.kubeconfig} npm run experiment -- canary-50 --target cluster`
      : `reading ${m.config?.dir}
(the kustomize-rendered ${args["mesh-config"]}/ policy + a ServiceEntry per Service and a WorkloadEntry per process).`
  }
  watch it:   curl ${m.istiod.httpUrl}/debug/configz   (config)   ${m.istiod.httpUrl}/debug/syncz   (who got what)
  through it: npm run flow -- --mesh                   (as the mesh client "cli", .cache/mesh/cli-bootstrap.json)
              npm run load -- --target mesh --rate 20 --duration 30s
Not given to istiod (proxyless gRPC cannot honour it here):
${m.leftOut.map((l) => `  ${l.kind} ${l.name} (${l.file}): ${l.reason}`).join("\n")}

Security: STRICT mTLS and the AuthorizationPolicies of mesh/ are enforced in every process (grpc-js-xds). Each
workload holds a certificate for its ServiceAccount from the local CA in ${m.security.identities.ca.dir}
(renewed while running); "cli" and "load" hold the ingress gateway's identity. The mesh ports accept mTLS only;
health and reflection are also served in plaintext outside the mesh:
${UNITS.map((u) => `  ${u.padEnd(11)} mesh ${s.endpoints[u].grpc} (mTLS)   local ${s.endpoints[u].local} (health, reflection)   admin ${s.endpoints[u].admin}`).join("\n")}
  .cache/bin/grpcurl -plaintext ${s.endpoints.identity.local} list`);
}

function printMonolith(s: Stack<MonolithUnit>) {
  const { grpc, admin } = s.endpoints.monolith;
  if (auto) return console.log(formatReadyLine({ ...s.ready(), pids: s.pids() }));
  console.log(`
meshmart is up as a monolith (database ${s.mongoUri}): identity, catalog (v1), orders and payment in one
process, on one port; orders calls catalog and payment in memory.
  monolith    grpc ${grpc}   admin ${admin} (/metrics, /readyz, /faults, /.well-known/jwks.json)

  .cache/bin/grpcurl -plaintext ${grpc} list
  npm run flow -- --identity ${grpc} --catalog ${grpc} --orders ${grpc}

Ctrl-C stops everything.`);
}

function printWelcome(at: Endpoints, mongoUri: string) {
  const line = (u: keyof Endpoints) => `  ${u.padEnd(11)} grpc ${at[u].grpc}   admin ${at[u].admin} (/metrics, /readyz, /faults)`;
  console.log(`
meshmart is up (database ${mongoUri})
${UNITS.map(line).join("\n")}

Try it (grpcurl is in .cache/bin; every service has reflection and health):
  G=.cache/bin/grpcurl
  $G -plaintext ${at.identity.grpc} list
  $G -plaintext -d '{"email":"ada@example.com","password":"correct-horse-1","display_name":"Ada"}' ${at.identity.grpc} meshmart.identity.v1.IdentityService/Register
  TOKEN=$($G -plaintext -d '{"email":"ada@example.com","password":"correct-horse-1"}' ${at.identity.grpc} meshmart.identity.v1.IdentityService/Login | sed -n 's/.*"accessToken": "\\(.*\\)".*/\\1/p')
  $G -plaintext -d '{"page_size":3}' ${at["catalog-v1"].grpc} meshmart.catalog.v1.CatalogService/ListProducts
  $G -plaintext -v -d '{"sku":"mug-blue"}' ${at["catalog-v2"].grpc} meshmart.catalog.v1.CatalogService/GetProduct   # x-served-by: catalog-v2
  $G -plaintext -H "authorization: Bearer $TOKEN" -d '{"idempotency_key":"first","items":[{"sku":"mug-blue","quantity":1}],"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}' ${at.orders.grpc} meshmart.orders.v1.OrderService/PlaceOrder
  npm run flow        # the whole register → login → order walk in one command

Ctrl-C stops everything.`);
}

main().catch((err) => {
  console.error(`meshmart failed to start: ${err instanceof Error ? err.message : err}`);
  void stopAll(1);
});
