// Fresh, uniquely named databases on the run's test server.
import { randomBytes } from "node:crypto";
import mongoose, { type Connection } from "mongoose";

export function testMongoUri(): string {
  const uri = process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error("TEST_MONGODB_URI is not set: run the tests through mocha (test/support/global.ts starts the database)");
  return uri; // tests pick their own database names (openDatabase's dbName overrides a path in the URI)
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
