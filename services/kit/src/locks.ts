// Short lease locks on a unique _id, for read-check-write steps that must not interleave.
// Why: FerretDB v1 (the dev/test database) applies an update as read-modify-write, so a conditional
// updateOne ({stock: {$gte: n}}, {$inc: ...}) is not atomic under concurrency there, while inserting a
// duplicate _id fails atomically on every Mongo-wire server. Callers in one process queue in memory;
// other processes (catalog v1 and v2 share a database) retry with backoff. The holder renews its lease
// while it works, so the ttl can be short: a lease left by a crashed process expires within it.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Connection } from "mongoose";

interface LockRecord {
  _id: string;
  owner: string;
  expiresAt: Date;
}

export interface LockOptions {
  /** Lease length; renewed every third of it while the holder works, so only a crashed holder's lease runs out. */
  ttlMs?: number;
  /** How long to wait for a lock held elsewhere before giving up with ABORTED. */
  waitMs?: number;
  /**
   * The caller's signal (ctx.signal): once it aborts (deadline passed, caller gone) a waiter gives up with its
   * reason instead of taking the lock. Under overload, work done for callers who have left only deepens it.
   */
  signal?: AbortSignal;
}

export type Locks = ReturnType<typeof lockTable>;

export function lockTable(db: Connection, collection = "locks") {
  // The driver's collection, not a mongoose model: a lock is taken and dropped for every guarded step, and a
  // model would build, validate and cast a document each time for three plain fields.
  const Lock = db.collection<LockRecord>(collection);
  const queues = new Map<string, Promise<unknown>>();

  async function acquire(key: string, ttlMs: number, waitMs: number, signal?: AbortSignal): Promise<string> {
    const owner = randomUUID();
    const giveUp = Date.now() + waitMs;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        await Lock.insertOne({ _id: key, owner, expiresAt: new Date(Date.now() + ttlMs) });
        return owner;
      } catch (err) {
        if ((err as { code?: number }).code !== 11000) throw err;
      }
      // A crashed holder's lease: delete exactly the expired one we saw (FerretDB deletes non-atomically, so
      // a filter on expiresAt alone could remove a fresh lease another waiter has just taken).
      const stale = await Lock.findOne({ _id: key });
      if (stale && stale.expiresAt.getTime() < Date.now()) await Lock.deleteOne({ _id: key, owner: stale.owner });
      if (Date.now() > giveUp) throw new ConnectError(`"${key}" is busy; retry`, Code.Aborted);
      await new Promise((r) => setTimeout(r, Math.min(2 ** attempt, 40) + Math.random() * 5));
    }
  }

  /** Runs `fn` while holding `key`; callers for the same key run one after another. */
  async function withLock<T>(key: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const prev = queues.get(key) ?? Promise.resolve();
    const run = prev
      .catch(() => undefined)
      .then(async () => {
        const ttlMs = opts.ttlMs ?? 5_000;
        const owner = await acquire(key, ttlMs, opts.waitMs ?? 5_000, opts.signal);
        // Renew while working, so the lease only runs out when this process is gone.
        const renew = setInterval(() => {
          Lock.updateOne({ _id: key, owner }, { $set: { expiresAt: new Date(Date.now() + ttlMs) } }).catch(() => undefined);
        }, ttlMs / 3);
        try {
          return await fn();
        } finally {
          clearInterval(renew);
          await Lock.deleteOne({ _id: key, owner }).catch(() => undefined);
        }
      });
    queues.set(key, run);
    try {
      return await run;
    } finally {
      if (queues.get(key) === run) queues.delete(key);
    }
  }

  /** Holds every key (sorted, so two callers never wait on each other in a cycle). */
  async function withLocks<T>(keys: string[], fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const step = (i: number): Promise<T> => (i === sorted.length ? fn() : withLock(sorted[i], () => step(i + 1), opts));
    return step(0);
  }

  return { withLock, withLocks };
}
