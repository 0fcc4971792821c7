// catalog: products and stock. VERSION=v1|v2 runs the same code as either version of the canary.
import { initTracing, main } from "#kit";
import { catalogConfig, startCatalog } from "./server.js";

// Tracing first: the database connection and the clients are made with it on or off.
main(async () => {
  const config = catalogConfig();
  await initTracing("catalog", process.env, config.VERSION);
  return startCatalog(config, { signals: true });
});
