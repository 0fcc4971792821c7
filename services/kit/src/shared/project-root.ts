// The project's root directory: the nearest one above this module that holds package.json. The same answer
// from the sources (services/kit/src/), from a bundle (dist/<service>.js) and in an image (/app), so a
// default path under the root does not depend on where the code was compiled to or the working directory.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function projectRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return from; // none above: stay where the module is
  }
}
