// Lease locks across processes (two connections stand in for two processes: the in-process queue does not
// help them), against the real embedded database.
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import mongoose, { type Connection } from "mongoose";
import { lockTable } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";

describe("lease locks", () => {
  const dbName = uniqueDbName("locks");
  let a: Connection;
  let b: Connection;

  before(async () => {
    a = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
    b = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await dropDatabase(dbName);
  });

  it("keeps a second process out while the holder works, even past the lease length", async () => {
    const events: string[] = [];
    let aIn: () => void = () => undefined;
    const aHasIt = new Promise<void>((r) => (aIn = r));
    const holder = lockTable(a).withLock(
      "k1",
      async () => {
        events.push("a in");
        aIn();
        await new Promise((r) => setTimeout(r, 4000)); // two lease lengths: only renewal keeps it
        events.push("a out");
      },
      { ttlMs: 2000 }, // renewed every ~670 ms: room for a slow renewal on a loaded machine
    );
    await aHasIt; // a holds the lock before b asks (a fixed pause was not enough on a busy machine)
    const waiter = lockTable(b).withLock("k1", async () => events.push("b in"), { ttlMs: 2000, waitMs: 20_000 });
    await Promise.all([holder, waiter]);
    expect(events).to.deep.equal(["a in", "a out", "b in"]);
  });

  it("takes over the lease of a holder that died", async () => {
    const locks = a.collection("locks");
    await locks.insertOne({ _id: "k2" as never, owner: "dead-process", expiresAt: new Date(Date.now() - 1000) });
    const result = await lockTable(b).withLock("k2", async () => "got it", { waitMs: 2000 });
    expect(result).to.equal("got it");
    expect(await locks.findOne({ _id: "k2" as never })).to.equal(null); // released after use
  });

  it("lets a waiter whose caller has gone give up with the caller's reason, without running its work", async () => {
    const locks = a.collection("locks");
    await locks.insertOne({ _id: "k4" as never, owner: "busy-process", expiresAt: new Date(Date.now() + 60_000) });
    const caller = new AbortController();
    let ran = false;
    const waiting = lockTable(b)
      .withLock("k4", async () => (ran = true), { waitMs: 60_000, signal: caller.signal })
      .catch((e) => e);
    caller.abort(new Error("deadline passed"));
    expect(String(await waiting)).to.match(/deadline passed/);
    expect(ran).to.equal(false);
    // Already gone before asking: the lock is not even tried.
    const gone = await lockTable(b)
      .withLock("free-key", async () => (ran = true), { signal: caller.signal })
      .catch((e) => e);
    expect(String(gone)).to.match(/deadline passed/);
    expect(ran).to.equal(false);
    expect(await locks.findOne({ _id: "free-key" as never })).to.equal(null);
  });

  it("gives up with ABORTED when the lock stays taken", async () => {
    const locks = a.collection("locks");
    await locks.insertOne({ _id: "k3" as never, owner: "busy-process", expiresAt: new Date(Date.now() + 60_000) });
    const err = await lockTable(b)
      .withLock("k3", async () => "never", { waitMs: 200 })
      .catch((e) => e);
    expect(String(err)).to.match(/busy/);
  });
  it("releases only after a renewal in flight has landed (else it could write the lock back over the next holder's)", async () => {
    // FerretDB applies the renewal as read-modify-write: one still running when the lock is deleted can put
    // the old owner's document back after the next holder inserted its own (seen 5 times in 200 handovers).
    // The renewal is held back here so that it is surely in flight when the holder finishes.
    const coll = a.collection("locks");
    const events: string[] = [];
    const { updateOne, deleteOne } = coll;
    let renewalSent: () => void = () => undefined;
    const sent = new Promise<void>((r) => (renewalSent = r));
    coll.updateOne = async function (this: typeof coll, ...args: Parameters<typeof updateOne>) {
      events.push("renewal sent");
      renewalSent();
      await new Promise((r) => setTimeout(r, 300));
      const result = await updateOne.apply(this, args);
      events.push("renewal landed");
      return result;
    } as typeof updateOne;
    coll.deleteOne = async function (this: typeof coll, ...args: Parameters<typeof deleteOne>) {
      events.push("released");
      return deleteOne.apply(this, args);
    } as typeof deleteOne;
    try {
      await lockTable(a).withLock("k5", () => sent, { ttlMs: 150 });
    } finally {
      coll.updateOne = updateOne;
      coll.deleteOne = deleteOne;
    }
    expect(events).to.deep.equal(["renewal sent", "renewal landed", "released"]);
    expect(await coll.findOne({ _id: "k5" as never })).to.equal(null);
  });

  it("aborts a holder whose lease was taken over, and leaves the new holder's lock alone", async () => {
    const coll = a.collection("locks");
    let sawAbort = false;
    const outcome = await lockTable(a)
      .withLock(
        "k6",
        async (lease) => {
          // As if this process stalled past its lease: it expired and another process took the lock.
          await coll.deleteOne({ _id: "k6" as never });
          await coll.insertOne({ _id: "k6" as never, owner: "next-holder", expiresAt: new Date(Date.now() + 60_000) });
          // The next renewal (every ttl/3) finds the lock no longer ours; 10 s is only the limit of the wait.
          await new Promise((r) => {
            lease.addEventListener("abort", r);
            setTimeout(r, 10_000).unref();
          });
          sawAbort = lease.aborted;
          return "finished";
        },
        { ttlMs: 150 },
      )
      .catch((e) => e);
    expect(sawAbort, "the holder's signal aborted").to.equal(true);
    expect(ConnectError.from(outcome).code).to.equal(Code.Aborted);
    expect((await coll.findOne({ _id: "k6" as never }))?.owner).to.equal("next-holder");
  });
});
