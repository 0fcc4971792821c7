// The repository's root, for every tool: the nearest directory above that holds package.json (the kit's
// projectRoot), so the answer is the same from tools/<job>/…, from a bundle in dist/ and in an image (/app),
// whatever the folder depth of the module asking.
import { projectRoot } from "../services/kit/src/project-root.js";

export const ROOT = projectRoot();
