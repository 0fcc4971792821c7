// npm run check:manifests: the offline checks of the cluster path (tools/checks/manifests/index.ts says what they are).
// Prints every problem as "<file>: <problem>" and exits 1 if there is any, 2 if the check cannot run.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "../root.js";
import { checkManifests } from "./manifests/index.js";

export { checkManifests, type Problem, sharedSchemasDir } from "./manifests/index.js";

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    const problems = checkManifests(ROOT);
    for (const p of problems) console.error(`${p.file}: ${p.message}`);
    if (problems.length > 0) {
      console.error(`\ncheck-manifests: ${problems.length} problem(s)`);
      process.exit(1);
    }
    console.log(
      "check-manifests: skaffold.yaml and every kustomization render and validate (offline: schemas, cross-checks, istioctl analyze + validate; no cluster)",
    );
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}
