// identity: users, passwords and the access tokens (JWTs) every other service trusts.
import { main } from "#kit";
import { identityConfig, startIdentity } from "./server.js";

main(() => startIdentity(identityConfig(), { signals: true }));
