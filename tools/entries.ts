// What `npm run build` (tools/build.ts) compiles, and where: one file per entry point in dist/. Kept apart
// from the build script so that code which runs the compiled files (tools/stack.ts, tools/process.ts) does
// not pull esbuild in.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DIST = join(ROOT, "dist");

/** Output name → source entry point (paths from the repository root). */
export const ENTRIES = {
  identity: "services/identity/src/main.ts",
  catalog: "services/catalog/src/main.ts",
  orders: "services/orders/src/main.ts",
  payment: "services/payment/src/main.ts",
  start: "tools/start.ts",
  "echo-server": "tools/bench/echo-server.ts",
} as const;
export type EntryName = keyof typeof ENTRIES;

/** The compiled file of an entry point (dist/<name>.js), by its source path or its name; undefined for others. */
export function compiledOf(entry: string): string | undefined {
  const name = (Object.keys(ENTRIES) as EntryName[]).find((n) => ENTRIES[n] === entry || n === entry);
  return name && join(DIST, `${name}.js`);
}
