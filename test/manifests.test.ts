// The cluster path, checked offline (no Docker, Kubernetes or Istio here): the real manifests pass, and each
// kind of mistake, made in a copy, fails with a message naming the file and the problem.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect } from "chai";
import { checkManifests, manifestFiles, type Problem, ROOT, sharedSchemasDir } from "../tools/check-manifests.js";

const SCHEMAS = sharedSchemasDir(ROOT);

/** The files the check reads, copied to a fresh directory. */
function copyOfRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), "meshmart-manifests-"));
  const files = ["skaffold.yaml", ...manifestFiles(ROOT)];
  for (const svc of readdirSync(join(ROOT, "services"))) if (existsSync(join(ROOT, "services", svc, "Dockerfile"))) files.push(`services/${svc}/Dockerfile`);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  return dir;
}

const show = (problems: Problem[]) => problems.map((p) => `${p.file}: ${p.message}`).join("\n");

describe("manifests: offline validation of the cluster path", () => {
  let repo: string;
  beforeEach(() => (repo = copyOfRepo()));
  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  /** Replaces `from` (which must be there) with `to` in a copied file: patterns, not exact text, so reformatted YAML keeps the tests valid. */
  function edit(file: string, from: string | RegExp, to: string) {
    const path = join(repo, file);
    const before = readFileSync(path, "utf8");
    const after = before.replace(from, to);
    expect(after, `${file} should contain ${from}`).not.to.equal(before);
    writeFileSync(path, after);
  }

  /** Runs the check on the copy and expects exactly one problem in `file` matching every pattern. */
  function expectProblem(file: string, ...patterns: RegExp[]) {
    const problems = checkManifests(repo, SCHEMAS);
    const hits = problems.filter((p) => p.file === file && patterns.every((re) => re.test(p.message)));
    expect(hits, `problems were:\n${show(problems)}`).to.have.length.greaterThan(0);
  }

  it("passes the real repository, with every manifest file and the schemas found", () => {
    expect(show(checkManifests(ROOT))).to.equal("");
    expect(manifestFiles(ROOT)).to.include.members([
      "deploy/mongodb.yaml",
      "services/identity/k8s/identity.yaml",
      "services/catalog/k8s/catalog.yaml",
      "services/orders/k8s/orders.yaml",
      "services/payment/k8s/payment.yaml",
      "mesh/mtls.yaml",
      "mesh/destinations.yaml",
      "mesh/routes.yaml",
    ]);
  });

  it("passes the untouched copy (so every failure below comes from its one change)", () => {
    expect(show(checkManifests(repo, SCHEMAS))).to.equal("");
  });

  it("fails a VirtualService with a field Istio does not have", () => {
    edit("mesh/routes.yaml", /^( *)timeout: 2s$/m, "$1timeout: 2s\n$1retryPolicy: fast");
    expectProblem("mesh/routes.yaml", /VirtualService catalog/, /unknown field "retryPolicy"/);
  });

  it("fails a DestinationRule value of the wrong type", () => {
    edit("mesh/destinations.yaml", /http2MaxRequests: 256\b/, "http2MaxRequests: lots");
    expectProblem("mesh/destinations.yaml", /DestinationRule identity/, /http2MaxRequests/);
  });

  it("fails a Deployment without the version label", () => {
    edit("services/payment/k8s/payment.yaml", /\{ app: payment, version: v1 \}/g, "{ app: payment }");
    expectProblem("services/payment/k8s/payment.yaml", /Deployment payment-v1/, /no "version" label/);
  });

  it("fails a DestinationRule subset that no Deployment carries", () => {
    edit(
      "mesh/destinations.yaml",
      /^( *)- name: v2\n( *)labels: \{ version: v2 \}$/m,
      "$1- name: v2\n$2labels: { version: v2 }\n$1- name: v3\n$2labels: { version: v3 }",
    );
    expectProblem("mesh/destinations.yaml", /DestinationRule catalog/, /subset v3/, /matches no Deployment/);
  });

  it("fails a route to a subset that no DestinationRule defines", () => {
    edit("mesh/routes.yaml", "{ host: catalog, subset: v1 }", "{ host: catalog, subset: canary }");
    expectProblem("mesh/routes.yaml", /VirtualService catalog/, /subset canary/);
  });

  it("fails a second VirtualService for a host", () => {
    const extra =
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: payment-fast\nspec:\n  hosts: [payment]\n  http:\n  - route: [{ destination: { host: payment } }]\n    timeout: 1s\n";
    writeFileSync(join(repo, "mesh", "payment-fast.yaml"), extra);
    expectProblem("mesh/routes.yaml", /a second VirtualService for host payment/, /payment-fast/);
  });

  it("fails a VirtualService for a host with no Service", () => {
    edit("mesh/routes.yaml", "hosts: [orders]", "hosts: [orders, shipping]");
    expectProblem("mesh/routes.yaml", /host shipping has no Service/);
  });

  it("fails skaffold.yaml with a field its schema does not have", () => {
    edit("skaffold.yaml", /kubectl: \{\}/, "kubectll: {}");
    expectProblem("skaffold.yaml", /schema v4beta14/, /kubectll/);
  });

  it("fails a skaffold artifact whose Dockerfile is missing, and a Deployment image that is not built", () => {
    rmSync(join(repo, "services/orders/Dockerfile"));
    edit("services/payment/k8s/payment.yaml", /image: payment\b/, "image: paymnt");
    expectProblem("skaffold.yaml", /artifact orders/, /services\/orders\/Dockerfile does not exist/);
    expectProblem("services/payment/k8s/payment.yaml", /image "paymnt" is not a skaffold artifact/);
  });

  it("fails a misspelled Kubernetes field that kubernetes-models alone would accept", () => {
    edit("services/identity/k8s/identity.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true");
    expectProblem("services/identity/k8s/identity.yaml", /Deployment identity-v1/, /unknown field "readOnlyRootFileSystem"/);
  });

  it("fails a Kubernetes value of the wrong type (kubernetes-models)", () => {
    edit("services/orders/k8s/orders.yaml", "replicas: 1", "replicas: one");
    expectProblem("services/orders/k8s/orders.yaml", /Deployment orders-v1/, /invalid apps\/v1\/Deployment/);
  });

  it("fails a gRPC port without appProtocol and a probe that is not grpc", () => {
    edit("services/catalog/k8s/catalog.yaml", /^ *appProtocol: grpc.*\n/m, "");
    edit("services/catalog/k8s/catalog.yaml", /readinessProbe:\n( *)grpc: \{ port: 50051 \}/, "readinessProbe:\n$1tcpSocket: { port: 50051 }");
    expectProblem("services/catalog/k8s/catalog.yaml", /Service catalog/, /appProtocol: grpc/);
    expectProblem("services/catalog/k8s/catalog.yaml", /Deployment catalog-v1/, /readinessProbe must be a native grpc probe/);
  });

  it("fails a grace period shorter than GRACE_MS + DRAIN_DELAY_MS", () => {
    edit("services/payment/k8s/payment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 12");
    expectProblem("services/payment/k8s/payment.yaml", /terminationGracePeriodSeconds 12 must exceed/);
  });

  it("fails YAML that does not parse", () => {
    writeFileSync(join(repo, "mesh", "mtls.yaml"), "apiVersion: security.istio.io/v1\nkind: [PeerAuthentication\n");
    expectProblem("mesh/mtls.yaml", /YAML/);
  });

  it("stops with a clear message when the shared schemas are missing", () => {
    expect(() => checkManifests(repo, join(repo, "no-such-dir"))).to.throw(/offline schemas not found: .*istio-1\.29\.6-crd-all\.gen\.yaml/);
  });

  it("npm run check:manifests exits 0 on the real files", async () => {
    const result = await new Promise<{ code: number; out: string }>((done) =>
      execFile(process.execPath, ["--import", "tsx", join(ROOT, "tools/check-manifests.ts")], { cwd: ROOT }, (err, stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      ),
    );
    expect(result.code, result.out).to.equal(0);
    expect(result.out).to.contain("are valid");
  });
});
