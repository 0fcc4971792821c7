// catalog: products and stock. VERSION=v1|v2 runs the same code as either version of the canary.
import { main } from "#kit";
import { catalogConfig, startCatalog } from "./server.js";

main(() => startCatalog(catalogConfig(), { signals: true }));
