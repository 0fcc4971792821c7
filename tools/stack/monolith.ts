// Monolith mode: all four services in one process, on one gRPC port. orders reaches catalog and payment
// through Connect's in-memory transport (same handlers, same interceptors, no socket), so the
// "microservices vs monolith" comparison runs the very same code both ways.

import {
  Faults,
  faultsFromEnv,
  initTracing,
  inMemoryTransport,
  kitInterceptors,
  logger,
  type RunningServer,
  type ServicePart,
  serve,
  serveOptionsFrom,
} from "#kit";
import { buildCatalog, catalogConfig } from "../../services/catalog/src/server.js";
import { buildIdentity, identityConfig, JWKS_PATH } from "../../services/identity/src/server.js";
import { buildOrders, ordersConfig } from "../../services/orders/src/server.js";
import { buildPayment, paymentConfig } from "../../services/payment/src/server.js";

export interface MonolithOptions {
  mongoUri: string;
  host: string;
  port: number;
  adminPort: number;
  /** Shut down and exit on SIGTERM/SIGINT (its own process, tools/stack/monolith-main.ts). */
  signals?: boolean;
}

export async function startMonolith(opts: MonolithOptions): Promise<RunningServer> {
  const env = { ...process.env, MONGODB_URI: opts.mongoUri, HOST: opts.host };
  await initTracing("monolith", env); // before the loggers, any database connection or client are made
  const log = logger("monolith");
  const parts: ServicePart[] = [];
  // The common settings (ENGINE, GRACE_MS, DRAIN_DELAY_MS, message limits, ...) are read as every service reads
  // them, so the two modes differ only in what this file says; the ports are the caller's.
  const common = identityConfig(env);
  const faults = new Faults(log, faultsFromEnv()); // one set of knobs: /faults reaches in-memory calls too
  try {
    parts.push(await buildIdentity(common));
    parts.push(await buildCatalog(catalogConfig({ ...env, VERSION: "v1" })));
    parts.push(await buildPayment(paymentConfig(env)));
    // orders reaches catalog and payment in memory: their handlers, behind the same interceptors as on a port.
    const peers = inMemoryTransport(
      parts.slice(1).flatMap((p) => p.entries),
      kitInterceptors(log, faults),
    );
    const jwks = `http://127.0.0.1:${opts.adminPort}${JWKS_PATH}`; // identity's route, on this process's admin port
    parts.push(await buildOrders(ordersConfig({ ...env, IDENTITY_JWKS_URL: jwks }), { log: logger("orders"), peers }));
  } catch (err) {
    await Promise.all(parts.map((p) => p.close()));
    throw err;
  }
  const server = await serve({
    name: "monolith",
    log,
    ...serveOptionsFrom(common),
    mesh: undefined, // one process on one port: nothing for a mesh to secure between its parts
    host: opts.host,
    port: opts.port,
    adminPort: opts.adminPort,
    services: parts.flatMap((p) => p.entries),
    readiness: parts.flatMap((p) => p.readiness),
    adminRoutes: Object.assign({}, ...parts.map((p) => p.adminRoutes ?? {})),
    faultKnobs: faults,
    onShutdown: () => Promise.all(parts.map((p) => p.close())),
    signals: opts.signals,
  });
  for (const p of parts) p.start?.();
  return server;
}
