// Workload identities for the local mesh: what istiod's CA and the Istio agent do in a cluster (issue each pod a
// short-lived certificate for its ServiceAccount, rotate it before it expires), done on one machine.
//
// - A local CA per data directory (<dataDir>/mesh/ca, never committed: .cache/ is ignored), created on first use
//   and kept across restarts, so certificates issued earlier stay verifiable.
// - Each identity gets cert-chain.pem, key.pem and root-cert.pem under <dataDir>/mesh/certs/<ns>/<sa>/: the files
//   grpc-js-xds's `file_watcher` certificate provider reads (certificateProviders() gives the bootstrap's part),
//   with one URI SAN, spiffe://cluster.local/ns/<ns>/sa/<sa>, the principal AuthorizationPolicies match.
// - Certificates are short-lived (1 h by default) and renewed at half their life while the stack runs. A renewal
//   keeps the key pair and replaces only cert-chain.pem (written aside, then renamed): file_watcher reads the
//   three files independently, so a new key and a new certificate written one after the other could be read as
//   a mismatched pair; with the key unchanged, any read is a valid pair, old or new.
//
// X.509 with @peculiar/x509 on Node's WebCrypto (ECDSA P-256): a maintained, pure TypeScript library, so no
// openssl binary (or its version's flags) is needed on the machine, keys never leave the process except into
// the files, and certificates come out as PEM directly. (Its dependency injection needs reflect-metadata.)
import "reflect-metadata";
import { webcrypto, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const TRUST_DOMAIN = "cluster.local";
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 3600_000;
/** The CA lives a year; a CA with less than this left is replaced at open (its old leaves die with it). */
const CA_TTL_MS = 365 * DAY_MS;
const CA_MIN_LEFT_MS = 30 * DAY_MS;
/** Tolerates small clock differences between the processes reading a fresh certificate. */
const BACKDATE_MS = 60_000;

export interface Identity {
  namespace: string;
  serviceAccount: string;
}

/** spiffe://cluster.local/ns/<ns>/sa/<sa>: the URI SAN of a workload certificate. */
export function spiffeId(id: Identity): string {
  return `spiffe://${TRUST_DOMAIN}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** The principal an AuthorizationPolicy names for this identity (the SPIFFE id without its scheme). */
export function principalOf(id: Identity): string {
  return spiffeId(id).slice("spiffe://".length);
}

/** The three files of one identity, as file_watcher names them. */
export interface CertFiles {
  certificateFile: string;
  privateKeyFile: string;
  caCertificateFile: string;
}

/** The bootstrap's certificate_providers: the `default` instance istiod's TLS contexts name. */
export function certificateProviders(files: CertFiles, refreshIntervalMs: number) {
  return {
    certificate_providers: {
      default: {
        plugin_name: "file_watcher",
        config: {
          certificate_file: files.certificateFile,
          private_key_file: files.privateKeyFile,
          ca_certificate_file: files.caCertificateFile,
          refresh_interval: `${Math.max(1, Math.round(refreshIntervalMs / 1000))}s`,
        },
      },
    },
  };
}

function writeAtomically(file: string, content: string, mode: number) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

async function importKeyPem(pem: string, usages: KeyUsage[]): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey("pkcs8", der, ALG, true, usages) as Promise<CryptoKey>;
}

function serial(): string {
  // Positive (high bit clear), 16 random bytes, as RFC 5280 asks of a serial number.
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  return Buffer.from(bytes).toString("hex");
}

/** A self-signed CA kept in a directory: created when missing (or about to expire), loaded otherwise. */
export class LocalCa {
  private constructor(
    readonly dir: string,
    readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {}

  get certPem(): string {
    return this.cert.toString("pem");
  }

  static async open(dir: string, now = new Date()): Promise<LocalCa> {
    const certFile = join(dir, "ca-cert.pem");
    const keyFile = join(dir, "ca-key.pem");
    if (existsSync(certFile) && existsSync(keyFile)) {
      const cert = new x509.X509Certificate(readFileSync(certFile, "utf8"));
      if (cert.notAfter.getTime() - now.getTime() > CA_MIN_LEFT_MS) return new LocalCa(dir, cert, await importKeyPem(readFileSync(keyFile, "utf8"), ["sign"]));
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `O=meshmart local mesh, CN=meshmart local CA ${now.toISOString()}`,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + CA_TTL_MS),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeAtomically(keyFile, await exportKeyPem(keys.privateKey), 0o600);
    writeAtomically(certFile, cert.toString("pem"), 0o644);
    return new LocalCa(dir, cert, keys.privateKey);
  }

  /** A workload certificate for `id` over `publicKey`, valid from now (backdated a minute) for ttlMs. */
  async issue(id: Identity, publicKey: CryptoKey, ttlMs: number, now = new Date()): Promise<x509.X509Certificate> {
    return x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: "O=meshmart local mesh",
      issuer: this.cert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + ttlMs),
      publicKey,
      signingKey: this.key,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId(id) }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
      ],
    });
  }
}

export interface WorkloadCertOptions {
  /** Lifetime of each certificate. Default 1 h. */
  ttlMs?: number;
}

/** One identity's files, issued by a LocalCa; renew() replaces the certificate and keeps the key. */
export class WorkloadCert {
  readonly files: CertFiles;
  private keys?: CryptoKeyPair;
  /** The current certificate (after issue()). */
  cert?: X509Certificate;

  constructor(
    private readonly ca: LocalCa,
    readonly identity: Identity,
    dir: string,
    private readonly opts: WorkloadCertOptions = {},
  ) {
    this.files = { certificateFile: join(dir, "cert-chain.pem"), privateKeyFile: join(dir, "key.pem"), caCertificateFile: join(dir, "root-cert.pem") };
  }

  get ttlMs(): number {
    return this.opts.ttlMs ?? 3600_000;
  }

  /** A new key pair and certificate, and the CA's certificate: all three files. */
  async issue(): Promise<X509Certificate> {
    const dir = join(this.files.certificateFile, "..");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    this.keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = await this.ca.issue(this.identity, this.keys.publicKey, this.ttlMs);
    writeAtomically(this.files.privateKeyFile, await exportKeyPem(this.keys.privateKey), 0o600);
    writeAtomically(this.files.caCertificateFile, this.ca.certPem, 0o644);
    writeAtomically(this.files.certificateFile, cert.toString("pem"), 0o644);
    this.cert = new X509Certificate(cert.toString("pem"));
    return this.cert;
  }

  /** A new certificate for the same key (see the file comment for why the key stays). */
  async renew(): Promise<X509Certificate> {
    if (!this.keys) return this.issue();
    const cert = await this.ca.issue(this.identity, this.keys.publicKey, this.ttlMs);
    writeAtomically(this.files.certificateFile, cert.toString("pem"), 0o644);
    this.cert = new X509Certificate(cert.toString("pem"));
    return this.cert;
  }
}

export interface MeshIdentitiesOptions extends WorkloadCertOptions {
  /** Called when a scheduled renewal fails (the old certificate stays until it expires). */
  onRenewError?: (id: Identity, err: Error) => void;
  onRenew?: (id: Identity, cert: X509Certificate) => void;
}

/**
 * Every identity of a local mesh, renewed at half their life until stop(). Files under <dir>/certs/<ns>/<sa>.
 */
export class MeshIdentities {
  private readonly certs = new Map<string, WorkloadCert>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  private constructor(
    readonly ca: LocalCa,
    readonly dir: string,
    private readonly opts: MeshIdentitiesOptions,
  ) {}

  /** Opens (or creates) the CA in <dir>/ca. */
  static async open(dir: string, opts: MeshIdentitiesOptions = {}): Promise<MeshIdentities> {
    return new MeshIdentities(await LocalCa.open(join(dir, "ca")), dir, opts);
  }

  private key(id: Identity) {
    return `${id.namespace}/${id.serviceAccount}`;
  }

  /** Issues `id` a certificate (once; later calls return the same files) and schedules its renewals. */
  async add(id: Identity): Promise<WorkloadCert> {
    const k = this.key(id);
    const existing = this.certs.get(k);
    if (existing) return existing;
    const wc = new WorkloadCert(this.ca, id, join(this.dir, "certs", id.namespace, id.serviceAccount), this.opts);
    this.certs.set(k, wc);
    await wc.issue();
    this.schedule(wc);
    return wc;
  }

  get(id: Identity): WorkloadCert | undefined {
    return this.certs.get(this.key(id));
  }

  all(): WorkloadCert[] {
    return [...this.certs.values()];
  }

  /** Renews one identity now (and reschedules the next renewal from now). */
  async renew(id: Identity): Promise<X509Certificate> {
    const wc = this.certs.get(this.key(id));
    if (!wc) throw new Error(`mesh identities: ${spiffeId(id)} was never issued`);
    const cert = await wc.renew();
    this.opts.onRenew?.(id, cert);
    this.schedule(wc);
    return cert;
  }

  private schedule(wc: WorkloadCert) {
    const k = this.key(wc.identity);
    clearTimeout(this.timers.get(k));
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.renew(wc.identity).catch((err: Error) => {
        this.opts.onRenewError?.(wc.identity, err);
        // Try again soon: the current certificate still has half its life.
        if (!this.stopped)
          this.timers.set(
            k,
            setTimeout(() => void this.renew(wc.identity).catch(() => undefined), Math.min(60_000, wc.ttlMs / 10)),
          );
      });
    }, wc.ttlMs / 2);
    t.unref();
    this.timers.set(k, t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
