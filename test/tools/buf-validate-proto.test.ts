// protovalidate's validate.proto for buf (tools/setup/buf-validate-proto.ts): the pinned file is the very one
// @bufbuild/protovalidate's generated code was made from, it is fetched only when missing, and a jar that is
// not the pinned one is refused without writing anything. Offline apart from the first fetch on a fresh clone.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clone, equals, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { expect } from "chai";
import { strToU8, zipSync } from "fflate";
import { ROOT } from "../../tools/root.js";
import { ensureValidateProto, MODULE_DIR } from "../../tools/setup/buf-validate-proto.js";

describe("buf-validate-proto: protovalidate's rules for buf", () => {
  let tmp: string;
  let server: Server;
  let base: string;
  const forgedJar = zipSync({ "buf/validate/validate.proto": strToU8('syntax = "proto2";\npackage buf.validate;\n') });

  before(async () => {
    await ensureValidateProto();
    server = createServer((req, res) => {
      if (req.url === "/forged.jar") res.end(forgedJar);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), "meshmart-pv-"))));
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it("is the file @bufbuild/protovalidate was generated from (same descriptor, buf-compiled)", () => {
    const out = join(tmp, "pv.binpb");
    execFileSync(join(ROOT, "node_modules", ".bin", "buf"), ["build", MODULE_DIR, "--exclude-source-info", "-o", out], { cwd: ROOT, stdio: "pipe" });
    const built = fromBinary(FileDescriptorSetSchema, readFileSync(out)).file.find((f) => f.name === "buf/validate/validate.proto");
    expect(built, "buf/validate/validate.proto in the image").to.not.equal(undefined);
    expect(equals(FileDescriptorProtoSchema, built!, clone(FileDescriptorProtoSchema, file_buf_validate_validate.proto))).to.equal(true);
  });

  it("downloads nothing when the pinned file is there", async () => {
    expect(await ensureValidateProto({ url: `${base}/missing.jar` })).to.equal(false);
  });

  it("refuses a jar that is not the pinned one, writing nothing", async () => {
    const err = await ensureValidateProto({ dir: tmp, url: `${base}/forged.jar` }).catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message)
      .to.contain(`${base}/forged.jar`)
      .and.contain("sha256");
    expect(existsSync(join(tmp, "buf"))).to.equal(false);
  });

  it("names the URL when the download fails", async () => {
    const err = await ensureValidateProto({ dir: tmp, url: `${base}/missing.jar` }).catch((e: Error) => e);
    expect((err as Error).message)
      .to.contain(`${base}/missing.jar`)
      .and.contain("HTTP 404");
    expect(existsSync(join(tmp, "buf"))).to.equal(false);
  });
});
