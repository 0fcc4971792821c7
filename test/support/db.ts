// Fresh, uniquely named databases on the run's test server.
import { randomBytes } from "node:crypto";
import mongoose, { type Connection } from "mongoose";

export function testMongoUri(): string {
  const uri = process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error("TEST_MONGODB_URI is not set: run the tests through mocha (test/support/global.ts starts the database)");
  return uri; // tests pick their own database names (openDatabase's dbName overrides a path in the URI)
}

/** What a service started in a test's process needs: the test server, a database of its own, free ports, loopback. */
export function serverEnv(dbName: string): Record<string, string> {
  return { MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1" };
}

/** A database name no other test uses, e.g. "t_catalog_3f9a1c". */
export function uniqueDbName(prefix: string): string {
  return `t_${prefix}_${randomBytes(4).toString("hex")}`;
}

/** Drops a test database (best effort). */
export async function dropDatabase(dbName: string): Promise<void> {
  const conn: Connection = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
  try {
    await conn.dropDatabase();
  } finally {
    await conn.close();
  }
}

/**
 * For a describe block: a database of its own, connected before its tests and dropped after them. `name` is
 * known at once; read `db` inside the tests (it connects in before()).
 */
export function freshDatabase(prefix: string): { readonly name: string; readonly db: Connection } {
  const name = uniqueDbName(prefix);
  let db: Connection | undefined;
  before(async () => {
    db = await mongoose.createConnection(testMongoUri(), { dbName: name }).asPromise();
  });
  after(async () => {
    await db?.close();
    await dropDatabase(name);
  });
  return {
    name,
    get db() {
      if (!db) throw new Error(`freshDatabase(${prefix}): read db inside a test (it connects in before())`);
      return db;
    },
  };
}
