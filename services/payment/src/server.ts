// Builds and starts payment from its configuration (used by main.ts, the tests and the local stack).
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import {
  commonDefaults,
  databaseReady,
  type env,
  type Logger,
  lockTable,
  openDatabase,
  type RunningServer,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { paymentService } from "./payment-service.js";
import { paymentStore } from "./payments.js";

export const paymentDefaults = {
  ...commonDefaults,
  PORT: 50054,
  ADMIN_PORT: 9094,
  DB_NAME: "payment",
};

export type PaymentConfig = ReturnType<typeof env<typeof paymentDefaults>>;

export function paymentConfig(source: Record<string, string | undefined> = process.env): PaymentConfig {
  return serviceEnv(paymentDefaults, source);
}

/** payment ready to serve: handlers, readiness and database, not yet on a port. `now` is the clock card expiry is checked against (tests move it). */
export async function buildPayment(config: PaymentConfig, opts: { now?: () => Date } = {}): Promise<ServicePart> {
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME);
  return {
    name: "payment",
    entries: [service(PaymentService, paymentService({ payments: paymentStore(db, lockTable(db), opts.now) }))],
    readiness: [databaseReady(db)],
    close: () => db.close(),
  };
}

export async function startPayment(config: PaymentConfig, opts: { signals?: boolean; log?: Logger; now?: () => Date } = {}): Promise<RunningServer> {
  return servePart(await buildPayment(config, { now: opts.now }), config, opts);
}
