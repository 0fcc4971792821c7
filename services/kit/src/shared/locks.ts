// Short lease locks on a unique _id, for steps of several commands (read, check, write) that must not
// interleave; one document's conditional update needs none (the database applies it atomically; devdb
// serialises FerretDB's read-modify-write to match). Inserting a duplicate _id fails atomically on every
// Mongo-wire server, and there are no multi-document transactions on FerretDB v1. Callers in one process queue in memory;
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

const lostLease = (key: string) => new ConnectError(`lost the lease on "${key}" while working (it ran out and was taken); retry`, Code.Aborted);

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
      // A crashed holder's lease: delete exactly the expired one we saw, by its owner (a filter of _id and
      // expiresAt, which FerretDB v1 cannot push down to SQLite, would read the whole table).
      const stale = await Lock.findOne({ _id: key });
      if (stale && stale.expiresAt.getTime() < Date.now()) await Lock.deleteOne({ _id: key, owner: stale.owner });
      if (Date.now() > giveUp) throw new ConnectError(`"${key}" is busy; retry`, Code.Aborted);
      await new Promise((r) => setTimeout(r, Math.min(2 ** attempt, 40) + Math.random() * 5));
    }
  }

  /**
   * Runs `fn` while holding `key`; callers for the same key run one after another. `fn` gets a signal that
   * aborts when the lease is lost (a renewal found the lock no longer ours: it ran out while this process
   * stalled and another holder took it); withLock then rejects with ABORTED even if `fn` finished, since
   * another holder may have interleaved, and the caller retries (every guarded step is idempotent).
   */
  async function withLock<T>(key: string, fn: (lease: AbortSignal) => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const prev = queues.get(key) ?? Promise.resolve();
    const run = prev
      .catch(() => undefined)
      .then(async () => {
        const ttlMs = opts.ttlMs ?? 5_000;
        const owner = await acquire(key, ttlMs, opts.waitMs ?? 5_000, opts.signal);
        const lease = new AbortController();
        // Renew while working, so the lease only runs out when this process is gone. One renewal at a time,
        // and release waits for the one in flight, so a renewal never reaches the database after the release
        // (it would find the next holder's lock, not ours, and count the lease as lost).
        let done = false;
        let timer: NodeJS.Timeout | undefined;
        let renewing: Promise<void> = Promise.resolve();
        const renewLater = () => {
          if (done) return;
          timer = setTimeout(() => {
            renewing = Lock.updateOne({ _id: key, owner }, { $set: { expiresAt: new Date(Date.now() + ttlMs) } }).then(
              (r) => {
                if (r.matchedCount === 0) lease.abort(lostLease(key));
                else renewLater();
              },
              () => renewLater(), // a database hiccup: the lease still runs for a while; try again
            );
          }, ttlMs / 3);
        };
        renewLater();
        let result: T;
        try {
          result = await fn(lease.signal);
        } finally {
          done = true;
          clearTimeout(timer);
          await renewing;
          // A lost lease is someone else's lock now: never delete it. Finding ours gone at release also
          // means it was lost (taken over after the last renewal).
          if (!lease.signal.aborted) {
            const released = await Lock.deleteOne({ _id: key, owner }).catch(() => undefined);
            if (released?.deletedCount === 0) lease.abort(lostLease(key));
          }
        }
        lease.signal.throwIfAborted();
        return result;
      });
    queues.set(key, run);
    try {
      return await run;
    } finally {
      if (queues.get(key) === run) queues.delete(key);
    }
  }

  /** Holds every key (sorted, so two callers never wait on each other in a cycle); `fn`'s signal aborts when any lease is lost. */
  async function withLocks<T>(keys: string[], fn: (lease: AbortSignal) => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const step = (i: number, leases: AbortSignal[]): Promise<T> =>
      i === sorted.length ? fn(AbortSignal.any(leases)) : withLock(sorted[i], (lease) => step(i + 1, [...leases, lease]), opts);
    return step(0, []);
  }

  return { withLock, withLocks };
}
