// npm run build: meshmart as JavaScript in dist/, one file per entry point, which the images and `npm start` run.
//
//   npm run build                 every entry (the four services, npm start's launcher, the bench's echo server)
//   npm run build -- orders       one entry (the image's build stage builds only its SERVICE)
//
// Why esbuild (not tsc): it bundles our own modules into one file per service (node_modules stay outside,
// installed by `npm ci --omit=dev`), so a service loads one script instead of ~60 modules (less memory, faster
// start) and the image copies one file; it builds everything in well under a second, so `npm start` and every
// mocha run can rebuild first and never run stale code. esbuild does not check types: `npm run typecheck` (tsc)
// does, as before. tsx still runs the tools and the tests' in-process code.
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { ROOT } from "../root.js";
import { DIST, ENTRIES, type EntryName } from "./entries.js";

/** Bundles the named entries (all by default) into `outdir`. */
export async function buildEntries(names: readonly EntryName[] = Object.keys(ENTRIES) as EntryName[], outdir = DIST): Promise<void> {
  for (const n of names) if (!(n in ENTRIES)) throw new Error(`build: no entry "${n}" (one of ${Object.keys(ENTRIES).join(", ")})`);
  await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(names.map((n) => [n, ENTRIES[n]])),
    outdir,
    bundle: true,
    packages: "external", // node_modules are installed next to the file (npm ci --omit=dev), not bundled
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked", // for `node --enable-source-maps` when debugging; not loaded otherwise
    logLevel: "warning",
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const names = process.argv.slice(2) as EntryName[];
  buildEntries(names.length ? names : undefined).catch((err: Error) => {
    console.error(`build failed: ${err.message}`);
    process.exit(1);
  });
}
