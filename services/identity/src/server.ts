// Builds and starts identity from its configuration (used by main.ts, the tests and the local stack).
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import {
  authenticate,
  ConfigError,
  commonDefaults,
  databaseReady,
  type env,
  type Logger,
  logger,
  openDatabase,
  projectRoot,
  type RunningServer,
  type ServicePart,
  servePart,
  service,
  serviceEnv,
} from "#kit";
import { identityService } from "./identity-service.js";
import { type KeyRing, openKeyRing } from "./key-ring.js";
import { DEFAULT_LOGIN_LIMITS, loginLimits } from "./login-limits.js";
import { HASH_LN } from "./passwords.js";
import { tokenIssuer } from "./tokens.js";
import { userStore } from "./users.js";

/** The dev key lives under the repo root whatever the working directory, so every start finds the same key. */
const DEV_KEY_DIR = join(projectRoot(), ".cache", "identity");

export const JWKS_PATH = "/.well-known/jwks.json";

export const identityDefaults = {
  ...commonDefaults,
  PORT: 50051,
  ADMIN_PORT: 9091,
  DB_NAME: "identity",
  JWT_ISSUER: "meshmart-identity",
  JWT_AUDIENCE: "meshmart",
  TOKEN_TTL_SECONDS: 3600,
  /** PKCS8 PEM of an Ed25519 key; empty = a dev key generated into JWT_KEY_DIR. */
  JWT_PRIVATE_KEY_FILE: "",
  JWT_KEY_DIR: DEV_KEY_DIR,
  /** Rotate the signing key this often (README "Key rotation"); 0 = never. The dev key ring only. */
  JWT_ROTATE_SECONDS: 0,
  /** Login throttling (README "Login throttling"): free failures per (account, source), per source, distinct sources per account. */
  LOGIN_PAIR_FREE_FAILURES: DEFAULT_LOGIN_LIMITS.pairFree,
  LOGIN_SOURCE_FREE_FAILURES: DEFAULT_LOGIN_LIMITS.sourceFree,
  LOGIN_ACCOUNT_FREE_SOURCES: DEFAULT_LOGIN_LIMITS.accountSourcesFree,
  LOGIN_BACKOFF_BASE_MS: DEFAULT_LOGIN_LIMITS.baseMs,
  LOGIN_BACKOFF_CAP_MS: DEFAULT_LOGIN_LIMITS.capMs,
  LOGIN_WINDOW_MS: DEFAULT_LOGIN_LIMITS.windowMs,
  /** Proxies in front of identity that append to x-forwarded-for (Istio ingress: 1); 0 = use the peer address. */
  TRUSTED_PROXY_HOPS: 0,
  /** scrypt cost exponent for new password hashes (2^ln iterations); lower it only in tests. */
  PASSWORD_HASH_LN: HASH_LN.default,
};

/** The shortest rotation interval: the next key must be published longer than a verifier's refetch cooldown. */
export const MIN_ROTATE_SECONDS = 2;

export type IdentityConfig = ReturnType<typeof env<typeof identityDefaults>>;

export function identityConfig(source: Record<string, string | undefined> = process.env): IdentityConfig {
  const config = serviceEnv(identityDefaults, source);
  if (config.TOKEN_TTL_SECONDS <= 0) throw new ConfigError("TOKEN_TTL_SECONDS", `must be more than 0, got ${config.TOKEN_TTL_SECONDS}`);
  // The next key is published one interval before it signs: longer than a verifier's refetch cooldown (1 s).
  if (config.JWT_ROTATE_SECONDS !== 0 && !(config.JWT_ROTATE_SECONDS >= MIN_ROTATE_SECONDS))
    throw new ConfigError("JWT_ROTATE_SECONDS", `must be 0 (never) or at least ${MIN_ROTATE_SECONDS}, got ${config.JWT_ROTATE_SECONDS}`);
  for (const name of ["LOGIN_PAIR_FREE_FAILURES", "LOGIN_SOURCE_FREE_FAILURES", "LOGIN_ACCOUNT_FREE_SOURCES", "TRUSTED_PROXY_HOPS"] as const)
    if (config[name] < 0) throw new ConfigError(name, `must be 0 or more, got ${config[name]}`);
  for (const name of ["LOGIN_BACKOFF_BASE_MS", "LOGIN_BACKOFF_CAP_MS", "LOGIN_WINDOW_MS"] as const)
    if (config[name] <= 0) throw new ConfigError(name, `must be more than 0, got ${config[name]}`);
  if (config.PASSWORD_HASH_LN < HASH_LN.min || config.PASSWORD_HASH_LN > HASH_LN.max)
    throw new ConfigError("PASSWORD_HASH_LN", `must be ${HASH_LN.min}..${HASH_LN.max}, got ${config.PASSWORD_HASH_LN}`);
  if (config.LOGIN_BACKOFF_CAP_MS < config.LOGIN_BACKOFF_BASE_MS)
    throw new ConfigError(
      "LOGIN_BACKOFF_CAP_MS",
      `must be at least LOGIN_BACKOFF_BASE_MS (${config.LOGIN_BACKOFF_BASE_MS}), got ${config.LOGIN_BACKOFF_CAP_MS}`,
    );
  return config;
}

/**
 * The JWKS route: verifiers may cache it for 5 minutes, or one rotation interval when that is shorter (the kit's
 * remoteKeys refetches early on an unknown kid).
 */
function jwksRoute(ring: KeyRing, rotateSeconds: number) {
  const maxAge = rotateSeconds > 0 ? Math.min(300, rotateSeconds) : 300;
  return (_req: unknown, res: ServerResponse) => {
    res.writeHead(200, { "content-type": "application/json", "cache-control": `public, max-age=${maxAge}` }).end(`${JSON.stringify(ring.jwks())}\n`);
  };
}

/** Verifies against the ring's published keys as they are now (they change on rotation). */
function ringKeys(ring: KeyRing): JWTVerifyGetKey {
  let last: { kids: string; get: JWTVerifyGetKey } | undefined;
  return (header, token) => {
    const jwks: JSONWebKeySet = ring.jwks();
    const kids = jwks.keys.map((k) => k.kid).join();
    if (last?.kids !== kids) last = { kids, get: createLocalJWKSet(jwks) };
    return last.get(header, token);
  };
}

/** identity ready to serve: its handlers, JWKS route, readiness and database, not yet on a port. */
export async function buildIdentity(config: IdentityConfig, opts: { now?: () => number; log?: Logger } = {}): Promise<ServicePart> {
  // The key first: a bad key setting stops the start before anything is opened.
  const ring = await openKeyRing({
    file: config.JWT_PRIVATE_KEY_FILE,
    dir: config.JWT_KEY_DIR,
    rotateSeconds: config.JWT_ROTATE_SECONDS,
    ttlSeconds: config.TOKEN_TTL_SECONDS,
  });
  const db = await openDatabase(config.MONGODB_URI, config.DB_NAME, "MONGODB_URI", { log: opts.log ?? logger("identity") });
  try {
    const users = await userStore(db, { hashLn: config.PASSWORD_HASH_LN });
    const tokens = tokenIssuer(ring.current, { issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, ttlSeconds: config.TOKEN_TTL_SECONDS });
    // GetMe checks tokens like every other service does, against the same public keys it serves.
    const auth = authenticate({ keys: ringKeys(ring), issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, public: ["Register", "Login"] });
    const limits = loginLimits(
      db,
      {
        pairFree: config.LOGIN_PAIR_FREE_FAILURES,
        sourceFree: config.LOGIN_SOURCE_FREE_FAILURES,
        accountSourcesFree: config.LOGIN_ACCOUNT_FREE_SOURCES,
        baseMs: config.LOGIN_BACKOFF_BASE_MS,
        capMs: config.LOGIN_BACKOFF_CAP_MS,
        windowMs: config.LOGIN_WINDOW_MS,
      },
      opts.now,
    );
    let sweeper: NodeJS.Timeout | undefined;
    return {
      name: "identity",
      entries: [service(IdentityService, identityService({ users, tokens, limits, trustedProxyHops: config.TRUSTED_PROXY_HOPS }), { interceptors: [auth] })],
      // Idle counters are dropped once per window (FerretDB v1 has no TTL index to do it).
      start: () => {
        sweeper = setInterval(() => void limits.sweep().catch(() => undefined), config.LOGIN_WINDOW_MS).unref();
        ring.start(opts.log ?? logger("identity"));
      },
      adminRoutes: { [JWKS_PATH]: jwksRoute(ring, config.JWT_ROTATE_SECONDS) },
      readiness: [databaseReady(db)],
      close: async () => {
        clearInterval(sweeper);
        ring.stop();
        await db.close();
      },
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

export async function startIdentity(config: IdentityConfig, opts: { signals?: boolean; log?: Logger; now?: () => number } = {}): Promise<RunningServer> {
  return servePart(await buildIdentity(config, { now: opts.now, log: opts.log }), config, opts);
}
