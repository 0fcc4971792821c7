// The service images, checked without Docker: the one Dockerfile's rules (Node 22, production dependencies only,
// non-root, compiled JavaScript and no TypeScript or tsx in the runtime image, no `COPY . .`), and its file sets:
// the build stage's files, installed with the same lockfile, compile each service with the stage's own command;
// the runtime stage's files — the same `npm ci --omit=dev`, package.json and the compiled file, nothing else —
// start each service with the env its Deployment sets, with plain `node`, and serve gRPC health, the call the
// kubelet's grpc probe makes. What only a real build shows (the base image, the layer cache, file ownership, a
// read-only root filesystem) is not covered here.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { parseAllDocuments } from "yaml";
import { ordersPeerEnv } from "../services/orders/src/peers.js";
import { kustomizeBinary } from "../tools/checks/manifests/render.js";
import { ROOT } from "../tools/root.js";
import { SERVICE_NODE_FLAGS } from "../tools/setup/entries.js";
import { freePort } from "../tools/stack/devdb.js";
import { waitForHealth } from "../tools/stack/health-wait.js";
import { testMongoUri, uniqueDbName } from "./support/db.js";

const SERVICES = ["identity", "catalog", "orders", "payment"] as const;
type Svc = (typeof SERVICES)[number];

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

/** Stages and their instructions for one SERVICE build arg, with line continuations joined and comments dropped. */
function parseDockerfile(text: string, service: Svc): Stage[] {
  const lines = text
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ from: from[1], name: from[2], lines: [] });
    // ARG values are substituted the way BuildKit does in COPY and RUN (RUN through the shell, same result here).
    else stages.at(-1)?.lines.push(line.replace(/\$\{?SERVICE\}?/g, service));
  }
  return stages;
}

const DOCKERFILE = join(ROOT, "Dockerfile");
const stagesFor = (svc: Svc) => parseDockerfile(readFileSync(DOCKERFILE, "utf8"), svc);
const final = (svc: Svc) => stagesFor(svc).at(-1)!;
const stage = (svc: Svc, name: string) => stagesFor(svc).find((s) => s.name === name)!;
const execJson = (line: string) => JSON.parse(line.replace(/^\S+\s+/, "")) as string[];

/** A stage's COPY instructions: sources (from the build context, or from another stage) and destination. */
function copies(st: Stage): { from?: string; src: string; dest: string }[] {
  return st.lines
    .filter((l) => /^COPY\s/i.test(l))
    .flatMap((l) => {
      const words = l.split(/\s+/).slice(1);
      const from = /^--from=(\S+)$/.exec(words.find((w) => w.startsWith("--from=")) ?? "")?.[1];
      const paths = words.filter((w) => !w.startsWith("--"));
      return paths.slice(0, -1).map((src) => ({ from, src, dest: paths.at(-1)! }));
    });
}

/** Copies `src` (file or directory) to `dest` inside `dir`, as COPY does (a trailing / on dest means "into"). */
function place(from: string, src: string, dir: string, dest: string) {
  const to = dest.endsWith("/") && !src.endsWith("/") ? join(dir, dest, src.split("/").at(-1)!) : join(dir, dest);
  mkdirSync(dirname(to), { recursive: true });
  cpSync(join(from, src), to, { recursive: true });
}

/**
 * The literal env values of a service's first Deployment as kustomize renders services/<svc>/k8s (its own
 * deployment.yaml over the body every service shares, deploy/components/service).
 */
function deploymentEnv(svc: Svc): { env: Record<string, string>; command?: string[]; args?: string[] } {
  const rendered = execFileSync(kustomizeBinary(), ["build", join(ROOT, "services", svc, "k8s")], { encoding: "utf8" });
  const doc = parseAllDocuments(rendered)
    .map((d) => d.toJS())
    .find((o) => o?.kind === "Deployment");
  const container = doc.spec.template.spec.containers[0];
  return {
    env: Object.fromEntries(
      container.env.filter((e: { value?: string }) => e.value !== undefined).map((e: { name: string; value: string }) => [e.name, e.value]),
    ),
    command: container.command,
    args: container.args,
  };
}

describe("images: the Dockerfile and the file sets it builds and runs", function () {
  this.timeout(240_000); // npm ci of the production dependencies, four builds, four services started

  it("one Dockerfile for every service (ARG SERVICE), no per-service copies", () => {
    expect(readFileSync(DOCKERFILE, "utf8")).to.match(/^ARG SERVICE$/m);
    const strays = SERVICES.filter((svc) => existsSync(join(ROOT, "services", svc, "Dockerfile")));
    expect(strays, "services/<svc>/Dockerfile").to.deep.equal([]);
  });

  for (const svc of SERVICES) {
    it(`${svc}: Node 22, production dependencies only, non-root, runs its compiled file with plain node`, () => {
      const stages = stagesFor(svc);
      expect(stages.length, "multi-stage").to.be.at.least(3);
      for (const s of stages) expect(s.from).to.match(/^node:22-[a-z]+-slim$|^gcr\.io\/distroless\/nodejs22|^(build|deps)$/);
      const deps = stages.find((s) => s.lines.some((l) => /npm ci .*--omit=dev/.test(l)));
      expect(deps, "a stage installs the production dependencies (npm ci --omit=dev)").to.not.equal(undefined);
      const last = final(svc);
      expect(last.from, "the runtime stage starts from a clean base").to.match(/^node:22/);
      expect(
        last.lines.some((l) => /^USER\s+(node|\d+)$/.test(l) && !/^USER\s+(root|0)$/.test(l)),
        "USER node",
      ).to.equal(true);
      const cs = copies(last);
      // A pod listens on its own address; a service started by hand defaults to 127.0.0.1 (kit's HOST default).
      for (const s of [last, stage(svc, "dev")]) expect(s.lines, `${s.name ?? "final"} stage sets HOST`).to.include("ENV HOST=0.0.0.0");
      expect(
        cs.filter((c) => c.src === "/app/node_modules").map((c) => c.from),
        "node_modules from the deps stage",
      ).to.deep.equal([deps!.name]);
      // From the build context only package.json ("type": "module"); everything else is the compiled file.
      expect(cs.filter((c) => !c.from).map((c) => c.src)).to.deep.equal(["package.json"]);
      const compiled = cs.filter((c) => c.from === "build");
      expect(compiled.map((c) => c.src)).to.deep.equal([`/app/dist/${svc}.js`]);
      const entry = execJson(last.lines.find((l) => /^ENTRYPOINT\s/.test(l))!);
      expect(entry).to.deep.equal(["node", ...SERVICE_NODE_FLAGS, compiled[0].dest.replace(/^\.\//, "")]);
      expect(
        last.lines.some((l) => /^CMD\s/.test(l)),
        "no CMD: the Deployments set no args",
      ).to.equal(false);
      for (const c of copies(stage(svc, "build")).filter((c) => !c.from)) expect(c.src).not.to.match(/test|\.env|secrets|\.pem|^\.\/?$|^services\/$/);
      // The production Deployment runs the image as built: no command, no args.
      expect(deploymentEnv(svc).command).to.equal(undefined);
      expect(deploymentEnv(svc).args).to.equal(undefined);
    });
  }

  describe("the build and runtime file sets", () => {
    let work: string;
    const running: ChildProcess[] = [];

    before(async () => {
      work = mkdtempSync(join(tmpdir(), "meshmart-image-"));
      const deps = join(work, "deps");
      mkdirSync(deps);
      for (const f of ["package.json", "package-lock.json"]) cpSync(join(ROOT, f), join(deps, f));
      // What the deps stage runs (offline when npm's cache has everything, as on a dev machine).
      await promisify(execFile)("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: deps });
      for (const svc of SERVICES) {
        // The build stage: its context files only, the full install (this checkout's node_modules: the same
        // lockfile's `npm ci`), then its RUN npm commands (the build), in its own directory.
        const build = join(work, `build-${svc}`);
        mkdirSync(build);
        symlinkSync(join(ROOT, "node_modules"), join(build, "node_modules"), "dir");
        const buildStage = stage(svc, "build");
        for (const { src, dest } of copies(buildStage).filter((c) => !c.from)) place(ROOT, src, build, dest);
        for (const run of buildStage.lines.filter((l) => /^RUN npm run /.test(l)))
          await promisify(execFile)("npm", run.split(/\s+/).slice(2), { cwd: build }).catch((err: Error & { stderr?: string }) => {
            throw new Error(`${svc}: ${run}: ${err.message}\n${err.stderr ?? ""}`);
          });
        // The runtime stage: what it copies from the context, from deps and from build.
        const dir = join(work, svc);
        mkdirSync(dir);
        for (const { from, src, dest } of copies(final(svc))) {
          if (from === "deps" && src === "/app/node_modules") symlinkSync(join(deps, "node_modules"), join(dir, "node_modules"), "dir");
          else if (from === "build") place(build, src.replace(/^\/app\//, ""), dir, dest);
          else if (!from) place(ROOT, src, dir, dest);
          else throw new Error(`${svc}: COPY --from=${from} ${src} is not reproduced by this test`);
        }
      }
    });

    after(async () => {
      const alive = running.filter((c) => c.exitCode === null && c.signalCode === null);
      for (const c of alive) c.kill("SIGKILL");
      await Promise.all(alive.map((c) => once(c, "exit")));
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it("installs no dev dependency (npm ci --omit=dev): no tsx, no esbuild, no pino-pretty", () => {
      const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
      const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
      expect(devOnly.length, "the lockfile marks dev packages").to.be.greaterThan(0);
      const installed = devOnly.filter(([path]) => existsSync(join(work, "deps", path)));
      expect(installed.map(([p]) => p)).to.deep.equal([]);
      for (const pkg of ["tsx", "esbuild", "pino-pretty", "typescript"])
        expect(existsSync(join(work, "deps", "node_modules", pkg)), `${pkg} in the runtime dependencies`).to.equal(false);
    });

    it("holds in each runtime image only node_modules, package.json and the compiled service", () => {
      for (const svc of SERVICES) {
        expect(readdirSync(join(work, svc)).sort(), svc).to.deep.equal(["main.js", "node_modules", "package.json"]);
        const js = readFileSync(join(work, svc, "main.js"), "utf8");
        expect(js, `${svc}: our modules are bundled in`).not.to.match(/from ["']#(kit|gen)/);
      }
    });

    it("builds the dev stage skaffold's dev overlay runs: tsx watch on main.ts, which imports the service's sources", () => {
      const dev = readFileSync(join(ROOT, "deploy", "overlays", "dev", "kustomization.yaml"), "utf8");
      const command = /path: \/spec\/template\/spec\/containers\/0\/command\s+value: \[(.*)\]/.exec(dev)?.[1].split(/,\s*/);
      for (const svc of SERVICES) {
        const devStage = stage(svc, "dev");
        expect(devStage.from, "dev builds on the build stage (full install, sources)").to.equal("build");
        expect(command, "the overlay's command is the dev stage's ENTRYPOINT").to.deep.equal(execJson(devStage.lines.find((l) => /^ENTRYPOINT\s/.test(l))!));
        expect(existsSync(join(work, `build-${svc}`, command![1])), command![1]).to.equal(true);
        const main = devStage.lines.find((l) => /main\.ts/.test(l) && /^RUN\s/.test(l))!;
        expect(main, "the dev stage writes main.ts").to.include(`services/${svc}/src/main.ts`);
        expect(existsSync(join(work, `build-${svc}`, "services", svc, "src", "main.ts")), "the sources are in the build stage").to.equal(true);
      }
    });

    it("starts identity, catalog, orders and payment from their file sets with their Deployments' env, and stops them cleanly", async () => {
      // identity signs with a key made by tools/setup/dev-secrets.mjs, as the cluster's identity-jwt Secret is.
      await promisify(execFile)(process.execPath, [join(ROOT, "tools", "setup", "dev-secrets.mjs"), join(work, "secrets-root")]);
      const ports = Object.fromEntries(
        await Promise.all(SERVICES.map(async (s) => [s, { grpc: await freePort(), admin: await freePort() }] as const)),
      ) as Record<Svc, { grpc: number; admin: number }>;
      const overrides: Record<Svc, Record<string, string>> = {
        identity: { JWT_PRIVATE_KEY_FILE: join(work, "secrets-root", "deploy", "base", "secrets", "identity-jwt.pem") },
        catalog: {},
        orders: {
          ...ordersPeerEnv({
            catalog: `127.0.0.1:${ports.catalog.grpc}`,
            payment: `127.0.0.1:${ports.payment.grpc}`,
            identityAdmin: `http://127.0.0.1:${ports.identity.admin}`,
          }),
        },
        // Pretty logs need pino-pretty, a dev dependency: the image logs JSON instead and says so (not a crash).
        payment: { LOG_FORMAT: "pretty" },
      };
      const outputs: Record<string, string> = {};
      const exits: Record<string, Promise<number | null>> = {};
      const start = (svc: Svc) => {
        const { env } = deploymentEnv(svc);
        const entry = execJson(final(svc).lines.find((l) => /^ENTRYPOINT\s/.test(l))!);
        expect(entry[0]).to.equal("node");
        // Plain node: no --import, no loader; the runtime file set has no tsx to fall back on anyway.
        const child = spawn(process.execPath, entry.slice(1), {
          cwd: join(work, svc),
          env: {
            PATH: process.env.PATH,
            NODE_ENV: "production",
            ...env,
            // Cluster-only values replaced by local ones: ports, the database, peers; no drain delay in a test.
            PORT: String(ports[svc].grpc),
            ADMIN_PORT: String(ports[svc].admin),
            MONGODB_URI: testMongoUri(),
            DB_NAME: uniqueDbName(`image_${svc}`),
            DRAIN_DELAY_MS: "0",
            LOG_LEVEL: "warn",
            ...overrides[svc],
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
        outputs[svc] = "";
        child.stdout?.on("data", (d) => (outputs[svc] += d));
        child.stderr?.on("data", (d) => (outputs[svc] += d));
        running.push(child);
        exits[svc] = once(child, "exit").then(([code]) => code as number | null);
        return child;
      };
      const children = SERVICES.map((svc) => [svc, start(svc)] as const);
      for (const [svc] of children) {
        // A service that exits (a file missing from the image, a bad env value) fails the test at once.
        const exited = exits[svc].then((code) => {
          throw new Error(`exited with ${code} before serving`);
        });
        exited.catch(() => {}); // it exits later anyway, on the SIGTERM below
        await Promise.race([waitForHealth(`127.0.0.1:${ports[svc].grpc}`, { timeoutMs: 60_000 }), exited]).catch((err: Error) => {
          throw new Error(`${svc}: ${err.message}\n${outputs[svc]}`);
        });
      }
      const notice = outputs.payment.split("\n").find((l) => l.includes("needs pino-pretty"));
      expect(JSON.parse(notice ?? "{}"), outputs.payment).to.include({ service: "payment", level: 40 });
      // identity really signs with the generated key: its JWKS serves the Ed25519 public key.
      const jwks = (await (await fetch(`http://127.0.0.1:${ports.identity.admin}/.well-known/jwks.json`)).json()) as { keys: { crv?: string }[] };
      expect(jwks.keys.map((k) => k.crv)).to.deep.equal(["Ed25519"]);
      for (const [svc, child] of children) {
        child.kill("SIGTERM");
        expect(await exits[svc], `${svc} exit code\n${outputs[svc]}`).to.equal(0);
      }
    });
  });
});
