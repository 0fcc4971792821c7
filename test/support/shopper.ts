// A shopper for tests that place orders on a stack: registered, logged in, the headers to send.
import type { Client } from "@connectrpc/connect";
import type { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";

const PASSWORD = "correct-horse-1";

/** Registers `email` and logs in; the authorization header of the session. */
export async function signedInShopper(identity: Client<typeof IdentityService>, email: string, displayName: string): Promise<{ authorization: string }> {
  await identity.register({ email, password: PASSWORD, displayName });
  const { accessToken } = await identity.login({ email, password: PASSWORD });
  return { authorization: `Bearer ${accessToken}` };
}
