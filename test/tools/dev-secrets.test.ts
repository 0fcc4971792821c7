// tools/setup/dev-secrets.mjs writes the Secrets' sources once, randomly, into a gitignored directory; and
// deploy/mongodb/init-users.js turns them into one MongoDB user per service that can touch only its database.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createContext, runInContext } from "node:vm";
import { expect } from "chai";
import { ROOT } from "../../tools/root.js";

const run = promisify(execFile);
const SERVICES = ["identity", "catalog", "orders", "payment"];

function readEnv(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

describe("dev secrets and MongoDB users", () => {
  let root: string;
  let dir: string;
  const generate = () => run(process.execPath, [join(ROOT, "tools", "setup", "dev-secrets.mjs"), root]);
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "meshmart-secrets-"));
    dir = join(root, "deploy", "base", "secrets");
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("writes every file deploy/base's secretGenerator reads, owner-only, with a per-service user, password and URI", async () => {
    await generate();
    const generator = readFileSync(join(ROOT, "deploy", "base", "kustomization.yaml"), "utf8");
    const wanted = [...generator.matchAll(/secrets\/([\w.-]+)/g)].map((m) => m[1]).sort();
    expect(readdirSync(dir).sort()).to.deep.equal(wanted);
    for (const f of wanted) expect(statSync(join(dir, f)).mode & 0o077, `${f} is owner-only`).to.equal(0);
    const passwords = new Set<string>();
    for (const svc of SERVICES) {
      const env = readEnv(join(dir, `${svc}-mongodb.env`));
      expect(env.username).to.equal(svc);
      expect(env.password).to.match(/^[0-9a-f]{48}$/);
      expect(env.uri).to.equal(`mongodb://${svc}:${env.password}@mongodb:27017/${svc}?authSource=${svc}`);
      passwords.add(env.password);
    }
    passwords.add(readEnv(join(dir, "mongodb-root.env")).password);
    expect(passwords.size, "every password is different").to.equal(5);
    expect(readFileSync(join(dir, "identity-jwt.pem"), "utf8")).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it("never rewrites a file that exists (MongoDB creates its users once), and fills in one that is missing", async () => {
    await generate();
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), "utf8")]));
    rmSync(join(dir, "orders-mongodb.env"));
    await generate();
    for (const [f, text] of Object.entries(before)) {
      if (f === "orders-mongodb.env") expect(readFileSync(join(dir, f), "utf8")).not.to.equal(text);
      else expect(readFileSync(join(dir, f), "utf8"), f).to.equal(text);
    }
  });

  it("is gitignored, so a generated secret cannot be committed", async () => {
    const { stdout } = await run("git", ["check-ignore", "deploy/base/secrets/orders-mongodb.env", "deploy/base/secrets/identity-jwt.pem"], { cwd: ROOT });
    expect(stdout.trim().split("\n")).to.have.length(2);
  });

  it("init-users.js gives each service readWrite on its own database only, with its Secret's password (mongosh stand-in)", async () => {
    await generate();
    const env: Record<string, string> = {};
    for (const svc of SERVICES) env[`${svc.toUpperCase()}_PASSWORD`] = readEnv(join(dir, `${svc}-mongodb.env`)).password;
    // A stand-in for mongosh's `db` (the real one runs only in the mongo image): records the users created.
    const created: { db: string; user: { user: string; pwd: string; roles: unknown[] } }[] = [];
    const db = { getSiblingDB: (name: string) => ({ createUser: (user: (typeof created)[number]["user"]) => created.push({ db: name, user }) }) };
    const script = readFileSync(join(ROOT, "deploy", "mongodb", "init-users.js"), "utf8");
    runInContext(script, createContext({ db, process: { env }, print: () => {} }));
    expect(created).to.deep.equal(
      SERVICES.map((svc) => ({ db: svc, user: { user: svc, pwd: env[`${svc.toUpperCase()}_PASSWORD`], roles: [{ role: "readWrite", db: svc }] } })),
    );

    delete env.PAYMENT_PASSWORD;
    expect(() => runInContext(script, createContext({ db, process: { env }, print: () => {} }))).to.throw(/PAYMENT_PASSWORD is empty/);
  });
});
