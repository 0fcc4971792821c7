// A Mongo-wire proxy that counts the commands passing through it, by database, command and collection:
// services pointed at it show how many database round trips an RPC costs (the round-trip budget tests).
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import mongoose from "mongoose";

/** Connection chatter, not work: handshakes, heartbeats, pings. */
const CHATTER = new Set(["hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "getParameter"]);
const OP_MSG = 2013;

export interface CommandCounter {
  /** mongodb://127.0.0.1:PORT (the proxy). */
  uri: string;
  /** Commands seen since the last reset, keyed "db.collection command", e.g. "orders.orders findAndModify". */
  counts(): Record<string, number>;
  total(db?: string): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCommandCounter(target: string): Promise<CommandCounter> {
  const { hostname, port } = new URL(target);
  let counts = new Map<string, number>();
  const sockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined); // the other side's close ends both
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    upstream.pipe(client);
    let pending = Buffer.alloc(0);
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      // Each message: int32 length, requestID, responseTo, opCode; OP_MSG then flags and a kind-0 section (BSON).
      while (pending.length >= 16 && pending.length >= pending.readInt32LE(0)) {
        const msg = pending.subarray(0, pending.readInt32LE(0));
        pending = pending.subarray(msg.length);
        if (msg.readInt32LE(12) !== OP_MSG || msg[20] !== 0) continue;
        const body = msg.subarray(21);
        const doc = mongoose.mongo.BSON.deserialize(body.subarray(0, body.readInt32LE(0)));
        const command = Object.keys(doc)[0];
        if (CHATTER.has(command)) continue;
        const key = `${doc.$db}.${typeof doc[command] === "string" ? doc[command] : ""} ${command}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port: own } = server.address() as { port: number };

  return {
    uri: `mongodb://127.0.0.1:${own}`,
    counts: () => Object.fromEntries([...counts].sort()),
    total: (db) => [...counts].filter(([k]) => !db || k.startsWith(`${db}.`)).reduce((n, [, c]) => n + c, 0),
    reset: () => {
      counts = new Map();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
