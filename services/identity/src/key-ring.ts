// Signing-key rotation without downtime: identity signs with the current key and publishes, in its JWKS, the
// key that will sign next (so a verifier that caches the JWKS already holds it when it starts signing) and
// every retired key until the last token it signed has expired. Rotation runs every JWT_ROTATE_SECONDS; the
// ring is kept in JWT_KEY_DIR so a restart keeps verifying the tokens it issued.
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { ConfigError, type Logger } from "#kit";
import { DEV_KEY_FILE, loadSigningKey, newKeyPem, type SigningKey, signingKeyFromPem } from "./tokens.js";

/** The ring's file inside JWT_KEY_DIR (mode 0600): the current, next and retired keys and when it last rotated. */
export const KEY_RING_FILE = "jwt-keyring.json";

interface RingFile {
  rotatedAt: number;
  current: string;
  next: string;
  /** Each retired key with the time (ms) after which no token it signed is valid. */
  retired: { pem: string; until: number }[];
}

interface Held {
  key: SigningKey;
  pem: string;
}

export interface KeyRing {
  /** The key that signs now. */
  current(): SigningKey;
  /** What verifiers get: current, next, and retired keys whose tokens may still be valid. */
  jwks(now?: number): JSONWebKeySet;
  /** Retires the current key, promotes the next one and makes a new next; persisted before it is used. */
  rotate(now?: number): Promise<void>;
  /** Starts rotating every `rotateSeconds` (no-op when rotation is off). */
  start(log?: Logger): void;
  stop(): void;
}

export interface KeyRingOptions {
  file: string;
  dir: string;
  /** 0 = never rotate. */
  rotateSeconds: number;
  /** Tokens' lifetime: a retired key stays published this long after it stopped signing. */
  ttlSeconds: number;
  now?: () => number;
}

/** A key ring from the settings; JWT_PRIVATE_KEY_FILE gives a fixed key (rotated by replacing the Secret). */
export async function openKeyRing(o: KeyRingOptions): Promise<KeyRing> {
  const now = o.now ?? Date.now;
  if (o.file) {
    if (o.rotateSeconds > 0)
      throw new ConfigError(
        "JWT_ROTATE_SECONDS",
        "rotates the key ring kept in JWT_KEY_DIR; with JWT_PRIVATE_KEY_FILE the key is fixed (leave JWT_ROTATE_SECONDS at 0)",
      );
    const key = await loadSigningKey({ file: o.file, dir: o.dir });
    return fixedRing(key);
  }
  const ringPath = join(o.dir, KEY_RING_FILE);
  let state: { rotatedAt: number; current: Held; next?: Held; retired: (Held & { until: number })[] };
  const held = async (pem: string): Promise<Held> => ({ key: await signingKeyFromPem(pem), pem });
  const text = await readFile(ringPath, "utf8").then(
    (t) => t,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw new ConfigError("JWT_KEY_DIR", `cannot read the key ring ${ringPath}: ${err.message}`);
    },
  );
  try {
    const saved = text === undefined ? undefined : (JSON.parse(text) as RingFile);
    if (saved)
      state = {
        rotatedAt: saved.rotatedAt,
        current: await held(saved.current),
        next: await held(saved.next),
        retired: await Promise.all(saved.retired.map(async (r) => ({ ...(await held(r.pem)), until: r.until }))),
      };
    else {
      // No ring yet: the dev key signs; a next key exists only once rotation is on.
      const key = await loadSigningKey({ file: "", dir: o.dir });
      const pem = await readFile(join(o.dir, DEV_KEY_FILE), "utf8");
      state = { rotatedAt: now(), current: { key, pem }, retired: [] };
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError("JWT_KEY_DIR", `holds a bad key ring ${ringPath} (${(err as Error).message}); delete it to start a new one`);
  }

  const save = async () => {
    const ring: RingFile = {
      rotatedAt: state.rotatedAt,
      current: state.current.pem,
      next: state.next?.pem ?? "",
      retired: state.retired.map(({ pem, until }) => ({ pem, until })),
    };
    // Written whole and renamed into place: a crash leaves the old ring or the new one, never half of one.
    const write = async (path: string, text: string) => {
      await writeFile(`${path}.tmp`, text, { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    };
    await write(ringPath, `${JSON.stringify(ring)}\n`);
    // The dev key file follows the current key, for tools that mint tokens from it.
    await write(join(o.dir, DEV_KEY_FILE), state.current.pem);
  };
  if (o.rotateSeconds > 0 && !state.next) {
    state.next = await held(newKeyPem());
    await save();
  }

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const ring: KeyRing = {
    current: () => state.current.key,
    jwks(at = now()) {
      const keys = [state.current, ...(state.next ? [state.next] : []), ...state.retired.filter((r) => r.until > at)];
      return { keys: keys.flatMap((h) => h.key.jwks.keys) };
    },
    async rotate(at = now()) {
      const next = state.next ?? (await held(newKeyPem()));
      // exp = iat + TTL with iat rounded down: no token of the retiring key outlives `until`.
      const retiring = { ...state.current, until: at + o.ttlSeconds * 1000 + 1000 };
      state = {
        rotatedAt: at,
        current: next,
        next: await held(newKeyPem()),
        retired: [...state.retired.filter((r) => r.until > at), retiring],
      };
      await save();
    },
    start(log) {
      if (!(o.rotateSeconds > 0) || timer || stopped) return;
      const schedule = () => {
        const wait = Math.max(0, state.rotatedAt + o.rotateSeconds * 1000 - now());
        timer = setTimeout(async () => {
          try {
            const from = state.current.key.kid;
            await ring.rotate();
            log?.info({ from, to: state.current.key.kid, published: ring.jwks().keys.map((k) => k.kid) }, "signing key rotated");
          } catch (err) {
            log?.error({ err }, "signing key rotation failed; the current key keeps signing");
          }
          if (!stopped) schedule();
        }, wait);
        timer.unref();
      };
      schedule();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  return ring;
}

function fixedRing(key: SigningKey): KeyRing {
  return { current: () => key, jwks: () => key.jwks, rotate: async () => undefined, start: () => undefined, stop: () => undefined };
}
