// Workload identities of the local mesh (tools/stack/mesh/identities.ts) and the check a service runs on them before
// serving in mesh mode (services/kit/src/server/mesh-security.ts): real certificates, real files, no network.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { ConfigError, checkWorkloadCert, principalOf, spiffeIdOf, type WorkloadCertFiles, workloadCertFiles } from "#kit";
import { type CertFiles, certificateProviders, LocalCa, MeshIdentities, WorkloadCert } from "../../tools/stack/mesh/identities.js";

const orders = { namespace: "meshmart", serviceAccount: "orders" };
const asBootstrap = (f: CertFiles): WorkloadCertFiles => ({
  certificate_file: f.certificateFile,
  private_key_file: f.privateKeyFile,
  ca_certificate_file: f.caCertificateFile,
});

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("mesh workload identities", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "meshmart-ids-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps one CA per directory: a second open loads it instead of making another", async () => {
    const a = await LocalCa.open(join(dir, "ca"));
    const b = await LocalCa.open(join(dir, "ca"));
    expect(b.certPem).to.equal(a.certPem);
    expect(statSync(join(dir, "ca", "ca-key.pem")).mode & 0o777).to.equal(0o600);
    const other = await LocalCa.open(join(dir, "other-ca"));
    expect(other.certPem).not.to.equal(a.certPem);
  });

  it("issues a short-lived certificate whose only SAN is the ServiceAccount's SPIFFE id, signed by the CA", async () => {
    const ids = await MeshIdentities.open(dir, { ttlMs: 10 * 60_000 });
    const wc = await ids.add(orders);
    ids.stop();
    const cert = new X509Certificate(readFileSync(wc.files.certificateFile));
    const ca = new X509Certificate(readFileSync(wc.files.caCertificateFile));
    expect(cert.subjectAltName).to.equal("URI:spiffe://cluster.local/ns/meshmart/sa/orders");
    expect(cert.verify(ca.publicKey)).to.equal(true);
    const life = new Date(cert.validTo).getTime() - Date.now();
    expect(life).to.be.within(9 * 60_000, 10 * 60_000 + 1000);
    expect(statSync(wc.files.privateKeyFile).mode & 0o777).to.equal(0o600);
    expect(checkWorkloadCert(asBootstrap(wc.files)).spiffeId).to.equal("spiffe://cluster.local/ns/meshmart/sa/orders");
  });

  it("renews with a new certificate for the same key, so file_watcher can never read a mismatched pair", async () => {
    const ids = await MeshIdentities.open(dir);
    const wc = await ids.add(orders);
    const key = readFileSync(wc.files.privateKeyFile, "utf8");
    const before = new X509Certificate(readFileSync(wc.files.certificateFile));
    await ids.renew(orders);
    ids.stop();
    const after = new X509Certificate(readFileSync(wc.files.certificateFile));
    expect(after.serialNumber).not.to.equal(before.serialNumber);
    expect(readFileSync(wc.files.privateKeyFile, "utf8")).to.equal(key);
    expect(after.publicKey.export({ format: "pem", type: "spki" })).to.equal(before.publicKey.export({ format: "pem", type: "spki" }));
    checkWorkloadCert(asBootstrap(wc.files));
  });

  it("renews on its own at half the certificate's life while running", async () => {
    const renewed: string[] = [];
    const ids = await MeshIdentities.open(dir, { ttlMs: 1200, onRenew: (_id, c) => renewed.push(c.serialNumber) });
    const wc = await ids.add(orders);
    const first = wc.cert?.serialNumber;
    await new Promise((r) => setTimeout(r, 1500));
    ids.stop();
    expect(renewed.length).to.be.at.least(1);
    expect(renewed).not.to.include(first);
  });

  it("writes the bootstrap's file_watcher provider pointing at the three files", async () => {
    const ids = await MeshIdentities.open(dir);
    const wc = await ids.add(orders);
    ids.stop();
    const bootstrap = { ...certificateProviders(wc.files, 5000) };
    expect(bootstrap.certificate_providers.default.config.refresh_interval).to.equal("5s");
    expect(workloadCertFiles({ GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap) })).to.deep.equal(asBootstrap(wc.files));
  });

  describe("the check a service runs before serving in mesh mode", () => {
    it("names the missing file", async () => {
      const ids = await MeshIdentities.open(dir);
      const wc = await ids.add(orders);
      ids.stop();
      unlinkSync(wc.files.certificateFile);
      expect(configErrorOf(() => checkWorkloadCert(asBootstrap(wc.files))).message)
        .to.include(wc.files.certificateFile)
        .and.include("missing");
    });

    it("refuses an expired certificate, naming the file and the time", async () => {
      const ca = await LocalCa.open(join(dir, "ca"));
      const wc = new WorkloadCert(ca, orders, join(dir, "orders"), { ttlMs: 1000 });
      await wc.issue();
      const files = asBootstrap(wc.files);
      const later = new Date(Date.now() + 5000);
      const err = configErrorOf(() => checkWorkloadCert(files, later));
      expect(err.message).to.include(wc.files.certificateFile).and.include("expired at");
    });

    it("refuses a key that is not the certificate's, and a certificate from another CA", async () => {
      const ids = await MeshIdentities.open(dir);
      const a = await ids.add(orders);
      const b = await ids.add({ namespace: "meshmart", serviceAccount: "payment" });
      ids.stop();
      const mismatched = { ...asBootstrap(a.files), private_key_file: b.files.privateKeyFile };
      expect(configErrorOf(() => checkWorkloadCert(mismatched)).message)
        .to.include(b.files.privateKeyFile)
        .and.include("does not belong");
      const otherCa = await LocalCa.open(join(dir, "other-ca"));
      const caFile = join(dir, "other-root.pem");
      writeFileSync(caFile, otherCa.certPem);
      expect(configErrorOf(() => checkWorkloadCert({ ...asBootstrap(a.files), ca_certificate_file: caFile })).message).to.include("not signed by the CA");
    });

    it("needs a bootstrap with certificate_providers.default", () => {
      expect(configErrorOf(() => workloadCertFiles({})).message).to.include("GRPC_XDS_BOOTSTRAP");
      expect(configErrorOf(() => workloadCertFiles({ GRPC_XDS_BOOTSTRAP_CONFIG: "{}" })).message).to.include("certificate_providers.default");
    });

    it("reads the principal from a certificate's URI SAN as AuthorizationPolicies name it", () => {
      const id = spiffeIdOf("DNS:x.example, URI:spiffe://cluster.local/ns/meshmart/sa/orders");
      expect(principalOf(id)).to.equal("cluster.local/ns/meshmart/sa/orders");
      expect(spiffeIdOf("DNS:x.example")).to.equal(undefined);
    });
  });
});
