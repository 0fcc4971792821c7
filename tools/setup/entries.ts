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
 * ENTRYPOINT). --max-semi-space-size=2 (MB): V8's young generation may grow to 16 MB per semi-space by
 * default, and start-up (module loading, mongoose's schemas, the first connections) fills it, so an idle
 * service kept ~20 MB of young-generation pages it never needed: catalog idled at 105 MB RSS, 87 MB with 2 MB
 * semi-spaces (85 MB with 1). A request's garbage is small and short-lived, so a 2 MB nursery still holds many
 * requests' worth between scavenges.
 */
export const SERVICE_NODE_FLAGS = ["--max-semi-space-size=2"] as const;

/** The compiled file of an entry point (dist/<name>.js), by its source path or its name; undefined for others. */
export function compiledOf(entry: string): string | undefined {
  const name = (Object.keys(ENTRIES) as EntryName[]).find((n) => ENTRIES[n] === entry || n === entry);
  return name && join(DIST, `${name}.js`);
}
