// Mesh mode's security plumbing for a service: the workload certificate checked before serving (a missing,
// expired or mismatched file stops the start, naming the file: there is no plaintext fallback), the caller's
// principal read from its mTLS certificate, and one log line for every call the mesh's authorization refused.
//
// In a cluster the Istio agent writes the certificate files and grpc-js-xds's file_watcher reads them; locally
// tools/stack/mesh/identities.ts does the agent's part. Their paths come from the process's xDS bootstrap
// (certificate_providers.default), so the check reads exactly what grpc-js-xds will read.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ConfigError } from "../shared/env.js";
import type { Logger } from "../shared/log.js";

export interface WorkloadCertFiles {
  certificate_file: string;
  private_key_file: string;
  ca_certificate_file: string;
}

/** The bootstrap grpc-js-xds will use: GRPC_XDS_BOOTSTRAP_CONFIG (JSON) or the file GRPC_XDS_BOOTSTRAP names. */
export function readBootstrap(source: Record<string, string | undefined> = process.env): { variable: string; bootstrap: Record<string, unknown> } {
  const inline = source.GRPC_XDS_BOOTSTRAP_CONFIG;
  const file = source.GRPC_XDS_BOOTSTRAP;
  const variable = inline ? "GRPC_XDS_BOOTSTRAP_CONFIG" : "GRPC_XDS_BOOTSTRAP";
  if (!inline && !file)
    throw new ConfigError("GRPC_XDS_BOOTSTRAP", "or GRPC_XDS_BOOTSTRAP_CONFIG must be set in mesh mode (MESH=true): the xDS bootstrap naming istiod");
  let text: string;
  try {
    text = inline ?? readFileSync(file as string, "utf8");
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return { variable, bootstrap: JSON.parse(text) as Record<string, unknown> };
  } catch (err) {
    throw new ConfigError(variable, `is not JSON: ${(err as Error).message}`);
  }
}

/** certificate_providers.default.config of the bootstrap: the files the workload's mTLS uses. */
export function workloadCertFiles(source: Record<string, string | undefined> = process.env): WorkloadCertFiles {
  const { variable, bootstrap } = readBootstrap(source);
  const providers = bootstrap.certificate_providers as Record<string, { plugin_name?: string; config?: Partial<WorkloadCertFiles> }> | undefined;
  const config = providers?.default?.config;
  if (providers?.default?.plugin_name !== "file_watcher" || !config)
    throw new ConfigError(variable, "has no certificate_providers.default (plugin_name file_watcher): a mesh workload needs its certificate files");
  for (const key of ["certificate_file", "private_key_file", "ca_certificate_file"] as const)
    if (typeof config[key] !== "string" || config[key] === "") throw new ConfigError(variable, `certificate_providers.default.config.${key} is not set`);
  return {
    certificate_file: config.certificate_file as string,
    private_key_file: config.private_key_file as string,
    ca_certificate_file: config.ca_certificate_file as string,
  };
}

function readPem(what: keyof WorkloadCertFiles, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(what, `${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : (err as Error).message}`);
  }
}

/** The SPIFFE id in a certificate's URI SANs ("spiffe://cluster.local/ns/x/sa/y"), if any. */
export function spiffeIdOf(subjectAltName: string | undefined): string | undefined {
  for (const entry of (subjectAltName ?? "").split(/,\s*/)) if (entry.startsWith("URI:spiffe://")) return entry.slice("URI:".length);
  return undefined;
}

/** The principal AuthorizationPolicies match ("cluster.local/ns/x/sa/y") for a SPIFFE id. */
export function principalOf(spiffeId: string | undefined): string | undefined {
  return spiffeId?.slice("spiffe://".length);
}

/**
 * Checks the workload's certificate files before the service serves in mesh mode: all three readable, the
 * certificate valid now, issued by the CA file, for the private key, with a SPIFFE id. Returns that id and
 * the certificate's end; throws a ConfigError naming the file otherwise.
 */
export function checkWorkloadCert(files: WorkloadCertFiles, now = new Date()): { spiffeId: string; notAfter: Date } {
  const certPem = readPem("certificate_file", files.certificate_file);
  const keyPem = readPem("private_key_file", files.private_key_file);
  const caPem = readPem("ca_certificate_file", files.ca_certificate_file);
  const parse = (what: keyof WorkloadCertFiles, file: string, pem: string) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError(what, `${file}: not a PEM certificate (${(err as Error).message})`);
    }
  };
  const cert = parse("certificate_file", files.certificate_file, certPem);
  const ca = parse("ca_certificate_file", files.ca_certificate_file, caPem);
  const notAfter = new Date(cert.validTo);
  if (notAfter <= now) throw new ConfigError("certificate_file", `${files.certificate_file}: expired at ${notAfter.toISOString()}`);
  if (new Date(cert.validFrom) > now)
    throw new ConfigError("certificate_file", `${files.certificate_file}: not valid before ${new Date(cert.validFrom).toISOString()}`);
  if (!cert.verify(ca.publicKey)) throw new ConfigError("certificate_file", `${files.certificate_file}: not signed by the CA in ${files.ca_certificate_file}`);
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new ConfigError("private_key_file", `${files.private_key_file}: not a PEM private key (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key))
    throw new ConfigError("private_key_file", `${files.private_key_file}: does not belong to the certificate in ${files.certificate_file}`);
  const spiffeId = spiffeIdOf(cert.subjectAltName);
  if (!spiffeId) throw new ConfigError("certificate_file", `${files.certificate_file}: has no spiffe:// URI SAN (the workload identity)`);
  return { spiffeId, notAfter };
}

/** The caller's principal on a grpc-js call over mTLS; undefined on plaintext. */
export function callerPrincipal(call: { getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } } }): string | undefined {
  return principalOf(spiffeIdOf(call.getAuthContext()?.sslPeerCertificate?.subjectaltname));
}

/**
 * A server interceptor (outermost, on the XdsServer) that logs each call refused before it reached the service.
 * grpc-js-xds runs istiod's RBAC as interceptors closer to the wire than any the server is given, so a refused
 * call never shows up here as metadata; it does end, which grpc-js reports as onCancel. One warn line per
 * refused call: the caller's principal, its address and the method; never the request (it was never read).
 */
export function meshRefusalLog(log: Logger): grpc.ServerInterceptor {
  return (method, call) => {
    let reached = false;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            reached = true;
            forward(metadata);
          },
          onCancel: () => {
            if (reached) return;
            const peer = call.getPeer();
            log.warn(
              { method: method.path.slice(1), principal: callerPrincipal(call) ?? "(no client certificate)", peer },
              "call refused by the mesh authorization policy",
            );
          },
        }),
    });
  };
}
