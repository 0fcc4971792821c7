// The service images, checked without Docker: each Dockerfile's rules (Node 22, production dependencies only,
// non-root, no `COPY . .`), and its runtime file set — installed with the same `npm ci --omit=dev`, holding
// only what the Dockerfile copies — actually starts each service with the env its Deployment sets and serves
// gRPC health, the call the kubelet's grpc probe makes. What only a real build shows (the base image, the
// layer cache, file ownership, a read-only root filesystem) is not covered here.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { parseAllDocuments } from "yaml";
import { freePort, ROOT } from "../tools/devdb.js";
import { waitForHealth } from "../tools/health-wait.js";
import { testMongoUri, uniqueDbName } from "./support/db.js";

const SERVICES = ["identity", "catalog", "orders", "payment"] as const;
type Svc = (typeof SERVICES)[number];

interface Dockerfile {
  stages: { from: string; name?: string; lines: string[] }[];
}

/** Stages and their instructions, with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Dockerfile {
  const lines = text
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const stages: Dockerfile["stages"] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ from: from[1], name: from[2], lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return { stages };
}

const dockerfile = (svc: Svc) => parseDockerfile(readFileSync(join(ROOT, "services", svc, "Dockerfile"), "utf8"));
const final = (svc: Svc) => dockerfile(svc).stages.at(-1)!;
const execJson = (line: string) => JSON.parse(line.replace(/^\S+\s+/, "")) as string[];

/** The sources the final stage copies from the build context (not from another stage). */
function contextCopies(svc: Svc): { src: string; dest: string }[] {
  return final(svc)
    .lines.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l))
    .map((l) => l.split(/\s+/).filter((w) => !w.startsWith("--")))
    .flatMap((words) => words.slice(1, -1).map((src) => ({ src, dest: words.at(-1)! })));
}

/** The literal env values of a service's Deployment (services/<svc>/k8s/deployment.yaml, first Deployment). */
function deploymentEnv(svc: Svc): Record<string, string> {
  const doc = parseAllDocuments(readFileSync(join(ROOT, "services", svc, "k8s", "deployment.yaml"), "utf8"))[0].toJS();
  const container = doc.spec.template.spec.containers[0];
  return {
    ...Object.fromEntries(
      container.env.filter((e: { value?: string }) => e.value !== undefined).map((e: { name: string; value: string }) => [e.name, e.value]),
    ),
    ARGS: container.args.join(" "),
  };
}

describe("images: Dockerfiles and the file set they run", function () {
  this.timeout(240_000); // npm ci of the production dependencies, then four services compiled by tsx

  for (const svc of SERVICES) {
    it(`${svc}: Node 22, production dependencies only, non-root, copies only what it runs`, () => {
      const { stages } = dockerfile(svc);
      expect(stages.length, "multi-stage").to.be.at.least(2);
      for (const s of stages) expect(s.from).to.match(/^node:22-[a-z]+-slim$|^gcr\.io\/distroless\/nodejs22/);
      const install = stages
        .slice(0, -1)
        .flatMap((s) => s.lines)
        .find((l) => /npm ci/.test(l));
      expect(install, "a build stage runs npm ci").to.match(/npm ci .*--omit=dev/);
      const last = final(svc);
      expect(
        last.lines.some((l) => /^USER\s+(node|\d+)$/.test(l) && !/^USER\s+(root|0)$/.test(l)),
        "USER node",
      ).to.equal(true);
      expect(
        last.lines.some((l) => /^COPY\s+--from=\S+\s+\/app\/node_modules\s/.test(l)),
        "node_modules from the build stage",
      ).to.equal(true);
      expect(last.lines, "listens on the pod's address (the service alone defaults to 127.0.0.1)").to.include("ENV HOST=0.0.0.0");
      const copies = contextCopies(svc).map((c) => c.src);
      expect(copies).not.to.include.oneOf([".", "./", "services/", "node_modules", "deploy/"]);
      for (const c of copies) expect(c).not.to.match(/test|\.env|secrets|\.pem/);
      // The Deployment's args are the image's CMD, so the dev overlay's `tsx watch` command keeps the entry point.
      const cmd = last.lines.find((l) => /^CMD\s/.test(l));
      expect(execJson(cmd!)).to.deep.equal(deploymentEnv(svc).ARGS.split(" "));
    });
  }

  describe("the runtime file set starts each service", () => {
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
        const dir = join(work, svc);
        mkdirSync(dir);
        symlinkSync(join(deps, "node_modules"), join(dir, "node_modules"), "dir");
        for (const { src, dest } of contextCopies(svc)) {
          const to = dest.endsWith("/") && !src.endsWith("/") ? join(dir, dest, src.split("/").at(-1)!) : join(dir, dest);
          mkdirSync(dirname(to), { recursive: true });
          cpSync(join(ROOT, src), to, { recursive: true });
        }
      }
    });

    after(async () => {
      const alive = running.filter((c) => c.exitCode === null && c.signalCode === null);
      for (const c of alive) c.kill("SIGKILL");
      await Promise.all(alive.map((c) => once(c, "exit")));
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it("installs no dev dependency (npm ci --omit=dev)", () => {
      const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
      const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
      expect(devOnly.length, "the lockfile marks dev packages").to.be.greaterThan(0);
      const installed = devOnly.filter(([path]) => existsSync(join(work, "deps", path)));
      expect(installed.map(([p]) => p)).to.deep.equal([]);
      expect(existsSync(join(work, "deps", "node_modules", "tsx")), "tsx runs the services: a runtime dependency").to.equal(true);
    });

    it("holds the runner the dev overlay swaps in (tsx watch, for skaffold's file sync)", () => {
      const dev = readFileSync(join(ROOT, "deploy", "overlays", "dev", "kustomization.yaml"), "utf8");
      const scripts = [...dev.matchAll(/node_modules\/[\w./-]+/g)].map((m) => m[0]);
      expect(scripts).to.deep.equal(["node_modules/tsx/dist/cli.mjs"]);
      for (const script of scripts) expect(existsSync(join(work, "deps", script)), script).to.equal(true);
    });

    it("starts identity, catalog, orders and payment from their file sets with their Deployments' env, and stops them cleanly", async () => {
      // identity signs with a key made by tools/dev-secrets.mjs, as the cluster's identity-jwt Secret is.
      await promisify(execFile)(process.execPath, [join(ROOT, "tools", "dev-secrets.mjs"), join(work, "secrets-root")]);
      const ports = Object.fromEntries(
        await Promise.all(SERVICES.map(async (s) => [s, { grpc: await freePort(), admin: await freePort() }] as const)),
      ) as Record<Svc, { grpc: number; admin: number }>;
      const overrides: Record<Svc, Record<string, string>> = {
        identity: { JWT_PRIVATE_KEY_FILE: join(work, "secrets-root", "deploy", "base", "secrets", "identity-jwt.pem") },
        catalog: {},
        orders: {
          CATALOG_ADDR: `127.0.0.1:${ports.catalog.grpc}`,
          PAYMENT_ADDR: `127.0.0.1:${ports.payment.grpc}`,
          IDENTITY_JWKS_URL: `http://127.0.0.1:${ports.identity.admin}/.well-known/jwks.json`,
        },
        payment: {},
      };
      const outputs: Record<string, string> = {};
      const exits: Record<string, Promise<number | null>> = {};
      const start = (svc: Svc) => {
        const { ARGS, ...env } = deploymentEnv(svc);
        const entry = execJson(final(svc).lines.find((l) => /^ENTRYPOINT\s/.test(l))!);
        expect(entry[0]).to.equal("node");
        const child = spawn(process.execPath, [...entry.slice(1), ...ARGS.split(" ")], {
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
