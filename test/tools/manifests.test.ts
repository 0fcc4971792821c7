// The cluster path, checked offline (no Docker, Kubernetes or Istio here): every kustomization renders with the
// pinned kustomize and validates, and each kind of mistake, made in a copy, fails with a message naming the
// source file and the field.
// Over 300 lines on purpose: each kind of mistake is one short case over the same rendered tree.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { checkManifests, type Problem, sharedSchemasDir } from "../../tools/checks/check-manifests.js";
import { kustomizationDirs } from "../../tools/checks/manifests/render.js";
import { ROOT } from "../../tools/root.js";

const SCHEMAS = sharedSchemasDir(ROOT);
/** The body every service Deployment shares (a kustomize component); problems in it are named by each Deployment's file. */
const SHARED_DEPLOYMENT = "deploy/components/service/deployment.yaml";

/** What the check reads (manifests, skaffold.yaml, the Dockerfile, the sources skaffold syncs), in a fresh directory. */
function copyOfRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), "meshmart-manifests-"));
  for (const f of ["skaffold.yaml", "Dockerfile", "deploy", "mesh", "services", "gen", "tools/setup/dev-secrets.mjs"]) {
    cpSync(join(ROOT, f), join(dir, f), { recursive: true, filter: (src) => !/[/\\](node_modules|secrets|test)$/.test(src) });
  }
  return dir;
}

const show = (problems: Problem[]) => problems.map((p) => `${p.file}: ${p.message}`).join("\n");

describe("manifests: offline validation of the cluster path", function () {
  this.timeout(300_000); // the first check compiles every Istio CRD schema; istioctl runs ~25 times per full check
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

  /**
   * Runs the check on the copy and expects a problem in `file` matching every pattern; without istioctl, which
   * only the tests of what istioctl finds need (it is the slow part).
   */
  function expectProblem(file: string, ...patterns: RegExp[]) {
    const problems = checkManifests(repo, SCHEMAS, { istioctl: false });
    const hits = problems.filter((p) => p.file === file && patterns.every((re) => re.test(p.message)));
    expect(hits, `problems were:\n${show(problems)}`).to.have.length.greaterThan(0);
  }

  it("passes the real repository, rendering every kustomization", () => {
    expect(show(checkManifests(ROOT))).to.equal("");
    expect(kustomizationDirs(ROOT)).to.include.members([
      "deploy/base",
      "deploy/mongodb",
      "deploy/overlays/default",
      "deploy/overlays/dev",
      "deploy/overlays/no-mesh",
      "deploy/observability",
      "services/identity/k8s",
      "services/catalog/k8s",
      "services/orders/k8s",
      "services/payment/k8s",
      "mesh",
    ]);
  });

  it("passes the untouched copy (so every failure below comes from its one change)", () => {
    expect(show(checkManifests(repo, SCHEMAS, { istioctl: false }))).to.equal("");
  });

  describe("Istio's own checks (the real istioctl)", () => {
    it("fails what only istioctl refuses: a negative retry count (validate) and an HTTP-only DENY rule (IST0133)", () => {
      edit("mesh/experiments/payment-abort.yaml", /attempts: 2\b/, "attempts: -1");
      edit("mesh/base/routes.yaml", /attempts: 2, perTryTimeout: 4s/, "attempts: -2, perTryTimeout: 4s");
      edit("mesh/base/jwt.yaml", /^ *ports: \["8080"\]\n/m, "");
      // The CRD schemas and the other checks let all three through...
      expect(show(checkManifests(repo, SCHEMAS, { istioctl: false }))).to.equal("");
      // ...istioctl does not, and each problem names its source file.
      const problems = checkManifests(repo, SCHEMAS);
      const hits = (file: string, re: RegExp) => problems.filter((p) => p.file === file && re.test(p.message));
      expect(
        hits("mesh/experiments/payment-abort.yaml", /istioctl validate: refused: VirtualService\/meshmart\/payment: attempts cannot be negative/),
        show(problems),
      ).to.not.be.empty;
      expect(hits("mesh/base/routes.yaml", /istioctl validate: refused: VirtualService\/meshmart\/orders: attempts cannot be negative/), show(problems)).to.not
        .be.empty;
      expect(
        hits(
          "mesh/base/jwt.yaml",
          /istioctl analyze \(kustomization mesh and \d+ more\): Warning IST0133 on AuthorizationPolicy istio-system\/meshmart-token-required/,
        ),
        show(problems),
      ).to.not.be.empty;
      expect(
        hits(
          "mesh/base/jwt.yaml",
          /istioctl validate: warning: AuthorizationPolicy\/istio-system\/meshmart-token-required: .*only HTTP attributes in a DENY rule/,
        ),
        show(problems),
      ).to.not.be.empty;
    });

    it("stops with a clear message when istioctl is missing", () => {
      const saved = process.env.ISTIOCTL;
      process.env.ISTIOCTL = join(repo, "no-istioctl");
      try {
        expect(() => checkManifests(repo, SCHEMAS)).to.throw(/no-istioctl not found; run tools\/setup\/setup\.sh --mesh/);
      } finally {
        if (saved === undefined) delete process.env.ISTIOCTL;
        else process.env.ISTIOCTL = saved;
      }
    });
  });

  describe("rendering", () => {
    it("fails an overlay that does not render, naming the kustomization", () => {
      edit("deploy/overlays/dev/kustomization.yaml", /^( *)- \.\.\/\.\.\/base$/m, "$1- ../../bases");
      expectProblem("deploy/overlays/dev/kustomization.yaml", /kustomize build deploy\/overlays\/dev fails/);
    });

    it("fails YAML that does not parse, through the kustomization that lists it", () => {
      writeFileSync(join(repo, "mesh", "base", "mtls.yaml"), "apiVersion: security.istio.io/v1\nkind: [PeerAuthentication\n");
      expectProblem("mesh/base/kustomization.yaml", /kustomize build mesh\/base fails/);
    });

    it("fails a manifest file that no kustomization lists", () => {
      edit("services/orders/k8s/kustomization.yaml", /^ *- pdb\.yaml\n/m, "");
      expectProblem("services/orders/k8s/pdb.yaml", /no kustomization lists this file/);
    });

    it("fails an object without a namespace in a deployed stack", () => {
      edit("deploy/base/kustomization.yaml", /^namespace: meshmart\n/m, "");
      expectProblem("services/payment/k8s/service.yaml", /Service payment/, /metadata\.namespace is not set/);
    });
  });

  describe("schemas", () => {
    it("fails a misspelled Kubernetes field that kubernetes-models alone would accept", () => {
      edit(SHARED_DEPLOYMENT, "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true");
      expectProblem("services/identity/k8s/deployment.yaml", /Deployment identity-v1/, /unknown field "readOnlyRootFileSystem"/);
    });

    it("fails a Kubernetes value of the wrong type (kubernetes-models)", () => {
      edit("services/orders/k8s/hpa.yaml", "maxReplicas: 5", "maxReplicas: five");
      expectProblem("services/orders/k8s/hpa.yaml", /HorizontalPodAutoscaler orders-v1/, /invalid autoscaling\/v2\/HorizontalPodAutoscaler/);
    });

    it("fails a VirtualService with a field Istio does not have", () => {
      edit("mesh/base/routes.yaml", /^( *)timeout: 2s$/m, "$1timeout: 2s\n$1retryPolicy: fast");
      expectProblem("mesh/base/routes.yaml", /VirtualService catalog/, /unknown field "retryPolicy"/);
    });

    it("fails a DestinationRule value of the wrong type", () => {
      edit("mesh/base/destinations.yaml", /http2MaxRequests: 256\b/, "http2MaxRequests: lots");
      expectProblem("mesh/base/destinations.yaml", /DestinationRule identity/, /http2MaxRequests/);
    });

    it("fails skaffold.yaml with a field its schema does not have", () => {
      edit("skaffold.yaml", /kubectl: \{\}/, "kubectll: {}");
      expectProblem("skaffold.yaml", /schema v4beta14/, /kubectll/);
    });

    it("stops with a clear message when the shared schemas are missing", () => {
      expect(() => checkManifests(repo, join(repo, "no-such-dir"))).to.throw(/offline schemas not found: .*istio-1\.29\.6-crd-all\.gen\.yaml/);
    });
  });

  describe("workloads", () => {
    it("fails a Deployment without the version label", () => {
      edit("services/payment/k8s/deployment.yaml", /\{ app: payment, version: v1 \}/g, "{ app: payment }");
      expectProblem("services/payment/k8s/deployment.yaml", /Deployment payment-v1/, /labels has no "version"/);
    });

    it("fails a Deployment without a grpc startup probe, or with a readiness probe that is not grpc", () => {
      edit(SHARED_DEPLOYMENT, /^( *)startupProbe:\n(\1 .*\n)+/m, "");
      edit(SHARED_DEPLOYMENT, /readinessProbe:\n( *)grpc: \{ port: 50051 \}/, "readinessProbe:\n$1tcpSocket: { port: 50051 }");
      expectProblem("services/orders/k8s/deployment.yaml", /Deployment orders-v1/, /startupProbe must be a native grpc probe/);
      expectProblem("services/catalog/k8s/deployment.yaml", /Deployment catalog-v1/, /readinessProbe must be a native grpc probe/);
    });

    it("fails a container without a memory limit", () => {
      edit(SHARED_DEPLOYMENT, "limits: { cpu: 500m, memory: 384Mi }", "limits: { cpu: 500m }");
      expectProblem("services/payment/k8s/deployment.yaml", /Deployment payment-v1/, /resources\.limits\.memory is missing/);
    });

    it("fails a Deployment without the security context", () => {
      edit(SHARED_DEPLOYMENT, "runAsNonRoot: true", "runAsNonRoot: false");
      edit(SHARED_DEPLOYMENT, "capabilities: { drop: [ALL] }", "capabilities: { drop: [NET_RAW] }");
      edit(SHARED_DEPLOYMENT, "seccompProfile: { type: RuntimeDefault }", "seccompProfile: { type: Unconfined }");
      expectProblem("services/identity/k8s/deployment.yaml", /Deployment identity-v1/, /runAsNonRoot must be true/);
      expectProblem("services/identity/k8s/deployment.yaml", /capabilities\.drop must include ALL/);
      expectProblem("services/identity/k8s/deployment.yaml", /seccompProfile\.type must be RuntimeDefault/);
    });

    it("fails a writable root filesystem outside skaffold's file sync", () => {
      edit(SHARED_DEPLOYMENT, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false");
      expectProblem("services/catalog/k8s/deployment.yaml", /Deployment catalog-v1/, /readOnlyRootFilesystem must be true/);
    });

    it("fails a grace period shorter than GRACE_MS + DRAIN_DELAY_MS", () => {
      edit(SHARED_DEPLOYMENT, "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 12");
      expectProblem("services/payment/k8s/deployment.yaml", /terminationGracePeriodSeconds 12 must exceed/);
    });

    it("fails a default overlay with a single replica", () => {
      edit(SHARED_DEPLOYMENT, /replicas: 2\b/, "replicas: 1");
      expectProblem("services/orders/k8s/deployment.yaml", /Deployment orders-v1/, /spec\.replicas is 1; the default overlay runs at least 2/);
    });

    it("fails a service whose kustomization leaves out the shared Deployment body (probes, limits, security)", () => {
      edit("services/payment/k8s/kustomization.yaml", /^components:\n.*\n/m, "");
      expectProblem("services/payment/k8s/deployment.yaml", /Deployment payment-v1/, /securityContext\.runAsNonRoot must be true/);
      expectProblem("services/payment/k8s/deployment.yaml", /Deployment payment-v1/, /resources\.limits\.memory is missing/);
    });

    it("fails a gRPC Service port without appProtocol", () => {
      edit("services/catalog/k8s/service.yaml", /^ *appProtocol: grpc.*\n/m, "");
      expectProblem("services/catalog/k8s/service.yaml", /Service catalog/, /spec\.ports grpc: a gRPC port must declare appProtocol: grpc/);
    });
  });

  describe("references", () => {
    it("fails an HPA whose target Deployment does not exist", () => {
      edit("services/orders/k8s/hpa.yaml", "name: orders-v1 }", "name: orders-v2 }");
      expectProblem("services/orders/k8s/hpa.yaml", /HorizontalPodAutoscaler orders-v1/, /scaleTargetRef: Deployment orders-v2 does not exist/);
    });

    it("fails a PodDisruptionBudget that selects no pods", () => {
      edit("services/payment/k8s/pdb.yaml", "matchLabels: { app: payment, version: v1 }", "matchLabels: { app: payments, version: v1 }");
      expectProblem("services/payment/k8s/pdb.yaml", /PodDisruptionBudget payment-v1/, /selects no pods/);
    });

    it("fails a Secret, a Secret key and a ConfigMap that the render does not have", () => {
      edit("services/orders/k8s/deployment.yaml", "secretKeyRef: { name: orders-mongodb, key: uri }", "secretKeyRef: { name: order-mongodb, key: uri }");
      edit("services/payment/k8s/deployment.yaml", "secretKeyRef: { name: payment-mongodb, key: uri }", "secretKeyRef: { name: payment-mongodb, key: url }");
      edit("deploy/mongodb/statefulset.yaml", "configMap: { name: mongodb-init }", "configMap: { name: mongo-init }");
      expectProblem("services/orders/k8s/deployment.yaml", /Deployment orders-v1/, /env MONGODB_URI reads Secret order-mongodb, which does not exist/);
      expectProblem("services/payment/k8s/deployment.yaml", /reads key "url" of Secret payment-mongodb-\w+, which has no such key/);
      expectProblem("deploy/mongodb/statefulset.yaml", /StatefulSet mongodb/, /volume init reads ConfigMap mongo-init, which does not exist/);
    });

    it("fails a ServiceAccount that no manifest defines", () => {
      edit("services/payment/k8s/deployment.yaml", "serviceAccountName: payment", "serviceAccountName: payments");
      expectProblem("services/payment/k8s/deployment.yaml", /ServiceAccount payments does not exist/);
    });
  });

  describe("mesh references", () => {
    it("fails a DestinationRule subset that no Deployment carries", () => {
      edit(
        "mesh/base/destinations.yaml",
        /^( *)- name: v2\n( *)labels: \{ version: v2 \}$/m,
        "$1- name: v2\n$2labels: { version: v2 }\n$1- name: v3\n$2labels: { version: v3 }",
      );
      expectProblem("mesh/base/destinations.yaml", /DestinationRule catalog/, /subset v3/, /matches no Deployment/);
    });

    it("fails a route to a subset that no DestinationRule defines", () => {
      edit("mesh/base/routes.yaml", "{ host: catalog, subset: v1, port: { number: 50051 } }", "{ host: catalog, subset: canary, port: { number: 50051 } }");
      expectProblem("mesh/base/routes.yaml", /VirtualService catalog/, /subset canary/);
    });

    it("fails a second VirtualService for a host", () => {
      const extra =
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: payment-fast\nspec:\n  hosts: [payment]\n  http:\n  - route: [{ destination: { host: payment } }]\n    timeout: 1s\n";
      writeFileSync(join(repo, "mesh", "base", "payment-fast.yaml"), extra);
      edit("mesh/base/kustomization.yaml", /^resources:\n( *)- /m, "resources:\n$1- payment-fast.yaml\n$1- ");
      expectProblem("mesh/base/payment-fast.yaml", /VirtualService payment-fast/, /a second VirtualService for host payment/, /mesh\/base\/routes\.yaml/);
    });

    it("fails a VirtualService for a host with no Service", () => {
      edit("mesh/base/routes.yaml", "hosts: [orders]", "hosts: [orders, shipping]");
      expectProblem("mesh/base/routes.yaml", /host shipping has no Service/);
    });
  });

  describe("skaffold", () => {
    it("fails an artifact whose Dockerfile is missing, and a Deployment image that is not built", () => {
      rmSync(join(repo, "Dockerfile"));
      edit("services/payment/k8s/deployment.yaml", /image: payment\b/, "image: paymnt");
      expectProblem("skaffold.yaml", /artifacts orders/, /dockerfile Dockerfile does not exist/);
      expectProblem("services/payment/k8s/deployment.yaml", /image "paymnt" is not a skaffold artifact/);
    });

    it("fails an artifact built for a service that does not exist, or without its SERVICE", () => {
      edit("skaffold.yaml", "buildArgs: { SERVICE: orders }", "buildArgs: { SERVICE: order }");
      edit("skaffold.yaml", "buildArgs: { SERVICE: payment }", "buildArgs: {}");
      expectProblem("skaffold.yaml", /artifacts orders: docker\.buildArgs\.SERVICE "order" is not a service/);
      expectProblem("skaffold.yaml", /artifacts payment: Dockerfile is built per service: docker\.buildArgs\.SERVICE is missing/);
    });

    it("fails an image stage that does not match how its Deployment runs it (tsx watch vs compiled)", () => {
      // The dev overlay's tsx watch on the runtime image (no tsx, no sources), and a missing stage.
      edit("skaffold.yaml", /target: dev, buildArgs: \{ SERVICE: catalog \}/, "buildArgs: { SERVICE: catalog }");
      edit("skaffold.yaml", /target: dev, buildArgs: \{ SERVICE: identity \}/, "target: devel, buildArgs: { SERVICE: identity }");
      expectProblem(
        "services/catalog/k8s/deployment.yaml",
        /default \(no profile\): Deployment catalog-v1 runs tsx watch but catalog is built from the last stage/,
      );
      expectProblem("skaffold.yaml", /build\.artifacts catalog syncs files into a stage that does not run tsx watch/);
      expectProblem("skaffold.yaml", /build\.artifacts identity: docker\.target "devel" is not a stage of its Dockerfile/);
    });

    it("fails the ha profile running the dev stage as its production image", () => {
      edit("skaffold.yaml", /\n *- \{ op: remove, path: \/build\/artifacts\/2\/docker\/target \}/, "");
      expectProblem("services/orders/k8s/deployment.yaml", /profile ha: Deployment orders-v1 runs the image as built but orders is built from stage dev/);
    });

    it("fails a profile path that is not a kustomization", () => {
      edit("skaffold.yaml", "value: mesh/canary }", "value: mesh/canery }");
      expectProblem("skaffold.yaml", /profile canary: manifests\.kustomize\.paths "mesh\/canery" is not a kustomization directory/);
    });

    it("fails a port-forward to a missing Deployment or port, and a sync rule that matches no file", () => {
      edit("skaffold.yaml", "resourceName: catalog-v2, namespace: meshmart, port: 50051", "resourceName: catalog-v3, namespace: meshmart, port: 50051");
      edit("skaffold.yaml", "resourceName: payment, namespace: meshmart, port: 50051", "resourceName: payment, namespace: meshmart, port: 50052");
      edit("skaffold.yaml", '"services/orders/src/**/*.ts"', '"services/order/src/**/*.ts"');
      expectProblem("skaffold.yaml", /portForward deployment\/catalog-v3 does not exist/);
      expectProblem("skaffold.yaml", /portForward payment port 50052 is not one of its ports/);
      expectProblem("skaffold.yaml", /artifacts orders: sync\.manual src "services\/order\/src\/\*\*\/\*\.ts" matches no file/);
    });
  });

  it("npm run check:manifests exits 0 on the real files", async () => {
    const result = await new Promise<{ code: number; out: string }>((done) =>
      execFile(process.execPath, ["--import", "tsx", join(ROOT, "tools/checks/check-manifests.ts")], { cwd: ROOT }, (err, stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      ),
    );
    expect(result.code, result.out).to.equal(0);
    expect(result.out).to.contain("render and validate");
  });
});
