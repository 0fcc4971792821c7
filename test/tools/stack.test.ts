// tools/stack/launcher.ts on real processes: every service comes up on free ports over its own embedded database;
// a unit can be killed and started again on the same port, the database stopped and started, fault knobs
// set; stop() leaves no process or temporary directory behind. The invariants read the fresh data set.
import { existsSync } from "node:fs";
import { expect } from "chai";
import { HealthCheckResponse_ServingStatus } from "#gen/health/v1/health_pb.js";
import { waitForHealth } from "../../tools/stack/health-wait.js";
import { type Stack, startStack, UNITS } from "../../tools/stack/launcher.js";
import { checkDataSet } from "../../tools/traffic/data-set.js";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("local stack (tools/stack/launcher.ts, real processes)", function () {
  this.timeout(120_000);
  let stack: Stack;
  const crashes: string[] = [];

  before(async () => {
    stack = await startStack({ logLevel: "warn", onUnexpectedExit: (u, code, signal) => crashes.push(`${u} ${code ?? signal}`) });
  });
  after(async () => stack?.stop());

  it("starts every unit SERVING on its own port, with the ready JSON of tools/stack/start.ts", async () => {
    const ready = stack.ready();
    expect(Object.keys(ready)).to.have.members([...UNITS, "mongodb"]);
    expect(new Set(UNITS.map((u) => stack.endpoints[u].grpc)).size).to.equal(UNITS.length);
    for (const u of UNITS) expect(stack.isRunning(u), u).to.equal(true);
  });

  it("kill -9 takes a unit down until start brings it back on the same port", async () => {
    const before = stack.pid("payment") as number;
    await stack.kill("payment");
    expect(stack.isRunning("payment")).to.equal(false);
    expect(alive(before)).to.equal(false);
    await stack.start("payment");
    expect(stack.pid("payment")).to.be.a("number").and.not.equal(before);
    await waitForHealth(stack.endpoints.payment.grpc, { timeoutMs: 5000 });
    expect(crashes, "a kill asked for is not a crash").to.deep.equal([]);
  });

  it("restart replaces the process gracefully (SIGTERM, then a new one, health-waited)", async () => {
    const before = stack.pid("catalog-v2") as number;
    await stack.restart("catalog-v2");
    expect(alive(before)).to.equal(false);
    expect(stack.pid("catalog-v2")).to.not.equal(before);
    await waitForHealth(stack.endpoints["catalog-v2"].grpc, { timeoutMs: 5000 });
  });

  it("sets fault knobs through the admin port, and rejects bad ones naming the field", async () => {
    const set = await stack.setFaults("payment", { delayMs: 50, methods: ["Charge"] });
    expect(set).to.include({ delayMs: 50, errorPercent: 0 });
    const read = await (await fetch(`${stack.endpoints.payment.admin}/faults`)).json();
    expect(read).to.deep.include({ delayMs: 50, methods: ["Charge"] });
    await stack.setFaults("payment", {});
    let message = "";
    await stack.setFaults("payment", { errorPercent: 101 }).catch((err: Error) => (message = err.message));
    expect(message).to.contain("errorPercent");
  });

  it("stopDb makes orders NOT_SERVING and startDb brings it back on the same data", async () => {
    await stack.stopDb();
    await waitForHealth(stack.endpoints.orders.grpc, { want: HealthCheckResponse_ServingStatus.NOT_SERVING, timeoutMs: 20_000 });
    await stack.startDb();
    await waitForHealth(stack.endpoints.orders.grpc, { timeoutMs: 20_000 });
    const report = await checkDataSet(stack.mongoUri, { settleTimeoutMs: 1000 });
    expect(report.counts.orders).to.equal(0);
    expect(report.results.find((r) => r.name === "stock-conserved")).to.include({ ok: true, checked: 26 });
    expect(report.ok).to.equal(true);
  });

  it("stop ends every process and removes the temporary database", async () => {
    const pids = UNITS.map((u) => stack.pid(u) as number);
    const dataDir = stack.dataDir as string;
    expect(existsSync(dataDir)).to.equal(true);
    await stack.stop();
    for (const pid of pids) expect(alive(pid)).to.equal(false);
    expect(existsSync(dataDir), "temporary database directory removed").to.equal(false);
    expect(crashes).to.deep.equal([]);
  });
});
