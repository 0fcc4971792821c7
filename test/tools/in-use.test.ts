// npm start's check before it deletes or opens anything (tools/stack/in-use.ts): what counts as "in use".
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { freePort } from "../../tools/stack/devdb.js";
import { claim, inUse, ownerFile, refusal } from "../../tools/stack/in-use.js";

describe("npm start's in-use check", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "meshmart-inuse-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(ownerFile(dir), { force: true });
  });

  it("finds nothing in use in a fresh directory on free ports, and then says nothing", async () => {
    const found = await inUse(dir, [await freePort()]);
    expect(found).to.deep.equal({ dataDir: [], ports: [] });
    expect(refusal(dir, found)).to.equal("");
  });

  it("names a port something listens on, and only that one", async () => {
    const server = createServer().listen(0, "127.0.0.1");
    await once(server, "listening");
    const busy = (server.address() as { port: number }).port;
    const free = await freePort();
    try {
      const found = await inUse(dir, [busy, free]);
      expect(found.ports).to.deep.equal([busy]);
      expect(refusal(dir, found)).to.contain(`ports on 127.0.0.1 are in use: ${busy}`);
    } finally {
      server.close();
    }
  });

  it("names a process with a file open in the data directory (as the database has)", async function () {
    if (process.platform !== "linux") this.skip(); // read from /proc
    writeFileSync(join(dir, "db.sqlite"), "");
    const holder = spawn("tail", ["-f", join(dir, "db.sqlite")], { stdio: "ignore" });
    try {
      let found = await inUse(dir, []);
      for (let i = 0; i < 50 && found.dataDir.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100)); // until tail has opened it
        found = await inUse(dir, []);
      }
      expect(found.dataDir.map((p) => p.pid)).to.deep.equal([holder.pid]);
      expect(refusal(dir, found)).to.contain(`the data directory ${dir} is in use by pid ${holder.pid} (tail -f`);
    } finally {
      holder.kill();
    }
  });

  it("names the live owner of the directory, and ignores an owner that has gone", async () => {
    const owner = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
    try {
      writeFileSync(ownerFile(dir), `${owner.pid}\n`);
      expect((await inUse(dir, [])).dataDir.map((p) => p.pid)).to.deep.equal([owner.pid]);
    } finally {
      owner.kill();
      await once(owner, "exit");
    }
    expect((await inUse(dir, [])).dataDir).to.deep.equal([]);
    const release = claim(dir); // this process: never in its own way
    expect((await inUse(dir, [])).dataDir).to.deep.equal([]);
    release();
  });
});
