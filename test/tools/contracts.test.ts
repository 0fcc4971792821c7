// The contracts' own checks: buf breaking (FILE rules) fails on a real breaking change and passes on a
// compatible one, run exactly as CI runs it (tools/checks/check-breaking.sh in a git repository with history).
import { execFile, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { ROOT } from "../../tools/root.js";
import { ensureValidateProto } from "../../tools/setup/buf-validate-proto.js";

const BUF = join(ROOT, "node_modules", ".bin", "buf");

function run(cwd: string, cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, env: { ...process.env, BUF } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    ),
  );
}

describe("contracts: buf breaking against the previous commit", () => {
  let repo: string;
  const catalogProto = () => join(repo, "proto/meshmart/catalog/v1/catalog.proto");
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "pipe" });

  before(() => ensureValidateProto());
  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), "meshmart-contracts-"));
    // .cache/protovalidate: the buf.validate module the contracts import (fetched by the npm scripts, not in git).
    for (const p of ["proto", "buf.yaml", "tools/checks/check-breaking.sh", ".cache/protovalidate"]) cpSync(join(ROOT, p), join(repo, p), { recursive: true });
    writeFileSync(join(repo, ".gitignore"), ".cache/\n");
    git("init", "-q", "-b", "main");
    git("-c", "user.email=ci@meshmart.dev", "-c", "user.name=ci", "commit", "-q", "--allow-empty", "-m", "empty start");
  });
  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  const commit = (message: string) => {
    git("add", "-A");
    git("-c", "user.email=ci@meshmart.dev", "-c", "user.name=ci", "commit", "-q", "-m", message);
  };

  it("skips the first commit that adds proto/", async () => {
    commit("contracts");
    const r = await run(repo, "bash", ["tools/checks/check-breaking.sh"]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.contain("has no proto/ yet");
  });

  it("passes a compatible change (a new field)", async () => {
    commit("contracts");
    writeFileSync(
      catalogProto(),
      readFileSync(catalogProto(), "utf8").replace(
        "repeated string badges = 10;",
        "repeated string badges = 10;\n  // Shipping weight in grams.\n  int32 weight_grams = 11;",
      ),
    );
    commit("add weight");
    const r = await run(repo, "bash", ["tools/checks/check-breaking.sh"]);
    expect(r.code, r.out).to.equal(0);
  });

  it("fails a breaking change (a field renumbered) and names it", async () => {
    commit("contracts");
    writeFileSync(catalogProto(), readFileSync(catalogProto(), "utf8").replace("int32 stock = 5;", "int32 stock = 15;"));
    commit("renumber stock");
    const r = await run(repo, "bash", ["tools/checks/check-breaking.sh"]);
    expect(r.code).to.not.equal(0);
    expect(r.out).to.match(/stock/);
  });

  it("fails uncommitted breaking work against HEAD (a removed RPC)", async () => {
    commit("contracts");
    writeFileSync(
      catalogProto(),
      readFileSync(catalogProto(), "utf8").replace(
        /\s*\/\/ SearchProducts finds[^\n]*\n\s*rpc SearchProducts\(SearchProductsRequest\) returns \(SearchProductsResponse\);/,
        "",
      ),
    );
    const r = await run(repo, "bash", ["tools/checks/check-breaking.sh"]);
    expect(r.code).to.not.equal(0);
    expect(r.out).to.contain("SearchProducts");
  });
});
