// The monolith as a process of its own (dist/monolith.js): what the launcher runs for `npm start -- --mode
// monolith`, one unit like each service is. Reads the same variables a service does; ports default to
// MONOLITH_PORTS.
import { commonDefaults, main, serviceEnv } from "#kit";
import { startMonolith } from "./monolith.js";
import { MONOLITH_PORTS } from "./units.js";

main(async () => {
  const config = serviceEnv({ ...commonDefaults, PORT: MONOLITH_PORTS[0], ADMIN_PORT: MONOLITH_PORTS[1] }, process.env);
  return startMonolith({ mongoUri: config.MONGODB_URI, host: config.HOST, port: config.PORT, adminPort: config.ADMIN_PORT, signals: true });
});
