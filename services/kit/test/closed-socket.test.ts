// The driver hang behind "a service stays NOT_SERVING after the database came back" (services/kit/src/shared/
// mongo-closed-socket.ts), made deterministic: the database closes a connection (the socket is destroyed, its
// 'close' event still pending) and a command is written to it in that same turn, as the server monitor's
// heartbeat did when its timer fell in that window. Without the fix the command never settles and the monitor
// never checks the server again. Real database; the driver's monitor connection, reached through its internals.
import { createRequire } from "node:module";
import { expect } from "chai";
import type { Connection } from "mongoose";
import { openDatabase } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";

interface DriverConnection {
  socket: { destroy(): void };
  closed: boolean;
  command(ns: unknown, cmd: object, options: object): Promise<unknown>;
}

const fromMongoose = createRequire(createRequire(import.meta.url).resolve("mongoose"));
const { ns } = fromMongoose("mongodb/lib/utils.js") as { ns: (s: string) => unknown };

describe("a command on a connection the database just closed", () => {
  const dbName = uniqueDbName("closed_socket");
  let db: Connection;
  before(async () => {
    db = await openDatabase(testMongoUri(), dbName);
  });
  after(async () => {
    await db?.close();
    await dropDatabase(dbName);
  });

  /** The server monitor's own connection (open between heartbeats once the first one succeeded). */
  const monitorConnection = () => {
    const topology = (db.getClient() as unknown as { topology: { s: { servers: Map<string, { monitor: { connection: DriverConnection | null } }> } } })
      .topology;
    return [...topology.s.servers.values()][0].monitor.connection;
  };

  it("fails at once with the driver's network error instead of waiting forever, and the monitor goes on", async () => {
    await db.db?.admin().ping();
    let conn = monitorConnection();
    for (let i = 0; !conn && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      conn = monitorConnection();
    }
    expect(conn, "the monitor has a connection").to.not.equal(null);
    const c = conn as DriverConnection;
    c.socket.destroy(); // as a FIN from the server does: destroyed now, 'close' emitted on a later turn
    const outcome = await Promise.race([
      c.command(ns("admin.$cmd"), { hello: 1 }, {}).then(
        () => "answered",
        (err: Error) => `${err.name}: ${err.message}`,
      ),
      new Promise<string>((r) => setTimeout(() => r("still waiting after 3 s"), 3000)),
    ]);
    expect(outcome).to.match(/^MongoNetworkError: connection .* closed$/);
    expect(c.closed).to.equal(true);
    // And the client still works: the monitor replaces its connection, operations go through.
    expect((await db.db?.admin().ping())?.ok).to.equal(1);
  });
});
