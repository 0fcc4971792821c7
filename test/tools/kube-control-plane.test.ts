// The local control plane (issue 15): a real etcd and kube-apiserver on loopback, Istio's CRDs, and every
// rendered kustomization of meshmart applied through the real kubectl, so the API server validates each
// object against its real schemas, as a cluster's would. No kubelet: the Deployments are objects, no pod runs.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { expect } from "chai";
import { kustomizationDirs } from "../../tools/checks/manifests/render.js";
import { ROOT } from "../../tools/root.js";
import { freePort } from "../../tools/stack/devdb.js";
import { ApplyError, applyObjects, type MeshmartApplied } from "../../tools/stack/kube/apply.js";
import { type ControlPlane, startControlPlane } from "../../tools/stack/kube/control-plane.js";
import { sharedControlPlane } from "../support/kube.js";

describe("local control plane: real etcd + kube-apiserver, meshmart applied with kubectl", function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let applied: MeshmartApplied;
  before(async () => {
    ({ cp, applied } = await sharedControlPlane());
  });

  it("listens on loopback only, with RBAC on: a token the server does not know is refused", async () => {
    expect(cp.server).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await cp.kubectl(["get", "namespaces", "--token=not-a-known-token"]);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Unauthorized|must be logged in/);
    const anon = await cp.kubectl(["auth", "can-i", "list", "secrets", "--as=system:serviceaccount:meshmart:catalog", "-n", "meshmart"]);
    expect(anon.stdout.trim(), "RBAC: a ServiceAccount with no Role cannot read Secrets").to.equal("no");
  });

  it("every rendered kustomization and every experiment file is accepted by the API server", () => {
    expect(applied.applied).to.deep.equal(["deploy/overlays/dev", "mesh"]);
    // mesh/experiments renders nothing, and a kustomize Component (deploy/components/service) is only a part of others.
    const isComponent = (d: string) => /^kind:\s*Component\s*$/m.test(readFileSync(join(ROOT, d, "kustomization.yaml"), "utf8"));
    const expected = kustomizationDirs(ROOT).filter((d) => !applied.applied.includes(d) && d !== "mesh/experiments" && !isComponent(d));
    expect(applied.dryRun.filter((d) => !d.endsWith(".yaml"))).to.have.members(expected);
    expect(applied.dryRun.filter((d) => d.startsWith("mesh/experiments/"))).to.include.members([
      "mesh/experiments/canary-50.yaml",
      "mesh/experiments/payment-abort.yaml",
    ]);
  });

  it("kubectl get shows what a cluster would: namespaces, Services, ServiceAccounts, Deployments, Istio objects; no pods", async () => {
    const names = async (args: string[]) => (await cp.kubectlOk([...args, "-o", "name"])).trim().split("\n").sort();
    expect(await names(["get", "namespaces"])).to.include.members(["namespace/istio-system", "namespace/meshmart"]);
    expect(await names(["-n", "meshmart", "get", "services"])).to.include.members(["service/catalog", "service/identity", "service/orders", "service/payment"]);
    expect(await names(["-n", "meshmart", "get", "serviceaccounts"])).to.include.members([
      "serviceaccount/catalog",
      "serviceaccount/identity",
      "serviceaccount/orders",
      "serviceaccount/payment",
    ]);
    expect(await names(["-n", "meshmart", "get", "deployments"])).to.include.members([
      "deployment.apps/catalog-v1",
      "deployment.apps/catalog-v2",
      "deployment.apps/orders-v1",
      "deployment.apps/payment-v1",
    ]);
    expect(await names(["-n", "meshmart", "get", "virtualservices.networking.istio.io"])).to.include("virtualservice.networking.istio.io/catalog");
    expect(await names(["-n", "meshmart", "get", "destinationrules.networking.istio.io"])).to.include("destinationrule.networking.istio.io/catalog");
    const pods = await cp.kubectl(["-n", "meshmart", "get", "pods"]);
    expect(pods.stderr, "no kubelet, no scheduler: Deployments never get pods").to.match(/No resources found/);
  });

  it("a manifest the API server refuses is named with its source file and the server's message", async () => {
    const bad = {
      file: "mesh/experiments/broken.yaml",
      obj: {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { name: "broken", namespace: "meshmart" },
        spec: { hosts: ["catalog"], http: [{ route: [{ destination: { host: "catalog" }, weight: "ninety" }] }] },
      },
    };
    const err = await applyObjects(cp, "the broken file", [bad]).catch((e: Error) => e);
    expect(err).to.be.instanceOf(ApplyError);
    expect((err as Error).message).to.contain("VirtualService meshmart/broken (mesh/experiments/broken.yaml)");
    expect((err as Error).message).to.match(/weight/);
    expect((await cp.kubectl(["-n", "meshmart", "get", "virtualservice", "broken"])).code, "nothing was stored").to.not.equal(0);
  });

  it("a port in use is a clear error naming it, before anything starts", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      const err = await startControlPlane({ ports: { apiserver: port, etcd: await freePort(), etcdPeer: await freePort() } }).catch((e: Error) => e);
      expect((err as Error).message).to.equal(
        `port ${port} on 127.0.0.1 (kube-apiserver) is already in use: stop what listens there, or start with --ports auto`,
      );
    } finally {
      busy.close();
    }
  });
});
