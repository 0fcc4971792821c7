// Access tokens: EdDSA (Ed25519) JWTs signed with identity's private key; the public half is served as a
// JWKS so the other services and the mesh verify tokens without calling identity.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, type JSONWebKeySet, type JWK, SignJWT } from "jose";
import { ConfigError } from "#kit";

export interface SigningKey {
  privateKey: KeyObject;
  /** RFC 7638 thumbprint of the public key: verifiers pick the key by it, and it changes only with the key. */
  kid: string;
  /** The public key alone, served at /.well-known/jwks.json. */
  jwks: JSONWebKeySet;
}

/** The dev key's file name inside JWT_KEY_DIR. */
export const DEV_KEY_FILE = "jwt-ed25519.pem";

/** A signing key from a PKCS8 PEM; throws unless it is an Ed25519 private key. */
export async function signingKeyFromPem(pem: string): Promise<SigningKey> {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== "ed25519") throw new Error(`expected an Ed25519 key, got ${privateKey.asymmetricKeyType}`);
  const { kty, crv, x } = createPublicKey(privateKey).export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint({ kty, crv, x });
  return { privateKey, kid, jwks: { keys: [{ kty, crv, x, kid, alg: "EdDSA", use: "sig" }] } };
}

/** A new Ed25519 key as PKCS8 PEM. */
export function newKeyPem(): string {
  return generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}

/**
 * The signing key: from `file` when set (a mounted Secret in a cluster), else the dev key kept in `dir`,
 * generated on the first start and reused after, so tokens survive a restart.
 */
export async function loadSigningKey({ file, dir }: { file: string; dir: string }): Promise<SigningKey> {
  if (file) {
    const pem = await readFile(file, "utf8").catch((err: Error) => {
      throw new ConfigError("JWT_PRIVATE_KEY_FILE", `cannot be read: ${err.message}`);
    });
    return signingKeyFromPem(pem).catch((err: Error) => {
      throw new ConfigError("JWT_PRIVATE_KEY_FILE", `must hold a PKCS8 PEM Ed25519 private key (${err.message})`);
    });
  }
  const path = join(dir, DEV_KEY_FILE);
  let pem: string;
  try {
    pem = await devKeyPem(dir, path);
  } catch (err) {
    throw new ConfigError("JWT_KEY_DIR", `cannot keep the dev signing key in ${dir}: ${(err as Error).message}`);
  }
  return signingKeyFromPem(pem).catch((err: Error) => {
    throw new ConfigError("JWT_KEY_DIR", `holds a bad key file ${path} (${err.message}); delete it to get a new one`);
  });
}

async function devKeyPem(dir: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pem = newKeyPem();
  try {
    // Exclusive create, owner-only: a second process starting at the same moment keeps the first one's key.
    await writeFile(path, pem, { mode: 0o600, flag: "wx" });
    return pem;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return readFile(path, "utf8");
    throw err;
  }
}

export interface TokenSettings {
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

export type TokenIssuer = ReturnType<typeof tokenIssuer>;

/**
 * Mints access tokens: iss, aud, sub (the user id), iat, exp, an `email` claim, and `kid` in the header.
 * `key` may be a function: the key ring's current key, read at every token (it changes on rotation).
 */
export function tokenIssuer(key: SigningKey | (() => SigningKey), { issuer, audience, ttlSeconds }: TokenSettings) {
  const keyNow = typeof key === "function" ? key : () => key;
  return {
    /** `now` is for tests that need a token from the past. */
    async issue(user: { id: string; email: string }, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
      const key = keyNow();
      const iat = Math.floor(now.getTime() / 1000);
      const exp = iat + ttlSeconds;
      const token = await new SignJWT({ email: user.email })
        .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "JWT" })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(user.id)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key.privateKey);
      return { token, expiresAt: new Date(exp * 1000) };
    },
  };
}
