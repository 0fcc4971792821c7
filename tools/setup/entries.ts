// What `npm run build` (tools/build.ts) compiles, and where: one file per entry point in dist/. Kept apart
// from the build script so that code which runs the compiled files (tools/stack.ts, tools/process.ts) does
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
  start: "tools/stack/start.ts",
  "echo-server": "tools/traffic/bench/echo-server.ts",
} as const;
export type EntryName = keyof typeof ENTRIES;

/** The compiled file of an entry point (dist/<name>.js), by its source path or its name; undefined for others. */
export function compiledOf(entry: string): string | undefined {
  const name = (Object.keys(ENTRIES) as EntryName[]).find((n) => ENTRIES[n] === entry || n === entry);
  return name && join(DIST, `${name}.js`);
}
