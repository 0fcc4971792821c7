// The kit's two sides stand apart: the server side (serving handlers) and the client side (dialling peers)
// depend on shared pieces, never on each other, and the shared pieces on neither. Read from the import lines
// of services/kit/src with TypeScript's own pre-processor (imports, `import type`, re-exports, dynamic imports).
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { expect } from "chai";
import ts from "typescript";
import { projectRoot } from "#kit";

const SRC = join(projectRoot(), "services/kit/src");

/** The server side: what puts handlers on a port (engines, health, reflection, interceptors, auth, validation). */
const SERVER = new Set([
  "serve",
  "service-config",
  "grpc-server",
  "admin",
  "health",
  "connect-health",
  "reflection",
  "connect-reflection",
  "interceptors",
  "auth",
  "validate",
  "faults",
  "mesh-server",
  "mesh-security",
  "db",
]);
/** The client side: what calls other services (pools, transports, client interceptors). */
const CLIENT = new Set(["dial", "grpc-transport", "client-metrics"]);
/** Where the sides meet on purpose: the package's entry point, and the monolith's in-memory transport. */
const BRIDGES = new Set(["index", "in-memory"]);

type Side = "server" | "client" | "shared";
const sideOf = (m: string): Side => (SERVER.has(m) ? "server" : CLIENT.has(m) ? "client" : "shared");

/** Module name → the kit modules it imports. */
function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(dir, file), "utf8"), true, true);
    const local = importedFiles.map((i) => i.fileName).filter((f) => f.startsWith("./"));
    graph.set(
      basename(file, ".ts"),
      local.map((f) => basename(f, ".js")),
    );
  }
  return graph;
}

/** Every import that crosses between the sides, or from a shared piece into either side. */
function crossings(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  for (const [from, imports] of graph) {
    if (BRIDGES.has(from)) continue;
    for (const to of imports) {
      const a = sideOf(from);
      const b = sideOf(to);
      if (a !== b && b !== "shared") found.push(`${from} (${a}) imports ${to} (${b})`);
    }
  }
  return found;
}

describe("the kit's two sides", () => {
  const graph = importGraph(SRC);

  it("reads the import graph (every module, and the imports that exist today)", () => {
    expect(graph.get("serve")).to.include("grpc-server");
    expect(graph.get("dial")).to.include("grpc-transport");
    expect(graph.get("grpc-transport")).to.include("grpc-methods");
  });

  it("names only modules that exist", () => {
    for (const m of [...SERVER, ...CLIENT, ...BRIDGES]) expect(graph.has(m), `${m}.ts`).to.equal(true);
  });

  it("has no import from the client side into the server side or back, nor from a shared piece into either", () => {
    expect(crossings(graph)).to.deep.equal([]);
  });

  it("would catch one (the old dial.ts → serve.ts, grpc-transport.ts → grpc-server.ts, a shared piece → dial)", () => {
    const old = new Map([
      ["dial", ["serve", "grpc-transport"]],
      ["grpc-transport", ["grpc-server", "context"]],
      ["context", ["dial"]],
      ["serve", ["grpc-server"]],
    ]);
    expect(crossings(old)).to.deep.equal([
      "dial (client) imports serve (server)",
      "grpc-transport (client) imports grpc-server (server)",
      "context (shared) imports dial (client)",
    ]);
  });
});
