// The shopper mix: which RPC each arrival is, drawn with weights from a seeded generator.
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

export const OPS = ["browse", "search", "getProduct", "login", "placeOrder"] as const;
export type Op = (typeof OPS)[number];

/** Mostly looking, some buying, few logins (a login is a deliberately slow scrypt hash). */
export const DEFAULT_MIX: Record<Op, number> = { browse: 30, search: 15, getProduct: 40, login: 2, placeOrder: 13 };

export interface Rng {
  /** Uniform integer in [from, to]. */
  int(from: number, to: number): number;
  pick<T>(items: readonly T[]): T;
}

/** A reproducible generator: the same seed gives the same sequence. */
export function seededRng(seed: number): Rng {
  const g: RandomGenerator = xoroshiro128plus(seed | 0);
  return {
    int: (from, to) => uniformInt(g, from, to),
    pick: (items) => items[uniformInt(g, 0, items.length - 1)],
  };
}

/** Throws a RangeError naming the op unless every weight is a finite number >= 0 and some are > 0. */
export function checkMix(mix: Partial<Record<Op, number>>): Partial<Record<Op, number>> {
  for (const [op, w] of Object.entries(mix)) {
    if (!(OPS as readonly string[]).includes(op)) throw new RangeError(`mix: unknown op "${op}" (ops: ${OPS.join(", ")})`);
    if (!(typeof w === "number" && Number.isFinite(w) && w >= 0)) throw new RangeError(`mix: weight of ${op} must be a number >= 0, got ${w}`);
  }
  if (!Object.values(mix).some((w) => (w ?? 0) > 0)) throw new RangeError("mix: at least one weight must be > 0");
  return mix;
}

/** "placeOrder=1,getProduct=5" → { placeOrder: 1, getProduct: 5 }; ops left out get weight 0. */
export function parseMix(text: string): Partial<Record<Op, number>> {
  const mix: Record<string, number> = {};
  for (const part of text.split(",").filter((p) => p.trim())) {
    const [op, weight, ...rest] = part.split("=").map((s) => s.trim());
    if (weight === undefined || rest.length || weight === "") throw new RangeError(`mix: "${part}" is not op=weight`);
    mix[op] = Number(weight);
  }
  return checkMix(mix);
}

/** Draws ops in proportion to their weights. */
export function opPicker(mix: Partial<Record<Op, number>>, rng: Rng): () => Op {
  checkMix(mix);
  // Integer weights (1/1000 resolution; a tiny positive weight still counts).
  const entries = OPS.map((op) => [op, (mix[op] ?? 0) > 0 ? Math.max(1, Math.round((mix[op] ?? 0) * 1000)) : 0] as const).filter(([, w]) => w > 0);
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  return () => {
    let x = rng.int(0, total - 1);
    for (const [op, w] of entries) {
      if (x < w) return op;
      x -= w;
    }
    return entries[entries.length - 1][0];
  };
}
