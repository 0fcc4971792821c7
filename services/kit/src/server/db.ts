// One mongoose Connection per service (never the global mongoose: the monolith runs four in one process).
import mongoose, { type Connection } from "mongoose";
import type { Logger } from "pino";
import { ConfigError } from "../shared/env.js";
import { failWritesOnClosedSockets } from "../shared/mongo-closed-socket.js";
import { traceCommands, tracingEnabled } from "../shared/tracing.js";
import { type ReadinessCheck, within } from "./health.js";

// Mongoose records `new Error().stack` on every query (to explain a query run twice); with tsx's source maps
// on, building that stack was a few percent of a service's CPU under load, for a message we never need.
mongoose.set("skipOriginalStackTraces", true);

// Without it a database restart can leave the driver's server monitor stuck for good (see the module).
failWritesOnClosedSockets();

/**
 * A service started while its database is down waits for it this long instead of exiting at once (a pod restarted
 * during a database outage would otherwise crash-loop, and a local stack lose the unit); then it gives up.
 */
export const DB_CONNECT_WAIT_MS = 60_000;

/** Opens a connection to `uri`; `dbName` names the service's own database when the URI has none. */
export async function openDatabase(uri: string, dbName?: string, variable = "MONGODB_URI", opts: { waitMs?: number; log?: Logger } = {}): Promise<Connection> {
  if (!/^mongodb(\+srv)?:\/\//.test(uri)) throw new ConfigError(variable, `must be a mongodb:// URI, got "${uri}"`);
  const giveUpAt = Date.now() + (opts.waitMs ?? DB_CONNECT_WAIT_MS);
  for (;;) {
    const conn = mongoose.createConnection(uri, {
      dbName,
      // Fail a call in 2 s when the database is gone instead of queueing it for 30 s; the mesh retries.
      serverSelectionTimeoutMS: 2000,
      heartbeatFrequencyMS: 2000,
      bufferCommands: false,
      autoIndex: true,
      // Command events only when tracing: they are where the database spans come from.
      monitorCommands: tracingEnabled(),
    });
    try {
      await conn.asPromise();
    } catch (err) {
      await conn.close().catch(() => undefined);
      // Only "no server reachable" is worth waiting out; a refused login or a bad URI will not get better.
      if (!(err instanceof Error) || err.name !== "MongooseServerSelectionError" || Date.now() >= giveUpAt) throw err;
      opts.log?.warn({ err: err.message }, "database not reachable yet; still trying");
      continue; // server selection already waited 2 s: no pause of our own
    }
    traceCommands(conn.getClient());
    return conn;
  }
}

/** Readiness: the connection is up and the server answers a ping within a second. */
export function databaseReady(conn: Connection): ReadinessCheck {
  return {
    name: "mongodb",
    check: () => within((async () => conn.readyState === 1 && (await conn.db?.admin().ping())?.ok === 1)(), 1000),
  };
}
