// The Istio policy, checked offline against the protos and the services' code: the real mesh passes, and each
// kind of mistake (made on a copy of the rendered objects, of the experiment files or of the sources) fails
// with a message naming the file and the field. The rendering itself is test/tools/manifests.test.ts's business;
// here the repository is rendered once and each test breaks a deep copy.
// Over 300 lines on purpose: every broken copy is made from that one rendering, which takes long to make.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { parse } from "yaml";
import { checkManifests, type Problem } from "../../tools/checks/check-manifests.js";
import { authorize } from "../../tools/checks/manifests/mesh-policy/authorize.js";
import { INGRESS_PRINCIPAL } from "../../tools/checks/manifests/mesh-policy/cluster.js";
import { callGraph, RPCS, readCode } from "../../tools/checks/manifests/mesh-policy/code.js";
import { experimentFiles } from "../../tools/checks/manifests/mesh-policy/experiments.js";
import { checkMeshPolicy } from "../../tools/checks/manifests/mesh-policy/index.js";
import { renderAll } from "../../tools/checks/manifests/render.js";
import { loadSchemas, type Schemas, sharedSchemasDir } from "../../tools/checks/manifests/schemas.js";
import { checkSkaffold } from "../../tools/checks/manifests/skaffold-checks.js";
import type { Obj, Render, Stack } from "../../tools/checks/manifests/types.js";
import { ROOT } from "../../tools/root.js";
import { CLUSTER_EXPERIMENTS } from "../support/experiments.js";

const show = (problems: Problem[]) => problems.map((p) => `${p.file}: ${p.message}`).join("\n");

const EXPERIMENTS = CLUSTER_EXPERIMENTS;

describe("mesh policy: Istio semantics checked offline", function () {
  this.timeout(120_000); // the first render compiles every Istio CRD schema
  let schemas: Schemas;
  let renders: Render[];
  let realStacks: Stack[];
  let stacks: Stack[];
  let tmp: string;

  before(() => {
    schemas = loadSchemas(sharedSchemasDir(ROOT));
    const rendered = renderAll(ROOT);
    expect(show(rendered.problems)).to.equal("");
    renders = rendered.renders;
    const skaffold = parse(readFileSync(join(ROOT, "skaffold.yaml"), "utf8"));
    realStacks = checkSkaffold(ROOT, skaffold, schemas.skaffold, renders, new Set()).stacks;
  });
  beforeEach(() => {
    stacks = structuredClone(realStacks);
    tmp = mkdtempSync(join(tmpdir(), "meshmart-mesh-policy-"));
    cpSync(join(ROOT, "mesh"), join(tmp, "mesh"), { recursive: true });
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  const check = (codeRoot?: string) => checkMeshPolicy({ root: tmp, stacks, renders, schemas, codeRoot });

  /** The object of that kind and name in a profile's stack (mesh by default), to break in place. */
  function object(kind: string, name: string, profile = "mesh"): Obj {
    const stack = stacks.find((s) => s.profile === profile);
    const found = stack?.objects.find((m) => m.obj.kind === kind && m.obj.metadata?.name === name);
    expect(found, `${kind} ${name} in stack ${profile}`).to.exist;
    return (found as { obj: Obj }).obj;
  }

  function expectProblem(problems: Problem[], file: string, ...patterns: RegExp[]) {
    const hits = problems.filter((p) => p.file === file && patterns.every((re) => re.test(p.message)));
    expect(hits, `problems were:\n${show(problems)}`).to.have.length.greaterThan(0);
  }

  /** Replaces `from` (which must be there) in a file of the temporary copy. */
  function edit(dir: string, file: string, from: string | RegExp, to: string) {
    const path = join(dir, file);
    const before = readFileSync(path, "utf8");
    const after = before.replace(from, to);
    expect(after, `${file} should contain ${from}`).not.to.equal(before);
    writeFileSync(path, after);
  }

  const rule = (policy: string, index: number) => object("AuthorizationPolicy", policy).spec.rules[index];

  describe("the real repository", () => {
    it("passes, base, canary and every experiment", () => {
      expect(show(check())).to.equal("");
    });

    it("has one YAML per named experiment, and nothing else but hypotheses and the kustomization", () => {
      expect(experimentFiles(ROOT).sort()).to.deep.equal(EXPERIMENTS.map((e) => `mesh/experiments/${e}.yaml`).sort());
    });

    it("derives the call graph from the code: the saga's calls, with the variable that holds each address", () => {
      const code = readCode(ROOT);
      const calls = callGraph(code).map((c) => `${c.caller} -> ${c.rpc.service}/${c.rpc.method} via ${c.envVar}`);
      expect(calls.sort()).to.deep.equal(
        [
          "orders -> CatalogService/ReserveStock via CATALOG_ADDR",
          "orders -> CatalogService/CommitReservation via CATALOG_ADDR",
          "orders -> CatalogService/ReleaseStock via CATALOG_ADDR",
          "orders -> PaymentService/Charge via PAYMENT_ADDR",
          "orders -> PaymentService/Refund via PAYMENT_ADDR",
          "orders -> PaymentService/ListPayments via PAYMENT_ADDR",
        ].sort(),
      );
    });

    it("reads every RPC from the generated descriptors", () => {
      expect(RPCS.map((r) => r.path)).to.include.members([
        "/meshmart.payment.v1.PaymentService/Charge",
        "/meshmart.catalog.v1.CatalogService/ReserveStock",
        "/meshmart.identity.v1.IdentityService/Register",
        "/meshmart.orders.v1.OrderService/PlaceOrder",
      ]);
    });
  });

  describe("authorization semantics (Istio's order of evaluation)", () => {
    const labels = { app: "payment" };
    const charge = { method: "POST", path: "/meshmart.payment.v1.PaymentService/Charge" };
    const allowNothing = { spec: {} };
    const allowOrders = {
      spec: {
        selector: { matchLabels: labels },
        rules: [{ from: [{ source: { principals: ["cluster.local/ns/meshmart/sa/orders"] } }], to: [{ operation: { paths: [charge.path] } }] }],
      },
    };
    it("an ALLOW policy with no rules refuses everything", () => {
      expect(authorize([allowNothing], { principal: "cluster.local/ns/meshmart/sa/orders", labels, port: 50051, http: charge }).allowed).to.equal(false);
      expect(authorize([], { labels, port: 50051, http: charge }).allowed).to.equal(true);
    });
    it("one matching ALLOW rule lets the caller in, other callers stay out", () => {
      expect(authorize([allowNothing, allowOrders], { principal: "cluster.local/ns/meshmart/sa/orders", labels, port: 50051, http: charge }).allowed).to.equal(
        true,
      );
      expect(authorize([allowNothing, allowOrders], { principal: INGRESS_PRINCIPAL, labels, port: 50051, http: charge }).allowed).to.equal(false);
    });
    it("a DENY wins over an ALLOW, and an ALLOW rule with HTTP fields never matches plain TCP", () => {
      const deny = { spec: { action: "DENY", rules: [{ to: [{ operation: { paths: ["/meshmart.payment.v1.*"] } }] }] } };
      expect(authorize([allowOrders, deny], { principal: "cluster.local/ns/meshmart/sa/orders", labels, port: 50051, http: charge }).allowed).to.equal(false);
      expect(authorize([allowNothing, allowOrders], { principal: "cluster.local/ns/meshmart/sa/orders", labels, port: 50051 }).allowed).to.equal(false);
    });
  });

  describe("authorization policies", () => {
    it("fails a principal that is no ServiceAccount", () => {
      rule("payment", 0).from[0].source.principals = ["cluster.local/ns/meshmart/sa/order"];
      expectProblem(
        check(),
        "mesh/base/authorization.yaml",
        /AuthorizationPolicy payment/,
        /spec\.rules\[0\]\.from\[0\]\.source\.principals/,
        /sa\/order is neither/,
      );
    });

    it("fails a method path that is not in the protos", () => {
      rule("payment", 0).to[0].operation.paths[0] = "/meshmart.payment.v1.PaymentService/Charges";
      expectProblem(
        check(),
        "mesh/base/authorization.yaml",
        /AuthorizationPolicy payment/,
        /operation\.paths: \/meshmart\.payment\.v1\.PaymentService\/Charges is no RPC in proto/,
      );
    });

    it("fails when a service may no longer reach its database (plain TCP)", () => {
      rule("mongodb", 0).from[0].source.principals = rule("mongodb", 0).from[0].source.principals.filter((p: string) => !p.endsWith("/orders"));
      expectProblem(check(), "mesh/base/authorization.yaml", /orders \(ServiceAccount orders\) calls TCP mongodb:27017/);
    });

    it("fails a Deployment that turns off Istio's probe rewrite (kubelet probes would meet STRICT mTLS)", () => {
      object("Deployment", "payment-v1").spec.template.metadata.annotations = { "sidecar.istio.io/rewriteAppHTTPProbers": "false" };
      expectProblem(check(), "services/payment/k8s/deployment.yaml", /Deployment payment-v1/, /rewriteAppHTTPProbers/);
    });
  });

  describe("ingress", () => {
    it("fails a policy that lets the gateway call an RPC no ingress route sends", () => {
      const vs = object("VirtualService", "meshmart-ingress");
      for (const r of vs.spec.http) if (r.match) r.match = r.match.filter((m: Obj) => m.uri?.exact !== "/meshmart.catalog.v1.CatalogService/SearchProducts");
      expectProblem(check(), "mesh/base/authorization.yaml", /ingress gateway call CatalogService\/SearchProducts, which no ingress route sends/);
    });

    it("fails an ingress route to an RPC the gateway may not call", () => {
      rule("orders", 0).to[0].operation.paths.pop();
      expectProblem(
        check(),
        "mesh/base/ingress.yaml",
        /VirtualService meshmart-ingress/,
        /routes OrderService\/ListOrders to orders, but no AuthorizationPolicy allows/,
      );
    });

    it("fails an ingress route to a port the Service does not have", () => {
      object("VirtualService", "meshmart-ingress").spec.http[4].route[0].destination.port.number = 50052;
      expectProblem(check(), "mesh/base/ingress.yaml", /spec\.http\[4\] \(orders\)\.route\[0\]\.destination\.port: 50052 is no port of Service orders/);
    });

    it("fails an ingress catalog split that differs from the mesh's", () => {
      const route = object("VirtualService", "meshmart-ingress").spec.http.find((r: Obj) => r.name === "catalog");
      route.route = [
        { destination: { host: "catalog", subset: "v1", port: { number: 50051 } }, weight: 50 },
        { destination: { host: "catalog", subset: "v2", port: { number: 50051 } }, weight: 50 },
      ];
      expectProblem(check(), "mesh/base/ingress.yaml", /routes catalog as/, /VirtualService catalog \(mesh\/base\/routes\.yaml\)/, /keep them the same/);
    });
  });

  describe("JWT at the ingress", () => {
    it("fails an issuer or audience that is not identity's, and a token that would be stripped", () => {
      const jwt = object("RequestAuthentication", "meshmart-identity").spec.jwtRules[0];
      jwt.issuer = "identity";
      jwt.audiences = ["shop"];
      jwt.forwardOriginalToken = false;
      const problems = check();
      expectProblem(problems, "mesh/base/jwt.yaml", /spec\.jwtRules\[0\]\.issuer: "identity" is not identity's JWT_ISSUER default "meshmart-identity"/);
      expectProblem(problems, "mesh/base/jwt.yaml", /spec\.jwtRules\[0\]\.audiences: must include identity's JWT_AUDIENCE "meshmart"/);
      expectProblem(problems, "mesh/base/jwt.yaml", /forwardOriginalToken: must be true/);
    });

    it("fails a jwksUri that misses identity's JWKS path", () => {
      object("RequestAuthentication", "meshmart-identity").spec.jwtRules[0].jwksUri = "http://identity.meshmart.svc.cluster.local:9090/jwks.json";
      expectProblem(check(), "mesh/base/jwt.yaml", /jwksUri: path \/jwks\.json is not identity's JWKS_PATH \/\.well-known\/jwks\.json/);
    });

    it("fails when istiod could not fetch the keys (identity's port 9090 left STRICT)", () => {
      const pa = object("PeerAuthentication", "identity-jwks");
      delete pa.spec.portLevelMtls;
      expectProblem(check(), "mesh/base/jwt.yaml", /no PeerAuthentication makes port 9090 of Deployment identity-v1 PERMISSIVE/);
    });

    it("fails a token-needing RPC the gateway lets through without a token, and a public one it refuses", () => {
      const deny = object("AuthorizationPolicy", "meshmart-token-required").spec.rules[0].to[0].operation;
      deny.paths = ["/meshmart.orders.v1.OrderService/*", "/meshmart.identity.v1.IdentityService/Login"];
      const problems = check();
      expectProblem(problems, "mesh/base/jwt.yaml", /lets IdentityService\/GetMe through without a token, but the service requires one/);
      expectProblem(problems, "mesh/base/jwt.yaml", /refuses IdentityService\/Login without a token, but the service needs none/);
    });
  });

  describe("ports (every Service has 50051 gRPC and 9090 admin)", () => {
    const meshVs = ["identity", "catalog", "orders", "payment"];

    it("fails the routes as they were before they named ports: all four VirtualServices (Istio's IST0112)", () => {
      for (const name of meshVs)
        for (const route of object("VirtualService", name).spec.http) {
          for (const m of route.match ?? []) delete m.port;
          route.match = (route.match ?? []).filter((m: Obj) => Object.keys(m).length > 0);
          if (route.match.length === 0) delete route.match;
          for (const d of route.route) delete d.destination.port;
        }
      const problems = check();
      for (const name of meshVs)
        expectProblem(
          problems,
          "mesh/base/routes.yaml",
          new RegExp(`VirtualService ${name}:`),
          /exposes ports 50051, 9090, so the destination must name one/,
          /IST0112/,
        );
    });

    it("fails a route that names port 50051 without matching on it (the JWKS calls on 9090 would land on 50051)", () => {
      delete object("VirtualService", "identity").spec.http[1].match;
      expectProblem(
        check(),
        "mesh/base/routes.yaml",
        /VirtualService identity: spec\.http\[1\] \(default\): sends to identity port 50051 but does not match on port 50051/,
        /port 9090 take this route too/,
      );
    });

    it("fails a destination port the Service does not have", () => {
      object("VirtualService", "payment").spec.http[0].route[0].destination.port.number = 50052;
      expectProblem(check(), "mesh/base/routes.yaml", /VirtualService payment: spec\.http\[0\] \(default\)\.route\[0\]\.destination\.port: 50052 is no port/);
    });

    it("fails an experiment whose copy of a route lost its port", () => {
      edit(tmp, "mesh/experiments/payment-abort.yaml", "{ host: payment, port: { number: 50051 } }", "{ host: payment }");
      expectProblem(check(), "mesh/experiments/payment-abort.yaml", /VirtualService payment/, /exposes ports 50051, 9090/);
    });

    it("fails a gateway route matching a port the Gateway does not listen on (it would never match)", () => {
      object("VirtualService", "meshmart-ingress").spec.http[4].match[0].port = 50051;
      expectProblem(
        check(),
        "mesh/base/ingress.yaml",
        /VirtualService meshmart-ingress: spec\.http\[4\] \(orders\)\.match\[0\]\.port: 50051 is no port the Gateway listens on \(80\)/,
      );
    });
  });

  describe("telemetry", () => {
    it("fails tracing that names no provider (the demo profile has no default tracer), and a provider it lacks", () => {
      const tracing = object("Telemetry", "default").spec.tracing[0];
      delete tracing.providers;
      expectProblem(check(), "mesh/base/telemetry.yaml", /Telemetry default: spec\.tracing\[0\]\.providers: none named/);
      tracing.providers = [{ name: "zipkin" }];
      expectProblem(check(), "mesh/base/telemetry.yaml", /spec\.tracing\[0\]\.providers: zipkin is no provider of the demo install/);
    });
  });

  describe("retries", () => {
    it("fails a retry on UNAVAILABLE for an RPC not declared safe (Register)", () => {
      object("VirtualService", "identity").spec.http[0].retries.retryOn = "connect-failure,refused-stream,unavailable";
      expectProblem(
        check(),
        "mesh/base/routes.yaml",
        /VirtualService identity/,
        /spec\.http\[0\] \(register\)\.retries: retries IdentityService\/Register on "unavailable"/,
      );
    });

    it("fails a route without a retries block (Istio's default retries) for an RPC not declared safe", () => {
      delete object("VirtualService", "identity").spec.http[0].retries;
      expectProblem(check(), "mesh/base/routes.yaml", /spec\.http\[0\] \(register\)\.retries: none set, so Istio retries IdentityService\/Register/);
    });

    it("fails a retry-safe annotation naming an RPC that does not exist", () => {
      object("VirtualService", "payment").metadata.annotations["meshmart.dev/retry-safe"] = "PaymentService/Chrage";
      expectProblem(check(), "mesh/base/routes.yaml", /VirtualService payment/, /meshmart\.dev\/retry-safe: PaymentService\/Chrage is no RPC/);
    });

    it("fails the canary stack too (mesh/canary renders its own routes)", () => {
      delete object("VirtualService", "catalog", "canary").metadata.annotations;
      expectProblem(check(), "mesh/base/routes.yaml", /VirtualService catalog/, /retries CatalogService\/ReserveStock on "unavailable"/);
    });
  });

  describe("experiments", () => {
    it("fails an experiment that adds a VirtualService instead of replacing the base one", () => {
      edit(tmp, "mesh/experiments/payment-abort.yaml", /^( *)name: payment$/m, "$1name: payment-abort");
      expectProblem(check(), "mesh/experiments/payment-abort.yaml", /VirtualService payment-abort: replaces no base resource/);
    });

    it("fails an experiment object without the meshmart namespace (the runner applies it without -n)", () => {
      edit(tmp, "mesh/experiments/payment-delay.yaml", /^ *namespace: meshmart.*\n/m, "");
      expectProblem(check(), "mesh/experiments/payment-delay.yaml", /VirtualService payment: metadata\.namespace must be meshmart/);
    });

    it("fails an experiment routing to a subset no DestinationRule defines", () => {
      edit(
        tmp,
        "mesh/experiments/canary-50.yaml",
        "{ host: catalog, subset: v2, port: { number: 50051 } }\n      weight: 50",
        "{ host: catalog, subset: v3, port: { number: 50051 } }\n      weight: 50",
      );
      expectProblem(check(), "mesh/experiments/canary-50.yaml", /VirtualService catalog/, /subset v3 of catalog is defined by no DestinationRule/);
    });

    it("fails an experiment field Istio does not have (CRD schema)", () => {
      edit(tmp, "mesh/experiments/circuit-breaker.yaml", "http2MaxRequests: 1", "http2MaxRequest: 1");
      expectProblem(check(), "mesh/experiments/circuit-breaker.yaml", /DestinationRule payment/, /unknown field "http2MaxRequest"/);
    });

    it("fails an experiment whose retries break the safety rule once applied", () => {
      edit(tmp, "mesh/experiments/payment-delay.yaml", "meshmart.dev/retry-safe: PaymentService/*", "meshmart.dev/retry-safe: PaymentService/GetPayment");
      expectProblem(check(), "mesh/experiments/payment-delay.yaml", /retries PaymentService\/Charge on "unavailable"/);
    });

    it("fails a fault knob the kit would refuse, and does not read the runner's hypothesis files", () => {
      edit(tmp, "mesh/experiments/retries-recover.yaml", /("faults":\{"errorPercent":)50/, "$1150");
      writeFileSync(join(tmp, "mesh/experiments/retries-recover.hypothesis.yaml"), "not: [a kubernetes object\n");
      const problems = check();
      expectProblem(problems, "mesh/experiments/retries-recover.yaml", /meshmart\.dev\/fault-knob: errorPercent must be a number 0\.\.100/);
      expect(problems.filter((p) => p.file.endsWith(".hypothesis.yaml"))).to.deep.equal([]);
    });

    it("fails an experiment file that does not parse", () => {
      writeFileSync(join(tmp, "mesh/experiments/payment-abort.yaml"), "apiVersion: networking.istio.io/v1\nkind: [VirtualService\n");
      expectProblem(check(), "mesh/experiments/payment-abort.yaml", /YAML/);
    });
  });

  it("is part of npm run check:manifests: a broken path in the YAML fails the whole check, naming the file", () => {
    const repo = mkdtempSync(join(tmpdir(), "meshmart-mesh-repo-"));
    try {
      for (const f of ["skaffold.yaml", "deploy", "mesh", "services", "gen", "tools/setup/dev-secrets.mjs"])
        cpSync(join(ROOT, f), join(repo, f), { recursive: true, filter: (src) => !/[/\\](node_modules|secrets|test)$/.test(src) });
      edit(repo, "mesh/base/authorization.yaml", "- /meshmart.payment.v1.PaymentService/Refund", "- /meshmart.payment.v1.PaymentService/Refunds");
      const problems = checkManifests(repo, sharedSchemasDir(ROOT), { istioctl: false }); // istioctl: test/tools/manifests.test.ts
      expectProblem(problems, "mesh/base/authorization.yaml", /PaymentService\/Refunds is no RPC in proto/);
      // (That orders can then no longer Refund is proven by calls, not here: test/mesh-security.test.ts.)
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });
});
