// A temporary directory for a describe block: made before its tests, removed after them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Registers the before/after hooks; read `path` inside the tests (it is made in before()). */
export function tempDirFor(prefix: string): { readonly path: string } {
  let dir: string | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get path() {
      if (!dir) throw new Error("tempDirFor: read the path inside a test (it is made in before())");
      return dir;
    },
  };
}
