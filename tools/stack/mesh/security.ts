// The local mesh's security: every workload (each service, and each client standing in for a caller) gets a
// certificate for its ServiceAccount from the stack's local CA (tools/stack/mesh/identities.ts), renewed while the
// stack runs, and a bootstrap whose certificate_providers.default points at it. With that, istiod's STRICT
// PeerAuthentication and AuthorizationPolicies (mesh/base/mtls.yaml, authorization.yaml, unchanged) are
// enforced inside each process by grpc-js-xds, as a sidecar would enforce them in a cluster.
import { join } from "node:path";
import { type CertFiles, certificateProviders, type Identity, MeshIdentities, principalOf } from "./identities.js";

export const MESH_NAMESPACE_ID = "meshmart";

/**
 * Outside callers (the load generator, `npm run flow`, the tests' public calls) enter a cluster through the
 * ingress gateway, so the services see the gateway's identity; locally there is no gateway, and those callers
 * hold its identity themselves, so the same ALLOW rules apply to them. (What the gateway itself adds, its JWT
 * check and its routes, is not there.)
 */
export const INGRESS_IDENTITY: Identity = { namespace: "istio-system", serviceAccount: "istio-ingressgateway-service-account" };
export const INGRESS_PRINCIPAL = principalOf(INGRESS_IDENTITY);

/** Environment every mesh service process gets besides its bootstrap: mesh mode, and RBAC on in grpc-js-xds. */
export const MESH_SERVICE_ENV = { MESH: "true", GRPC_XDS_EXPERIMENTAL_RBAC: "true" } as const;

export interface MeshSecurityOptions {
  /** Certificate lifetime; renewed at half of it. Default 1 h. */
  certTtlMs?: number;
  /** How often grpc-js-xds re-reads the files (file_watcher refresh_interval). Default 5 s. */
  refreshMs?: number;
  log?: (line: string) => void;
}

export class MeshSecurity {
  private constructor(
    readonly identities: MeshIdentities,
    readonly refreshMs: number,
  ) {}

  /** Opens (or creates) the CA under <dir>/ca; certificates go to <dir>/certs. */
  static async open(dir: string, opts: MeshSecurityOptions = {}): Promise<MeshSecurity> {
    const identities = await MeshIdentities.open(join(dir), {
      ttlMs: opts.certTtlMs,
      onRenew: (id, cert) => opts.log?.(`mesh: renewed the certificate of ${principalOf(id)} (valid until ${new Date(cert.validTo).toISOString()})`),
      onRenewError: (id, err) => opts.log?.(`mesh: renewing the certificate of ${principalOf(id)} failed: ${err.message} (retrying)`),
    });
    return new MeshSecurity(identities, opts.refreshMs ?? 5000);
  }

  /** The certificate files of `id` (issued on first request). */
  async files(id: Identity): Promise<CertFiles> {
    return (await this.identities.add(id)).files;
  }

  /** What a bootstrap of `id` needs besides the xDS server and the node: its certificate provider. */
  async bootstrapExtra(id: Identity): Promise<Record<string, unknown>> {
    return certificateProviders(await this.files(id), this.refreshMs);
  }

  stop(): void {
    this.identities.stop();
  }
}

/** A ServiceAccount of the meshmart namespace. */
export function serviceAccount(name: string): Identity {
  return { namespace: MESH_NAMESPACE_ID, serviceAccount: name };
}

/**
 * The local mesh's addresses: one block of 127.0.0.0/8 per stack, every workload on its own address and the
 * container port of the manifests (as pods are), so that AuthorizationPolicy `ports: ["50051"]` means locally
 * what it means in a cluster (grpc-js-xds's RBAC matches the port the server accepted the connection on).
 * `npm start -- --mesh` uses 127.0.0.10 and up; tests and parallel stacks take a random 127.x.y.0/24, so that
 * two stacks on one machine never share an address:port.
 */
export function addressBlock(random: boolean): (n: number) => string {
  const [a, b] = random ? [1 + Math.floor(Math.random() * 254), Math.floor(Math.random() * 256)] : [0, 0];
  return (n: number) => {
    if (n < 0 || n > 240) throw new RangeError(`loopback address index ${n} is out of 0..240`);
    return `127.${a}.${b}.${10 + n}`;
  };
}
