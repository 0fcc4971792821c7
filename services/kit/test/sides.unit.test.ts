// The kit's two sides stand apart: the server side (services/kit/src/server/: serving handlers) and the client side
// (client/: dialling peers) depend on shared pieces (shared/), never on each other, and the shared pieces on
// neither. A module's side is its folder; only the bridges at the top (index.ts, the package's entry point, and
// in-memory.ts, the monolith's transport) may use both. Read from the import lines with TypeScript's own
// pre-processor (imports, `import type`, re-exports, dynamic imports).
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { expect } from "chai";
import ts from "typescript";
import { projectRoot } from "#kit";

const SRC = join(projectRoot(), "services/kit/src");
const SIDES = ["server", "client", "shared"] as const;
type Side = (typeof SIDES)[number] | "bridge";
/** The modules at the top of src/, outside the sides on purpose. */
const BRIDGES = ["in-memory.ts", "index.ts"];

/** Module ("server/serve", "in-memory") → the kit modules it imports, by the same kind of name. */
function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(dir, file), "utf8"), true, true);
    const local = importedFiles.map((i) => i.fileName).filter((f) => f.startsWith("."));
    graph.set(
      file.replace(/\.ts$/, ""),
      local.map((f) => relative(dir, normalize(join(dir, dirname(file), f))).replace(/\.js$/, "")),
    );
  }
  return graph;
}

const sideOf = (m: string): Side => {
  const top = m.split("/")[0];
  return (SIDES as readonly string[]).includes(top) ? (top as Side) : "bridge";
};

/** Every import that crosses between the sides, or from a shared piece into either side. */
function crossings(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  for (const [from, imports] of graph) {
    const a = sideOf(from);
    if (a === "bridge") continue;
    for (const to of imports) {
      const b = sideOf(to);
      if (a !== b && b !== "shared") found.push(`${from} (${a}) imports ${to} (${b})`);
    }
  }
  return found;
}

describe("the kit's two sides", () => {
  const graph = importGraph(SRC);

  it("reads the import graph (every module, and the imports that exist today)", () => {
    expect(graph.get("server/serve")).to.include("server/grpc-server");
    expect(graph.get("client/dial")).to.include("client/grpc-transport");
    expect(graph.get("client/grpc-transport")).to.include("shared/grpc-methods");
    expect(graph.get("in-memory")).to.include("client/dial");
  });

  it("keeps every module in a side's folder, but the bridges", () => {
    const loose = readdirSync(SRC).filter((f) => f.endsWith(".ts"));
    expect(loose.sort()).to.deep.equal(BRIDGES);
    for (const side of SIDES)
      expect(
        readdirSync(join(SRC, side)).filter((f) => f.endsWith(".ts")),
        side,
      ).to.not.be.empty;
  });

  it("has no import from the client side into the server side or back, nor from a shared piece into either", () => {
    expect(crossings(graph)).to.deep.equal([]);
  });

  it("would catch one (the old dial.ts → serve.ts, grpc-transport.ts → grpc-server.ts, a shared piece → dial)", () => {
    const old = new Map([
      ["client/dial", ["server/serve", "client/grpc-transport"]],
      ["client/grpc-transport", ["server/grpc-server", "shared/context"]],
      ["shared/context", ["client/dial"]],
      ["server/serve", ["server/grpc-server"]],
    ]);
    expect(crossings(old)).to.deep.equal([
      "client/dial (client) imports server/serve (server)",
      "client/grpc-transport (client) imports server/grpc-server (server)",
      "shared/context (shared) imports client/dial (client)",
    ]);
  });
});
