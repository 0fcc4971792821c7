// The four services in this process, each on its own real gRPC port and its own test database, wired as
// the local stack wires them (orders → catalog and payment over gRPC, orders verifying identity's JWKS).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeClients, type Logger, type RunningServer } from "#kit";
import { catalogConfig, startCatalog } from "../../services/catalog/src/server.js";
import { identityConfig, startIdentity } from "../../services/identity/src/server.js";
import { ordersPeerEnv } from "../../services/orders/src/peers.js";
import { ordersConfig, startOrders } from "../../services/orders/src/server.js";
import { paymentConfig, startPayment } from "../../services/payment/src/server.js";
import { dropDatabase, testMongoUri, uniqueDbName } from "./db.js";

export interface InProcessStack {
  identity: RunningServer;
  catalog: RunningServer;
  payment: RunningServer;
  orders: RunningServer;
  targets: { identity: string; catalog: string; payment: string; orders: string };
  /** identity's JWT_KEY_DIR (holds its signing key). */
  keyDir: string;
  stop(): Promise<void>;
}

export interface InProcessStackOptions {
  engine?: "grpc-js" | "connect-node";
  /** Extra env for every service (e.g. MAX_RECEIVE_BYTES) and per service. */
  env?: Record<string, string>;
  identityEnv?: Record<string, string>;
  /** Loggers per service (tests capture log lines with them). */
  logs?: Partial<Record<"identity" | "catalog" | "payment" | "orders", Logger>>;
}

export async function startInProcessStack(opts: InProcessStackOptions = {}): Promise<InProcessStack> {
  const names = {
    identity: uniqueDbName("s_identity"),
    catalog: uniqueDbName("s_catalog"),
    payment: uniqueDbName("s_payment"),
    orders: uniqueDbName("s_orders"),
  };
  const keyDir = await mkdtemp(join(tmpdir(), "meshmart-stack-keys-"));
  const base = { MONGODB_URI: testMongoUri(), PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", ENGINE: opts.engine ?? "grpc-js", ...opts.env };
  const logs = opts.logs ?? {};
  const started: RunningServer[] = [];
  try {
    const identity = await startIdentity(identityConfig({ ...base, DB_NAME: names.identity, JWT_KEY_DIR: keyDir, ...opts.identityEnv }), {
      log: logs.identity,
    });
    started.push(identity);
    const catalog = await startCatalog(catalogConfig({ ...base, DB_NAME: names.catalog }), { log: logs.catalog });
    started.push(catalog);
    const payment = await startPayment(paymentConfig({ ...base, DB_NAME: names.payment }), { log: logs.payment });
    started.push(payment);
    const orders = await startOrders(
      ordersConfig({
        ...base,
        DB_NAME: names.orders,
        ...ordersPeerEnv({
          catalog: `127.0.0.1:${catalog.port}`,
          payment: `127.0.0.1:${payment.port}`,
          identityAdmin: `http://127.0.0.1:${identity.adminPort}`,
        }),
      }),
      { log: logs.orders },
    );
    started.push(orders);
    const at = (s: RunningServer) => `127.0.0.1:${s.port}`;
    return {
      identity,
      catalog,
      payment,
      orders,
      targets: { identity: at(identity), catalog: at(catalog), payment: at(payment), orders: at(orders) },
      keyDir,
      async stop() {
        for (const s of started.reverse()) await s.shutdown();
        closeClients();
        await Promise.all(Object.values(names).map(dropDatabase));
        await rm(keyDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const s of started.reverse()) await s.shutdown();
    await rm(keyDir, { recursive: true, force: true });
    throw err;
  }
}
