// The IdentityService RPCs: register a user, log in for an access token, and read the caller back.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { IdentityService, UserSchema } from "#gen/meshmart/identity/v1/identity_pb.js";
import { currentUser } from "#kit";
import { UserNotFoundError } from "./errors.js";
import type { TokenIssuer } from "./tokens.js";
import type { PublicUser, UserStore } from "./users.js";

export interface Deps {
  users: UserStore;
  tokens: TokenIssuer;
}

const toProto = (u: PublicUser): MessageInitShape<typeof UserSchema> => ({
  userId: u._id,
  email: u.email,
  displayName: u.displayName ?? "", // lean reads skip schema defaults
  createTime: timestampFromDate(u.createdAt),
});

export function identityService({ users, tokens }: Deps): ServiceImpl<typeof IdentityService> {
  return {
    async register({ email, password, displayName }) {
      return { user: toProto(await users.register(email, password, displayName)) };
    },

    async login({ email, password }) {
      const user = await users.login(email, password);
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
