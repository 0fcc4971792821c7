// Puts protovalidate's buf/validate/validate.proto into .cache/protovalidate, the second module of buf.yaml, so buf
// can compile the contracts' (buf.validate.field) rules. The npm package @bufbuild/protovalidate ships only code
// generated from that file; its source is published on Maven Central inside the Java library's jar (a zip), which
// is fetched once over HTTPS, checked against the pinned checksum and unzipped here: no Java, no Buf registry.
// The file must stay the one @bufbuild/protovalidate was generated from (test/tools/buf-validate-proto.test.ts).
// Usage: tsx tools/setup/buf-validate-proto.ts   (a no-op when the file is there with the pinned checksum)
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { unzipSync } from "fflate";
import { ROOT } from "../root.js";

const VERSION = "1.3.0";
export const JAR_URL = `https://repo1.maven.org/maven2/build/buf/protovalidate/${VERSION}/protovalidate-${VERSION}.jar`;
const JAR_SHA256 = "fc65013a322d9b390759670b454c05f94579c49a40dff872143dfba831ebbdc2";
const PROTO_SHA256 = "817951eab518442950f1982be24b2c3154b214b40e42f49b915cbf5181e6ee80";
const ENTRY = "buf/validate/validate.proto";
const FETCH_TIMEOUT_MS = 120_000;

/** The buf module directory holding buf/validate/validate.proto (buf.yaml names it). */
export const MODULE_DIR = join(ROOT, ".cache", "protovalidate");

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

function present(file: string): boolean {
  try {
    return sha256(readFileSync(file)) === PROTO_SHA256;
  } catch {
    return false;
  }
}

/**
 * Makes sure `<dir>/buf/validate/validate.proto` is the pinned file, downloading the jar from `url` when it is
 * missing or different. Returns whether it downloaded. Throws, writing nothing, when the download fails or the
 * jar's checksum is not the pinned one.
 */
export async function ensureValidateProto(o: { dir?: string; url?: string } = {}): Promise<boolean> {
  const dir = o.dir ?? MODULE_DIR;
  const url = o.url ?? JAR_URL;
  const file = join(dir, ENTRY);
  if (present(file)) return false;
  let jar: Uint8Array;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    jar = new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    throw new Error(`buf-validate-proto: could not download ${url}: ${(err as Error).message}`);
  }
  const got = sha256(jar);
  if (got !== JAR_SHA256) throw new Error(`buf-validate-proto: ${url} has sha256 ${got}, expected ${JAR_SHA256}; not used`);
  const proto = unzipSync(jar, { filter: (f) => f.name === ENTRY })[ENTRY];
  if (!proto || sha256(proto) !== PROTO_SHA256) throw new Error(`buf-validate-proto: ${url} does not hold the expected ${ENTRY}`);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, proto);
  renameSync(tmp, file); // whole or not at all, also when two setups run at once
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  ensureValidateProto().then(
    (downloaded) => downloaded && console.error(`buf-validate-proto: ${ENTRY} of protovalidate ${VERSION} is in ${MODULE_DIR}`),
    (err) => {
      console.error((err as Error).message);
      process.exit(1);
    },
  );
}
