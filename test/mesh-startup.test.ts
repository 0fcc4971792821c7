// Mesh mode refuses to start without a valid workload certificate: a real service process (payment), a real
// bootstrap pointing at real files; no istiod is needed, since the check runs before anything listens.
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { freePort } from "../tools/stack/devdb.js";
import { certificateProviders, LocalCa, MeshIdentities, WorkloadCert } from "../tools/stack/mesh/identities.js";
import { startProcess } from "../tools/stack/process.js";
import { testMongoUri, uniqueDbName } from "./support/db.js";
import { tempDirFor } from "./support/temp-dir.js";

const payment = { namespace: "meshmart", serviceAccount: "payment" };

describe("mesh mode start-up without a valid workload certificate", function () {
  this.timeout(60_000);
  const scratch = tempDirFor("meshmart-mesh-start-");

  async function startPayment(files: WorkloadCert["files"]) {
    const bootstrap = {
      // Nothing listens here: the service must stop before it would ever talk to istiod.
      xds_servers: [{ server_uri: `127.0.0.1:${await freePort()}`, channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] }],
      node: { id: "sidecar~127.0.0.1~payment-v1.meshmart~meshmart.svc.cluster.local", locality: {}, metadata: { GENERATOR: "grpc" } },
      server_listener_resource_name_template: "xds.istio.io/grpc/lds/inbound/%s",
      ...certificateProviders(files, 1000),
    };
    const port = await freePort();
    const proc = startProcess("services/payment/src/main.ts", {
      MESH: "true",
      HOST: "127.0.0.1",
      PORT: String(port),
      LOCAL_GRPC_PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      MONGODB_URI: testMongoUri(),
      DB_NAME: uniqueDbName("meshstart"),
      GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap),
    });
    return { code: await proc.exited, output: proc.output() };
  }

  it("a missing certificate file: exits 2 naming the file, no plaintext fallback", async () => {
    const ids = await MeshIdentities.open(join(scratch.path, "missing"));
    const wc = await ids.add(payment);
    ids.stop();
    unlinkSync(wc.files.certificateFile);
    const { code, output } = await startPayment(wc.files);
    expect(code, output).to.equal(2);
    expect(output).to.include(wc.files.certificateFile).and.include("missing");
    expect(output).not.to.include("listening");
  });

  it("an expired certificate: exits 2 naming the file", async () => {
    const ca = await LocalCa.open(join(scratch.path, "expired", "ca"));
    const wc = new WorkloadCert(ca, payment, join(scratch.path, "expired", "payment"), { ttlMs: 1 });
    await wc.issue();
    await new Promise((r) => setTimeout(r, 1100)); // X.509 times have second precision
    const { code, output } = await startPayment(wc.files);
    expect(code, output).to.equal(2);
    expect(output).to.include(wc.files.certificateFile).and.include("expired at");
    expect(output).not.to.include("listening");
  });
});
