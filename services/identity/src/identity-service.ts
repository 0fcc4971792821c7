// The IdentityService RPCs: register a user, log in for an access token, and read the caller back.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { IdentityService, UserSchema } from "#gen/meshmart/identity/v1/identity_pb.js";
import { currentUser, peerKey } from "#kit";
import { InvalidCredentialsError, LoginThrottledError, UserNotFoundError } from "./errors.js";
import type { LoginLimits } from "./login-limits.js";
import type { TokenIssuer } from "./tokens.js";
import { normalizeEmail, type PublicUser, type UserStore } from "./users.js";

export interface Deps {
  users: UserStore;
  tokens: TokenIssuer;
  limits: LoginLimits;
  /** How many proxies in front of identity append to x-forwarded-for (0: use the peer address). */
  trustedProxyHops: number;
}

/**
 * Where a login comes from. Without trusted proxies: the peer address. Behind N trusted proxies: the N-th
 * x-forwarded-for entry from the right — the address the outermost trusted proxy saw. Entries further left
 * are whatever the client wrote and would let an attacker pick a fresh "source" per attempt.
 */
export function loginSource(peer: string, forwardedFor: string | null, trustedProxyHops: number): string {
  if (trustedProxyHops <= 0 || !forwardedFor) return peer || "unknown";
  const hops = forwardedFor
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  return hops.length >= trustedProxyHops ? hops[hops.length - trustedProxyHops] : peer || "unknown";
}

const toProto = (u: PublicUser): MessageInitShape<typeof UserSchema> => ({
  userId: u._id,
  email: u.email,
  displayName: u.displayName ?? "", // lean reads skip schema defaults
  createTime: timestampFromDate(u.createdAt),
});

export function identityService({ users, tokens, limits, trustedProxyHops }: Deps): ServiceImpl<typeof IdentityService> {
  return {
    async register({ email, password, displayName }) {
      return { user: toProto(await users.register(email, password, displayName)) };
    },

    async login({ email, password }, ctx) {
      const account = normalizeEmail(email);
      const source = loginSource(ctx.values.get(peerKey), ctx.requestHeader.get("x-forwarded-for"), trustedProxyHops);
      const wait = await limits.waitMs(account, source);
      if (wait > 0) throw new LoginThrottledError(wait); // before the password is checked: a blocked guess learns nothing
      let user: PublicUser;
      try {
        user = await users.login(email, password);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) await limits.failed(account, source);
        throw err;
      }
      await limits.succeeded(account, source);
      const { token, expiresAt } = await tokens.issue({ id: user._id, email: user.email });
      return { accessToken: token, tokenType: "Bearer", expireTime: timestampFromDate(expiresAt), user: toProto(user) };
    },

    async getMe(_, ctx) {
      const { id } = currentUser(ctx); // set by the authenticate interceptor
      const user = await users.get(id);
      if (!user) throw new UserNotFoundError(id); // a valid token for a deleted user
      return { user: toProto(user) };
    },
  };
}
