// Builds and starts payment from its configuration (used by main.ts, the tests and the local stack).
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import {
  commonDefaults,
  databaseReady,
  type env,
  type Logger,
  lockTable,
  logger,
  openDatabase,
  type RunningServer,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { paymentService } from "./payment-service.js";
import { paymentStore } from "./payments.js";
import { reconcileLoop } from "./reconcile.js";

export const paymentDefaults = {
  ...commonDefaults,
  PORT: 50054,
  ADMIN_PORT: 9094,
  DB_NAME: "payment",
  /** How often the ledger is reconciled with the payments (entries an interrupted call left out). */
  RECONCILE_INTERVAL_MS: 30_000,
  /** Only payments older than this: longer than any Charge's deadline, so none is still being written. */
  RECONCILE_AFTER_MS: 10_000,
};

export type PaymentConfig = ReturnType<typeof env<typeof paymentDefaults>>;

export function paymentConfig(source: Record<string, string | undefined> = process.env): PaymentConfig {
  return serviceEnv(paymentDefaults, source);
}

/** payment ready to serve: handlers, readiness and database, not yet on a port. `now` is the clock card expiry is checked against (tests move it). */
export async function buildPayment(config: PaymentConfig, opts: { now?: () => Date; log?: Logger } = {}): Promise<ServicePart> {
  const log = opts.log ?? logger("payment");
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME, "MONGODB_URI", { log: log });
  const payments = paymentStore(db, lockTable(db), opts.now);
  const reconciler = reconcileLoop({ payments, log, intervalMs: config.RECONCILE_INTERVAL_MS, afterMs: config.RECONCILE_AFTER_MS });
  return {
    name: "payment",
    entries: [service(PaymentService, paymentService({ payments }))],
    readiness: [databaseReady(db)],
    start: () => reconciler.start(),
    close: async () => {
      await reconciler.stop();
      await db.close();
    },
  };
}

export async function startPayment(config: PaymentConfig, opts: { signals?: boolean; log?: Logger; now?: () => Date } = {}): Promise<RunningServer> {
  const log = opts.log ?? logger("payment");
  return servePart(await buildPayment(config, { now: opts.now, log }), config, { ...opts, log });
}
