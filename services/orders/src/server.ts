// Builds and starts orders from its configuration (used by main.ts, the tests and the local stack).
import type { Transport } from "@connectrpc/connect";
import type { JWTVerifyGetKey } from "jose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import {
  authenticate,
  ConfigError,
  clientPool,
  commonDefaults,
  databaseReady,
  type env,
  type Logger,
  lockTable,
  logger,
  openDatabase,
  type RunningServer,
  remoteKeys,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { orderService } from "./order-service.js";
import { orderStore } from "./orders.js";
import { recoveryLoop } from "./recovery.js";
import { orderSaga, type SagaDeps } from "./saga.js";

export interface BuildOptions {
  log?: Logger;
  keys?: JWTVerifyGetKey;
  /** Test hook (the crash test's entry point sets it; production never does): runs at each saga point. */
  afterStep?: SagaDeps["afterStep"];
  /** How to reach catalog and payment instead of CATALOG_ADDR/PAYMENT_ADDR: the monolith's in-memory transport. */
  peers?: Transport;
}

export const ordersDefaults = {
  ...commonDefaults,
  PORT: 50053,
  ADMIN_PORT: 9093,
  DB_NAME: "orders",
  CATALOG_ADDR: "127.0.0.1:50052",
  PAYMENT_ADDR: "127.0.0.1:50054",
  IDENTITY_JWKS_URL: "http://127.0.0.1:9091/.well-known/jwks.json",
  JWT_ISSUER: "meshmart-identity",
  JWT_AUDIENCE: "meshmart",
  RECOVERY_INTERVAL_MS: 5000,
  RECOVERY_AFTER_MS: 30_000,
};

export type OrdersConfig = ReturnType<typeof env<typeof ordersDefaults>>;

export function ordersConfig(source: Record<string, string | undefined> = process.env): OrdersConfig {
  const config = serviceEnv(ordersDefaults, source);
  if (!/^https?:\/\/[^/]/.test(config.IDENTITY_JWKS_URL) || !URL.canParse(config.IDENTITY_JWKS_URL))
    throw new ConfigError("IDENTITY_JWKS_URL", `must be an http(s) URL, got "${config.IDENTITY_JWKS_URL}"`);
  return config;
}

/** orders ready to serve: handlers, saga clients, recovery loop and database, not yet on a port. */
export async function buildOrders(config: OrdersConfig, opts: BuildOptions = {}): Promise<ServicePart> {
  const log = opts.log ?? logger("orders");
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME, "MONGODB_URI", { log: log });
  const orders = orderStore(db);
  const locks = lockTable(db);
  const clients = clientPool({ transport: opts.peers });
  const saga = orderSaga({
    orders,
    catalog: clients.dial(CatalogService, config.CATALOG_ADDR),
    payment: clients.dial(PaymentService, config.PAYMENT_ADDR),
    log,
    afterStep: opts.afterStep,
  });
  const recovery = recoveryLoop({ orders, saga, locks, log, intervalMs: config.RECOVERY_INTERVAL_MS, afterMs: config.RECOVERY_AFTER_MS });
  const auth = authenticate({ keys: opts.keys ?? remoteKeys(config.IDENTITY_JWKS_URL), issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
  return {
    name: "orders",
    entries: [service(OrderService, orderService({ orders, saga, locks }), { interceptors: [auth] })],
    // Readiness is the database only: orders still serves GetOrder/ListOrders while a peer is down, and
    // PlaceOrder then fails cleanly (DEPENDENCY_UNAVAILABLE) instead of the whole pod leaving the mesh.
    readiness: [databaseReady(db)],
    start: () => recovery.start(),
    close: async () => {
      await recovery.stop();
      clients.close(); // the channels to catalog and payment
      await db.close();
    },
  };
}

export async function startOrders(config: OrdersConfig, opts: BuildOptions & { signals?: boolean } = {}): Promise<RunningServer> {
  const log = opts.log ?? logger("orders");
  return servePart(await buildOrders(config, { ...opts, log }), config, { signals: opts.signals, log });
}
