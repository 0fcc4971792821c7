// Bearer-token authentication: verifies identity's JWTs against its JWKS (cached, refreshed by jose).
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { JWTVerifyGetKey } from "jose";
import { type AuthUser, userKey } from "../shared/context.js";

export interface AuthOptions {
  /** Where the keys come from: `remoteKeys(url)` or jose's createLocalJWKSet. */
  keys: JWTVerifyGetKey;
  issuer: string;
  audience: string;
  /** Methods (by name) that may be called without a token. */
  public?: string[];
}

/**
 * Keys fetched from a JWKS URL, cached for 10 minutes and refetched on an unknown kid at most once a second.
 * identity publishes its next key one rotation interval (at least 2 s) before signing with it, so a cache
 * older than that interval finds the new kid by that refetch; a short cooldown only bounds how often tokens
 * with made-up kids make it fetch.
 */
export function remoteKeys(url: string): JWTVerifyGetKey {
  const at = new URL(url);
  let keys: JWTVerifyGetKey | undefined;
  return async (header, token) => {
    keys ??= (await jose()).createRemoteJWKSet(at, { cacheMaxAge: 600_000, cooldownDuration: 1000, timeoutDuration: 2000 });
    return keys(header, token);
  };
}

type Jose = typeof import("jose");
let joseModule: Jose | undefined;

/**
 * jose, loaded on the first token to verify: the kit is bundled into every service, and catalog and payment
 * never verify one (~0.7 MB less RSS there).
 */
async function jose(): Promise<Jose> {
  joseModule ??= await import("jose");
  return joseModule;
}

/** Server interceptor: checks `authorization: Bearer <jwt>` and puts the user in the context; UNAUTHENTICATED otherwise. */
export function authenticate(opts: AuthOptions): Interceptor {
  const open = new Set(opts.public ?? []);
  return (next) => async (req) => {
    if (open.has(req.method.name) || req.service.typeName.startsWith("grpc.")) return next(req);
    const header = req.header.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new ConnectError("missing bearer token: send authorization: Bearer <token from Login>", Code.Unauthenticated);
    try {
      // sub and exp are required: a token without an expiry would be valid forever.
      const { payload } = await (joseModule ?? (await jose())).jwtVerify(match[1], opts.keys, {
        issuer: opts.issuer,
        audience: opts.audience,
        algorithms: ["EdDSA", "RS256"],
        requiredClaims: ["sub", "exp"],
      });
      req.contextValues.set(userKey, { id: payload.sub as string, email: payload.email as string | undefined, authorization: header });
    } catch (err) {
      const code = (err as { code?: string }).code;
      // No jose error code: the key fetch itself failed (identity down, network) — worth a retry, not the caller's fault.
      if (code === "ERR_JWKS_TIMEOUT" || code === undefined)
        throw new ConnectError("cannot fetch the signing keys", Code.Unavailable, undefined, undefined, err);
      throw new ConnectError(code === "ERR_JWT_EXPIRED" ? "token expired" : "invalid token", Code.Unauthenticated, undefined, undefined, err);
    }
    return next(req);
  };
}

/** The authenticated caller; UNAUTHENTICATED when the call carried no valid token. */
export function currentUser(ctx: HandlerContext): AuthUser {
  const user = ctx.values.get(userKey);
  if (!user) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return user;
}
