// Builds and starts orders from its configuration (used by main.ts, the tests and the local stack).
import type { JWTVerifyGetKey } from "jose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import {
  authenticate,
  ConfigError,
  closeClients,
  commonDefaults,
  databaseReady,
  dial,
  type env,
  type Logger,
  lockTable,
  logger,
  oneOf,
  openDatabase,
  type RunningServer,
  remoteKeys,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { orderService } from "./order-service.js";
import { orderStore, type SagaStep } from "./orders.js";
import { recoveryLoop } from "./recovery.js";
import { orderSaga } from "./saga.js";

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
  /** Test hook for the crash test: the process kills itself right after recording this saga step. */
  CRASH_AFTER_STEP: oneOf(["", "RESERVING", "RESERVED", "CHARGING", "CHARGED", "COMMITTING"], ""),
};

export type OrdersConfig = ReturnType<typeof env<typeof ordersDefaults>>;

export function ordersConfig(source: Record<string, string | undefined> = process.env): OrdersConfig {
  const config = serviceEnv(ordersDefaults, source);
  if (!/^https?:\/\/[^/]/.test(config.IDENTITY_JWKS_URL) || !URL.canParse(config.IDENTITY_JWKS_URL))
    throw new ConfigError("IDENTITY_JWKS_URL", `must be an http(s) URL, got "${config.IDENTITY_JWKS_URL}"`);
  return config;
}

/** orders ready to serve: handlers, saga clients, recovery loop and database, not yet on a port. */
export async function buildOrders(config: OrdersConfig, opts: { log?: Logger; keys?: JWTVerifyGetKey } = {}): Promise<ServicePart> {
  const log = opts.log ?? logger("orders");
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME);
  const orders = orderStore(db);
  const locks = lockTable(db);
  const crashAfter = config.CRASH_AFTER_STEP as SagaStep | "";
  if (crashAfter) log.warn({ step: crashAfter }, "TEST HOOK: this process will kill itself after recording that saga step");
  const saga = orderSaga({
    orders,
    catalog: dial(CatalogService, config.CATALOG_ADDR),
    payment: dial(PaymentService, config.PAYMENT_ADDR),
    log,
    afterStep: crashAfter ? (step) => void (step === crashAfter && process.kill(process.pid, "SIGKILL")) : undefined,
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
      closeClients(); // the channels to catalog and payment
      await db.close();
    },
  };
}

export async function startOrders(config: OrdersConfig, opts: { signals?: boolean; log?: Logger; keys?: JWTVerifyGetKey } = {}): Promise<RunningServer> {
  const log = opts.log ?? logger("orders");
  return servePart(await buildOrders(config, { log, keys: opts.keys }), config, { signals: opts.signals, log });
}
