// A fix for a hang in the MongoDB driver (mongodb 6.20, which mongoose 8 pins; 7.x writes commands the same
// way): a command written to a socket that has just closed waits forever, and when that command is the
// server monitor's heartbeat, the monitor stops for good — the service stays NOT_SERVING and every call
// fails with the last error ("connection N to … closed") although the database is back.
//
// How: when the database closes a connection (FerretDB does on shutdown: FIN, no error), Node ends and
// destroys the socket at once but emits 'close' only on a later turn of the event loop; the driver's
// Connection learns of it from that event. A heartbeat (or a pooled operation) due in between sees a
// connection not yet marked closed and writes to it. Writing to a destroyed socket returns false with no
// 'error' event, so Connection.writeCommand waits for a 'drain' that never comes; 'close' then arrives while
// no read is pending, and nothing ever rejects the write. Seen under load (long event-loop turns make the
// window wide): in a run with the CPU busy, 3 of 4 clients' monitors stuck at the 5th outage
// (test/db-outages.test.ts runs 10 under load).
//
// The fix: before writing, a connection whose socket is already destroyed is closed the way its 'close'
// event would close it, so the command fails with the driver's own network error ("connection N to …
// closed") and the monitor, the pool and the retry logic handle it as usual. A socket ended by the server
// but not yet destroyed is treated the same: writing to it fails with a bare EPIPE Error ("This socket has
// been ended by the other party"), which is not a network error to the driver, and a call answered INTERNAL.
import { createRequire } from "node:module";

interface DriverConnection {
  socket: { destroyed: boolean; writableEnded: boolean };
  error: Error | null;
  onClose(): void;
  writeCommand(...args: unknown[]): Promise<unknown>;
}

const PATCHED = Symbol.for("meshmart.mongo-closed-socket");

/** Applies the fix to the driver mongoose loads (idempotent). */
export function failWritesOnClosedSockets(): void {
  // mongodb is mongoose's dependency (not ours): resolve it from mongoose, so this is the very module it uses.
  const fromMongoose = createRequire(createRequire(import.meta.url).resolve("mongoose"));
  const { Connection } = fromMongoose("mongodb/lib/cmap/connection.js") as { Connection: { prototype: DriverConnection } };
  const proto = Connection.prototype as DriverConnection & { [PATCHED]?: true };
  if (typeof proto.writeCommand !== "function" || typeof proto.onClose !== "function")
    throw new Error("mongodb's Connection changed (no writeCommand/onClose): review services/kit/src/shared/mongo-closed-socket.ts");
  if (proto[PATCHED]) return;
  const writeCommand = proto.writeCommand;
  proto.writeCommand = function (this: DriverConnection, ...args: unknown[]) {
    if (this.socket.destroyed || this.socket.writableEnded) {
      this.onClose(); // what the pending 'close' event will do: mark it closed, fail what waits on it
      return Promise.reject(this.error);
    }
    return writeCommand.apply(this, args);
  };
  proto[PATCHED] = true;
}
