// A service started while its database is down waits for it (openDatabase keeps trying for DB_CONNECT_WAIT_MS)
// instead of exiting at once: a restart during a database outage (the soak's kill + restart while the database
// was stopped) used to end the unit. Real devdb, started only once the first attempt has failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { expect } from "chai";
import type { Connection } from "mongoose";
import { pino } from "pino";
import { openDatabase } from "#kit";
import { type DevDb, freePort, startDevDb } from "../tools/stack/devdb.js";

describe("a service started while its database is down", function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), "db-first-start-"));
  let db: DevDb | undefined;
  let conn: Connection | undefined;
  after(async () => {
    await conn?.close();
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("waits for the database and connects once it is there, saying so in the log", async () => {
    const port = await freePort();
    let firstFailure: () => void = () => undefined;
    const failed = new Promise<void>((r) => {
      firstFailure = r;
    });
    const lines: string[] = [];
    const log = pino(
      new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          firstFailure();
          done();
        },
      }),
    );
    const opening = openDatabase(`mongodb://127.0.0.1:${port}`, "first_start", "MONGODB_URI", { waitMs: 30_000, log });
    // One attempt has failed for real before the database exists (an openDatabase that gives up instead fails here).
    await Promise.race([failed, opening]);
    db = await startDevDb({ dir, port });
    conn = await opening;
    expect((await conn.db?.admin().ping())?.ok).to.equal(1);
    expect(lines.join("")).to.match(/database not reachable yet; still trying/);
  });

  it("gives up after its wait with the driver's own error", async () => {
    const port = await freePort();
    const err = await openDatabase(`mongodb://127.0.0.1:${port}`, "never", "MONGODB_URI", { waitMs: 0 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).to.equal("MongooseServerSelectionError");
  });
});
