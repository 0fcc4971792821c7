// Writes the files deploy/base's secretGenerator reads, with random values, into <root>/deploy/base/secrets/
// (gitignored), and prints nothing when they all exist. Only MISSING files are written: MongoDB creates its
// users once, on its first start, so a password must not change under a running database (deploy/README.md
// says how to rotate one).
//   node tools/setup/dev-secrets.mjs [root]     root defaults to this repository; skaffold runs it before every render
// Plain JavaScript with no dependencies: skaffold may run it before `npm ci`, on Linux, macOS or Windows.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
const dir = join(root, "deploy", "base", "secrets");
mkdirSync(dir, { recursive: true, mode: 0o700 });

/** 48 hex characters: 192 random bits, safe in a URI without escaping. */
const password = () => randomBytes(24).toString("hex");
const services = ["identity", "catalog", "orders", "payment"];

const files = {
  "mongodb-root.env": () => `username=root\npassword=${password()}\n`,
  ...Object.fromEntries(
    services.map((svc) => [
      `${svc}-mongodb.env`,
      () => {
        const pw = password();
        // The user authenticates against its own database (deploy/mongodb/init-users.js creates it there).
        return `username=${svc}\npassword=${pw}\nuri=mongodb://${svc}:${pw}@mongodb:27017/${svc}?authSource=${svc}\n`;
      },
    ]),
  ),
  "identity-jwt.pem": () => generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }),
};

for (const [name, make] of Object.entries(files)) {
  const path = join(dir, name);
  if (existsSync(path)) continue;
  writeFileSync(path, make(), { mode: 0o600, flag: "wx" });
  console.error(`dev-secrets: wrote ${path}`);
}
