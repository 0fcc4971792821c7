// Istio semantics the CRD schemas cannot check, offline: who may call what (AuthorizationPolicies against the
// protos, and the edges the local mesh cannot run: HTTP to identity's JWKS, TCP to MongoDB), the ingress
// (routes, JWT), retries only where an RPC is declared safe to repeat, and the experiment / canary files (valid,
// replacing base resources by name).
// Not here, because calls prove them: that every gRPC call the code makes is allowed for its caller, and that
// no internal RPC is open to any other identity (the ingress gateway's included). test/mesh-security.test.ts
// makes those calls through real istiod enforcing mesh/base/authorization.yaml, with the call graph from code.ts.
// Protos come from the generated descriptors in gen/; the call graph from services/*/src (Connect clients made
// with the kit's `dial`, the methods called on them, and URLs in the Deployments' environment).
// One file per concern: authorization.ts (+ authorize.ts, Istio's evaluation), ingress.ts, jwt.ts, routes.ts
// (retries, ports, splits), telemetry.ts, experiments.ts; cluster.ts and code.ts are what they all read.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Schemas } from "../schemas.js";
import type { Obj, Problem, Render, Stack } from "../types.js";
import { validateObject } from "../validate.js";
import { checkAuthorizationPolicies, checkCallsAllowed } from "./authorization.js";
import { model } from "./cluster.js";
import { REPO, readCode } from "./code.js";
import { checkExperiments } from "./experiments.js";
import { checkIngress } from "./ingress.js";
import { checkJwt } from "./jwt.js";
import { checkRoutes } from "./routes.js";
import { checkProbeRewrite, checkTelemetry } from "./telemetry.js";

export { authorize, type Request } from "./authorize.js";
export { INGRESS_PRINCIPAL, NAMESPACE } from "./cluster.js";
export { callGraph, type GrpcCall, RPCS, type Rpc, readCode } from "./code.js";
export { experimentFiles, FAULT_KNOB } from "./experiments.js";
export { RETRY_SAFE } from "./routes.js";
export { DEMO_PROVIDERS } from "./telemetry.js";

export interface MeshPolicyInput {
  /** The repository being checked (a temporary copy in the tests). */
  root: string;
  /** What each skaffold profile deploys, rendered; the base mesh is the `mesh` stack, the canary the `canary` one. */
  stacks: Stack[];
  /** Every kustomization rendered on its own (mesh/, mesh/canary, mesh/experiments, ...). */
  renders: Render[];
  schemas: Schemas;
  /** Where services/*\/src is read from; defaults to `root` when it has the sources, else this repository. */
  codeRoot?: string;
}

/** The mesh checks on what `skaffold -p mesh` deploys, the canary stack's routes, and every experiment file. */
export function checkMeshPolicy(input: MeshPolicyInput): Problem[] {
  const codeRoot = input.codeRoot ?? (existsSync(join(input.root, "services", "orders", "src")) ? input.root : REPO);
  const code = readCode(codeRoot);
  const mesh = input.stacks.find((s) => s.profile === "mesh");
  if (!mesh) return [{ file: "skaffold.yaml", message: "no `mesh` profile: the mesh policy checks need what it deploys" }];
  const cluster = model(mesh.objects);
  const problems: Problem[] = [];
  problems.push(...checkAuthorizationPolicies(cluster));
  problems.push(...checkCallsAllowed(cluster, code));
  problems.push(...checkIngress(cluster, code));
  problems.push(...checkJwt(cluster, code));
  problems.push(...checkProbeRewrite(cluster));
  problems.push(...checkTelemetry(cluster));
  const baseRoutes = checkRoutes(code, mesh.objects);
  problems.push(...baseRoutes);
  const canary = input.stacks.find((s) => s.profile === "canary");
  if (canary) problems.push(...checkRoutes(code, canary.objects));
  const validate = (file: string, obj: Obj) => validateObject({ file, obj }, input.schemas);
  problems.push(...checkExperiments(input.root, mesh.objects, validate, cluster, code, baseRoutes));
  return problems;
}
