// Where and with what the figures were measured.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../root.js";

const tryRun = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unavailable";
  }
};
const pkgVersion = (name: string) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version as string;
const stamp = (tool: string) => {
  try {
    return readFileSync(join(ROOT, ".cache", "bin", `${tool}.stamp`), "utf8").trim();
  } catch {
    return "unknown";
  }
};

export function machine() {
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    go: tryRun("go", ["env", "GOVERSION"]),
    versions: {
      "@grpc/grpc-js": pkgVersion("@grpc/grpc-js"),
      "@connectrpc/connect-node": pkgVersion("@connectrpc/connect-node"),
      "@bufbuild/protobuf": pkgVersion("@bufbuild/protobuf"),
      "hdr-histogram-js": pkgVersion("hdr-histogram-js"),
      ghz: stamp("ghz"),
      devdb: `embedded FerretDB (stamp ${stamp("devdb")})`,
    },
    commit: tryRun("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
  };
}
export type Machine = ReturnType<typeof machine>;
