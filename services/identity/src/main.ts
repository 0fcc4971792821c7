// identity: users, passwords and the access tokens (JWTs) every other service trusts.
import { initTracing, main } from "#kit";
import { identityConfig, startIdentity } from "./server.js";

// Tracing first: the database connection and the clients are made with it on or off.
main(async () => {
  const config = identityConfig();
  await initTracing("identity");
  return startIdentity(config, { signals: true });
});
