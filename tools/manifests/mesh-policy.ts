// PLACEHOLDER written by the k8s helper: the mesh helper owns this file (the Istio policy checks: principals,
// method paths against the protos, retries only on safe routes, experiment files). Their version replaces it.
import type { Schemas } from "./schemas.js";
import type { Problem, Render, Stack } from "./types.js";

export interface MeshPolicyInput {
  /** The repository being checked (a temporary copy in the tests). */
  root: string;
  /** What each skaffold profile deploys, rendered; mesh objects are in the mesh, canary and experiments stacks. */
  stacks: Stack[];
  /** Every kustomization rendered on its own (mesh/, mesh/canary, mesh/experiments, ...). */
  renders: Render[];
  schemas: Schemas;
}

export function checkMeshPolicy(_input: MeshPolicyInput): Problem[] {
  return [];
}
