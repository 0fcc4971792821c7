// The repository's root, for every tool: the nearest directory above that holds package.json (the kit's
// projectRoot), so the answer is the same from tools/<job>/…, from a bundle in dist/ and in an image (/app),
// whatever the folder depth of the module asking. (This checker's own repository too: the tools and the built
// binaries live here, even when a tool works on a copy of the sources.)
// #kit/root, not #kit: every tool imports this, and the whole kit loads mongoose, grpc-js and the OTel SDK
// (about 0.8 s and 60 MB more per process) for one 10-line function.
import { projectRoot } from "#kit/root";

export const ROOT = projectRoot();
