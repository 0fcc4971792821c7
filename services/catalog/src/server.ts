// Builds and starts catalog from its configuration (used by main.ts, the tests and the local stack).

import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import {
  commonDefaults,
  databaseReady,
  type env,
  type Logger,
  logger,
  oneOf,
  openDatabase,
  type RunningServer,
  responseHeaders,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { catalogService } from "./catalog-service.js";
import { loadSeed, productStore } from "./products.js";
import { reservationBook } from "./reservations.js";

export const catalogDefaults = {
  ...commonDefaults,
  PORT: 50052,
  ADMIN_PORT: 9092,
  DB_NAME: "catalog",
  VERSION: oneOf(["v1", "v2"], "v1"),
  SEED: true,
};

export type CatalogConfig = ReturnType<typeof env<typeof catalogDefaults>>;

export function catalogConfig(source: Record<string, string | undefined> = process.env): CatalogConfig {
  return serviceEnv(catalogDefaults, source);
}

/** catalog ready to serve: its handlers, readiness and database, not yet on a port. */
export async function buildCatalog(config: CatalogConfig): Promise<ServicePart> {
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME, "MONGODB_URI", { log: logger("catalog") });
  try {
    const products = productStore(db);
    if (config.SEED) await products.seed(await loadSeed());
    const handlers = catalogService({ products, reservations: reservationBook(db, products), version: config.VERSION });
    return {
      name: `catalog-${config.VERSION}`,
      entries: [service(CatalogService, handlers, { interceptors: [responseHeaders({ "x-served-by": `catalog-${config.VERSION}` })] })],
      readiness: [databaseReady(db)],
      close: () => db.close(),
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

export async function startCatalog(config: CatalogConfig, opts: { signals?: boolean; log?: Logger } = {}): Promise<RunningServer> {
  return servePart(await buildCatalog(config), config, opts);
}
