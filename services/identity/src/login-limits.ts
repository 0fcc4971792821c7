// Login throttling: failed attempts are counted per (account, source) pair, per source and per account
// (distinct failing sources), in identity's own database so every replica sees the same counts. Past a few
// free failures each counter blocks with exponential backoff, capped; a block is answered RESOURCE_EXHAUSTED
// with a google.rpc.RetryInfo saying when to try again. See ../README.md ("Login throttling") for the design.
import { type Connection, Schema } from "mongoose";

export interface LoginLimitSettings {
  /** Failures a source may make on one account before it is slowed. */
  pairFree: number;
  /** Failures a source may make across all accounts before it is slowed (NAT'd offices share addresses). */
  sourceFree: number;
  /** Distinct failing sources an account may see before it is slowed for everyone (a distributed attack). */
  accountSourcesFree: number;
  /** First block after the free failures; doubles with every further failure. */
  baseMs: number;
  /** Longest block: nobody is locked out for longer than this at a time. */
  capMs: number;
  /** A counter with no failure for this long starts over (FerretDB v1 has no TTL indexes: expiry by timestamp). */
  windowMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimitSettings = {
  pairFree: 5,
  sourceFree: 20,
  accountSourcesFree: 10,
  baseMs: 1000,
  capMs: 5 * 60_000,
  windowMs: 15 * 60_000,
};

interface Counter {
  _id: string; // "pair:<email> <source>", "src:<source>" or "acct:<email>"
  failures: number;
  /** acct counters only: the distinct sources that failed (at most MAX_SOURCES kept). */
  sources: string[];
  lastFailureAt: Date;
  blockedUntil: Date;
}

const MAX_SOURCES = 64;
const DUPLICATE_KEY = 11000;

const counterRecord = new Schema<Counter>(
  {
    _id: String,
    failures: { type: Number, default: 0 },
    sources: { type: [String], default: [] },
    lastFailureAt: Date,
    blockedUntil: Date,
  },
  { versionKey: false, collection: "login_failures" },
);

/** The block after the free failures are used up: base · 2^(over-1) for the over-th, capped. */
export function backoffMs(over: number, s: Pick<LoginLimitSettings, "baseMs" | "capMs">): number {
  if (over <= 0) return 0;
  return Math.min(s.capMs, s.baseMs * 2 ** Math.min(over - 1, 30));
}

export type LoginLimits = ReturnType<typeof loginLimits>;

export function loginLimits(db: Connection, settings: LoginLimitSettings, now: () => number = Date.now) {
  const Counters = db.model<Counter>("LoginFailures", counterRecord);
  const keys = (email: string, source: string) => ({ pair: `pair:${email} ${source}`, src: `src:${source}`, acct: `acct:${email}` });
  const live = (c: Counter | undefined, t: number) => c && t - c.lastFailureAt.getTime() < settings.windowMs;

  return {
    /** Milliseconds until this source may try this account again; 0 = go ahead. */
    async waitMs(email: string, source: string): Promise<number> {
      const k = keys(email, source);
      const t = now();
      const found = await Counters.find({ _id: { $in: [k.pair, k.src, k.acct] } }).lean<Counter[]>();
      let wait = 0;
      for (const c of found) if (live(c, t)) wait = Math.max(wait, c.blockedUntil.getTime() - t);
      return Math.max(0, wait);
    },

    /**
     * Counts a failed attempt. Read-modify-write, like FerretDB applies $inc anyway: two failures at the same
     * instant may count once — the limit slows an attacker down, it is not an exact count.
     */
    async failed(email: string, source: string): Promise<void> {
      // Two first failures at once both try to insert the counter: the loser (duplicate key) counts again on
      // top of the winner's document instead of failing the login with INTERNAL (found by the fuzzer).
      for (let attempt = 1; ; attempt++) {
        try {
          return await countFailure(email, source);
        } catch (err) {
          if ((err as { code?: number }).code !== DUPLICATE_KEY || attempt >= 3) throw err;
        }
      }
    },

    /** A successful login clears this source's record for the account (not the source's own counter). */
    async succeeded(email: string, source: string): Promise<void> {
      await Counters.deleteOne({ _id: keys(email, source).pair });
    },

    /** Drops counters idle for longer than the window (the stand-in for a TTL index); returns how many. */
    async sweep(): Promise<number> {
      return (await Counters.deleteMany({ lastFailureAt: { $lt: new Date(now() - settings.windowMs) } })).deletedCount;
    },
  };

  async function countFailure(email: string, source: string): Promise<void> {
    const k = keys(email, source);
    const t = now();
    const found = new Map((await Counters.find({ _id: { $in: [k.pair, k.src, k.acct] } }).lean<Counter[]>()).map((c) => [c._id, c]));
    const next = (id: string, free: number, addSource?: string): Counter => {
      const old = found.get(id);
      const fresh = !live(old, t);
      const failures = fresh ? 1 : (old?.failures ?? 0) + 1;
      let sources = fresh ? [] : (old?.sources ?? []);
      if (addSource !== undefined && !sources.includes(addSource) && sources.length < MAX_SOURCES) sources = [...sources, addSource];
      // The account counter blocks on distinct sources, so one source hammering an account never blocks it for others.
      // The free-th failure is the last one answered at once: from then on each one costs a wait.
      const over = (addSource !== undefined ? sources.length : failures) - free + 1;
      return { _id: id, failures, sources, lastFailureAt: new Date(t), blockedUntil: new Date(t + backoffMs(over, settings)) };
    };
    const updates = [next(k.pair, settings.pairFree), next(k.src, settings.sourceFree), next(k.acct, settings.accountSourcesFree, source)];
    await Counters.bulkWrite(updates.map((u) => ({ replaceOne: { filter: { _id: u._id }, replacement: u, upsert: true } })));
  }
}
