// Mocha global fixture: dist/ built from the current sources (tools/setup/build.ts, for the tests that spawn services),
// and one fresh embedded database for the whole run (or MONGODB_URI when set).
// Each suite then takes its own database names from it (testDatabaseUri), so suites never see each other's data.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildEntries } from "../../tools/setup/build.js";
import { type DevDb, startDevDb } from "../../tools/stack/devdb.js";
import { stopSharedControlPlane } from "./kube.js";

let db: DevDb | undefined;
let dir: string | undefined;

export async function mochaGlobalSetup() {
  process.env.LOG_LEVEL ??= "warn"; // in-process services stay quiet unless something is wrong
  // Tests that spawn services run the compiled files, as npm start and the images do: never stale ones.
  await buildEntries();
  if (process.env.MONGODB_URI) {
    process.env.TEST_MONGODB_URI = process.env.MONGODB_URI;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "meshmart-test-db-"));
  db = await startDevDb({ dir });
  process.env.TEST_MONGODB_URI = db.uri;
}

export async function mochaGlobalTeardown() {
  await stopSharedControlPlane();
  await db?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
