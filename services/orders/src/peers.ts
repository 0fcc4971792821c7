// Where orders finds its peers, as environment: catalog and payment (gRPC addresses, or xds:/// targets in the
// mesh) and identity's JWKS (to verify shoppers' tokens). One function, so every place that starts orders — the
// local stack, the images test, the service's own fixture — wires it the same way.
// A module of its own (no imports) so launchers can use it without loading the service.

/** identity's admin path serving its public keys (services/identity serves it; orders reads it). */
const JWKS_PATH = "/.well-known/jwks.json";

export interface OrdersPeers {
  /** catalog's gRPC address ("host:port") or xds target. */
  catalog: string;
  /** payment's gRPC address ("host:port") or xds target. */
  payment: string;
  /** identity's admin base URL ("http://host:port"), or the full JWKS URL when it is served elsewhere (tests). */
  identityAdmin?: string;
  jwksUrl?: string;
}

export function ordersPeerEnv(p: OrdersPeers): { CATALOG_ADDR: string; PAYMENT_ADDR: string; IDENTITY_JWKS_URL: string } {
  const jwks = p.jwksUrl ?? (p.identityAdmin ? `${p.identityAdmin}${JWKS_PATH}` : undefined);
  if (!jwks) throw new Error("ordersPeerEnv: give identityAdmin or jwksUrl");
  return { CATALOG_ADDR: p.catalog, PAYMENT_ADDR: p.payment, IDENTITY_JWKS_URL: jwks };
}
