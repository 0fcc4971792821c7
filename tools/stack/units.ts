// The units of the local stack (every service, catalog as v1 and v2; or the one monolith) and their fixed facts:
// default ports, the Deployment each is an instance of, the Services' gRPC port. Shared by the launcher and its
// mesh part.

export const UNITS = ["identity", "catalog-v1", "catalog-v2", "orders", "payment"] as const;
export type UnitName = (typeof UNITS)[number];
/**
 * Where each unit answers. In the mesh, `grpc` is its mesh address (mTLS only, as callers in the mesh reach it)
 * and `local` the plaintext health + reflection port outside the mesh (what health waits and grpcurl use).
 */
export interface Endpoint {
  grpc: string;
  admin: string;
  local?: string;
}
export type Endpoints = Record<UnitName, Endpoint>;

/** The monolith stack's one unit (tools/stack/monolith.ts: every service in one process). */
export const MONOLITH = "monolith";
export type MonolithUnit = typeof MONOLITH;
/** The monolith's gRPC and admin ports on `npm start -- --mode monolith`. */
export const MONOLITH_PORTS: [number, number] = [50050, 9090];

/** gRPC and admin ports per unit on `npm start`; skaffold forwards the same gRPC ports. */
export const DEFAULT_PORTS: Record<UnitName, [number, number]> = {
  identity: [50051, 9091],
  "catalog-v1": [50052, 9092],
  "catalog-v2": [50055, 9095],
  orders: [50053, 9093],
  payment: [50054, 9094],
};
/** The Deployment (in services/<svc>/k8s) each unit is an instance of. */
export const DEPLOYMENT: Record<UnitName, string> = {
  identity: "identity-v1",
  "catalog-v1": "catalog-v1",
  "catalog-v2": "catalog-v2",
  orders: "orders-v1",
  payment: "payment-v1",
};
/** The gRPC port of every meshmart Service (services/<svc>/k8s/service.yaml): what mesh clients dial. */
export const SERVICE_PORT = 50051;
