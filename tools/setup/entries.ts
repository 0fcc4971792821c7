// What `npm run build` (tools/setup/build.ts) compiles, and where: one file per entry point in dist/. Kept apart
// from the build script so that code which runs the compiled files (tools/stack/launcher.ts, tools/stack/process.ts) does
// not pull esbuild in.
import { join } from "node:path";
import { ROOT } from "../root.js";

export const DIST = join(ROOT, "dist");

/** Output name → source entry point (paths from the repository root). */
export const ENTRIES = {
  identity: "services/identity/src/main.ts",
  catalog: "services/catalog/src/main.ts",
  orders: "services/orders/src/main.ts",
  payment: "services/payment/src/main.ts",
  monolith: "tools/stack/monolith-main.ts",
  start: "tools/stack/start.ts",
  "echo-server": "tools/traffic/bench/echo-server.ts",
} as const;
export type EntryName = keyof typeof ENTRIES;

/**
 * V8 flags every service process runs with (npm start, the tests' and the bench's children, the image's
 * ENTRYPOINT).
 *
 * --max-semi-space-size=2 (MB): V8's young generation may grow to 16 MB per semi-space by default, and
 * start-up (module loading, mongoose's schemas, the first connections) fills it, so an idle service kept
 * ~20 MB of young-generation pages it never needed: catalog idled at 105 MB RSS, 87 MB with 2 MB semi-spaces
 * (85 MB with 1). A request's garbage is small and short-lived, so a 2 MB nursery still holds many requests'
 * worth between scavenges.
 *
 * --heap-growing-percent=30: after each full GC V8 lets the old generation grow to a multiple of what
 * survived before the next one, a multiple of up to 4 when the heap may be large (here ~4 GB), and under load
 * a service promotes several MB/s of short-lived call data (in-flight queries, documents, buffers) into it.
 * So catalog, ~25 MB live, grew to ~100 MB of old space (RSS 170-190 MB) before marking caught up on 2 busy
 * cores. 1.3 is the factor V8 itself uses when it optimizes for memory (kConservativeGrowingFactor): full GCs
 * come sooner (catalog: ~12 instead of ~5 in 25 s of closed-loop load, each mostly concurrent, ~10 ms on the
 * main thread), and the peak was 100-107 MB instead of 170-176 (orders 109-123 instead of 132-147). Chosen over
 * --max-old-space-size, which gets a smaller factor only as a side effect of a small cap (1.3 at ≤ 256 MB),
 * and turns a burst that needs more live memory into an out-of-memory crash; this flag caps nothing.
 * `npm run bench -- --only memory` measures it under the bench's loads (and counts failed calls).
 */
export const SERVICE_NODE_FLAGS = ["--max-semi-space-size=2", "--heap-growing-percent=30"] as const;

/** The compiled file of an entry point (dist/<name>.js), by its source path or its name; undefined for others. */
export function compiledOf(entry: string): string | undefined {
  const name = (Object.keys(ENTRIES) as EntryName[]).find((n) => ENTRIES[n] === entry || n === entry);
  return name && join(DIST, `${name}.js`);
}
