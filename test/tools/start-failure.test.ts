// npm start when a service dies while the stack is starting: the launcher reports it, exits non-zero, and
// leaves no process behind (it used to exit before startStack had stopped the units it had already started).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { ROOT } from "../../tools/root.js";

/** Pids of live processes whose environment carries `marker` (the launcher's children inherit it). */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(marker)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

describe("npm start: a service that dies during start-up", function () {
  this.timeout(180_000);

  it("stops everything it started and exits non-zero, naming the unit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshmart-start-failure-"));
    const marker = `MESHMART_START_FAILURE_TEST=${process.pid}-${Date.now()}`;
    const [key, value] = marker.split("=");
    try {
      // identity refuses a cost exponent out of range and exits 2; catalog, payment and the database are up by then.
      const launcher = spawn(process.execPath, ["--import", "tsx", "tools/stack/start.ts", "--ports", "auto", "--data-dir", join(dir, "data")], {
        cwd: ROOT,
        env: { ...process.env, [key]: value, PASSWORD_HASH_LN: "99", LOG_FORMAT: "json" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      launcher.stdout.on("data", (d) => (out += d));
      launcher.stderr.on("data", (d) => (out += d));
      const [code] = await once(launcher, "exit");
      expect(code, out.slice(-3000)).to.equal(1);
      expect(out).to.match(/identity exited during startup|PASSWORD_HASH_LN/);
      const left = processesWith(marker);
      expect(left, `processes left behind:\n${left.map((p) => readFileSync(`/proc/${p}/cmdline`, "latin1")).join("\n")}`).to.deep.equal([]);
    } finally {
      for (const pid of processesWith(marker)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
