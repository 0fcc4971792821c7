// Runs meshmart on one machine, no cluster: the embedded database and every service (catalog as v1 and v2),
// each as its own process on its DESIGN.md port, with readable logs. Waits for health, prints endpoints and
// grpcurl recipes. Ctrl-C stops everything cleanly.
//
//   npm start                    default ports, data kept in .cache/devdb/data
//   npm start -- --mode monolith all services in this one process, on one port (50050; admin 9090)
//   npm start -- --fresh         start from an empty database
//   npm start -- --ports auto    free ports everywhere (tests); prints "meshmart ready {json}"
//   MONGODB_URI=mongodb://...    use that server instead of the embedded one
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { RunningServer } from "../services/kit/src/index.js";
import { type DevDb, freePort, ROOT, startDevDb } from "./devdb.js";
import { waitForHealth } from "./health-wait.js";
import { startMonolith } from "./monolith.js";

const { values: args } = parseArgs({
  options: {
    fresh: { type: "boolean", default: false },
    ports: { type: "string", default: "default" },
    mode: { type: "string", default: "services" },
    "data-dir": { type: "string", default: join(ROOT, ".cache", "devdb", "data") },
  },
});

interface Unit {
  name: string;
  entry: string;
  port: number;
  adminPort: number;
  env: Record<string, string>;
}

const auto = args.ports === "auto";
const pick = async (fixed: number) => (auto ? freePort() : fixed);

const children: { unit: Unit; child: ChildProcess }[] = [];
let db: DevDb | undefined;
let monolith: RunningServer | undefined;
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  console.error("\nstopping meshmart...");
  await Promise.all(
    children.reverse().map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    }),
  );
  await monolith?.shutdown();
  await db?.stop();
  process.exit(code);
}
process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));

function launch(unit: Unit) {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, unit.entry)], {
    cwd: ROOT,
    env: {
      ...process.env,
      LOG_FORMAT: process.env.LOG_FORMAT ?? "pretty",
      PORT: String(unit.port),
      ADMIN_PORT: String(unit.adminPort),
      HOST: "127.0.0.1",
      ...unit.env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  child.once("exit", (code, signal) => {
    if (!stopping) {
      console.error(`${unit.name} exited (${signal ?? code}); stopping the rest`);
      void stopAll(1);
    }
  });
  children.push({ unit, child });
}

async function main() {
  let mongoUri = process.env.MONGODB_URI;
  if (!mongoUri) {
    if (args.fresh) rmSync(args["data-dir"], { recursive: true, force: true });
    const port = await pick(27017);
    db = await startDevDb({ dir: args["data-dir"], port }).catch((err) => {
      throw new Error(`${err.message}\n(is something else on port ${port}? set MONGODB_URI to use it instead)`);
    });
    mongoUri = db.uri;
  }

  if (args.mode === "monolith") return runMonolith(mongoUri);
  if (args.mode !== "services") throw new Error(`--mode must be services or monolith, got "${args.mode}"`);

  const identity: Unit = { name: "identity", entry: "services/identity/src/main.ts", port: await pick(50051), adminPort: await pick(9091), env: {} };
  const catalogV1: Unit = {
    name: "catalog-v1",
    entry: "services/catalog/src/main.ts",
    port: await pick(50052),
    adminPort: await pick(9092),
    env: { VERSION: "v1" },
  };
  const catalogV2: Unit = {
    name: "catalog-v2",
    entry: "services/catalog/src/main.ts",
    port: await pick(50055),
    adminPort: await pick(9095),
    env: { VERSION: "v2" },
  };
  const payment: Unit = { name: "payment", entry: "services/payment/src/main.ts", port: await pick(50054), adminPort: await pick(9094), env: {} };
  const orders: Unit = {
    name: "orders",
    entry: "services/orders/src/main.ts",
    port: await pick(50053),
    adminPort: await pick(9093),
    env: {
      CATALOG_ADDR: `127.0.0.1:${catalogV1.port}`,
      PAYMENT_ADDR: `127.0.0.1:${payment.port}`,
      IDENTITY_JWKS_URL: `http://127.0.0.1:${identity.adminPort}/.well-known/jwks.json`,
    },
  };
  for (const u of [identity, catalogV1, catalogV2, payment, orders]) u.env.MONGODB_URI = mongoUri;

  // catalog v1 seeds first; v2 shares its database. orders needs identity's JWKS and both peers.
  for (const wave of [
    [identity, catalogV1, payment],
    [catalogV2, orders],
  ]) {
    for (const u of wave) launch(u);
    await Promise.all(wave.map((u) => waitForHealth(`127.0.0.1:${u.port}`, { timeoutMs: 60_000 })));
  }

  const units = [identity, catalogV1, catalogV2, orders, payment];
  const ready = Object.fromEntries(units.map((u) => [u.name, { grpc: `127.0.0.1:${u.port}`, admin: `http://127.0.0.1:${u.adminPort}` }]));
  if (auto) console.log(`meshmart ready ${JSON.stringify({ ...ready, mongodb: mongoUri })}`);
  else printWelcome(units, mongoUri);
}

async function runMonolith(mongoUri: string) {
  const port = await pick(50050);
  const adminPort = await pick(9090);
  monolith = await startMonolith({ mongoUri, host: "127.0.0.1", port, adminPort });
  const grpc = `127.0.0.1:${port}`;
  if (auto) return console.log(`meshmart ready ${JSON.stringify({ monolith: { grpc, admin: `http://127.0.0.1:${adminPort}` }, mongodb: mongoUri })}`);
  console.log(`
meshmart is up as a monolith (database ${mongoUri}): identity, catalog (v1), orders and payment in this
process, on one port; orders calls catalog and payment in memory.
  monolith    grpc ${grpc}   admin http://127.0.0.1:${adminPort} (/metrics, /readyz, /faults, /.well-known/jwks.json)

  .cache/bin/grpcurl -plaintext ${grpc} list
  npm run flow -- --identity ${grpc} --catalog ${grpc} --orders ${grpc}

Ctrl-C stops everything.`);
}

function printWelcome(units: Unit[], mongoUri: string) {
  const line = (u: Unit) => `  ${u.name.padEnd(11)} grpc 127.0.0.1:${u.port}   admin http://127.0.0.1:${u.adminPort} (/metrics, /readyz, /faults)`;
  const [identity, , , orders] = units;
  console.log(`
meshmart is up (database ${mongoUri})
${units.map(line).join("\n")}

Try it (grpcurl is in .cache/bin; every service has reflection and health):
  G=.cache/bin/grpcurl
  $G -plaintext 127.0.0.1:${identity.port} list
  $G -plaintext -d '{"email":"ada@example.com","password":"correct-horse-1","display_name":"Ada"}' 127.0.0.1:${identity.port} meshmart.identity.v1.IdentityService/Register
  TOKEN=$($G -plaintext -d '{"email":"ada@example.com","password":"correct-horse-1"}' 127.0.0.1:${identity.port} meshmart.identity.v1.IdentityService/Login | sed -n 's/.*"accessToken": "\\(.*\\)".*/\\1/p')
  $G -plaintext -d '{"page_size":3}' 127.0.0.1:50052 meshmart.catalog.v1.CatalogService/ListProducts
  $G -plaintext -v -d '{"sku":"mug-blue"}' 127.0.0.1:50055 meshmart.catalog.v1.CatalogService/GetProduct   # x-served-by: catalog-v2
  $G -plaintext -H "authorization: Bearer $TOKEN" -d '{"idempotency_key":"first","items":[{"sku":"mug-blue","quantity":1}],"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}' 127.0.0.1:${orders.port} meshmart.orders.v1.OrderService/PlaceOrder
  npm run flow        # the whole register → login → order walk in one command

Ctrl-C stops everything.`);
}

main().catch((err) => {
  console.error(`meshmart failed to start: ${err instanceof Error ? err.message : err}`);
  void stopAll(1);
});
