// Password policy and hashing: scrypt (node:crypto) with a random salt per password, stored as a
// PHC-style string that carries its own parameters, so the cost can be raised later without breaking old hashes.
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";
import { invalidArgument } from "#kit";

/** Current cost: 2^15 iterations of 1 KiB blocks, about 32 MiB and a few tens of ms per hash. */
const COST = { ln: 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const ENCODED = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Throws INVALID_ARGUMENT naming `password` unless it has 8..128 characters with a letter and a digit. */
export function checkPasswordPolicy(password: string): void {
  const length = [...password].length; // code points, as the contract's length rules count
  let problem: string | undefined;
  if (length < 8 || length > 128) problem = `must be 8 to 128 characters, got ${length}`;
  else if (!/\p{L}/u.test(password)) problem = "must contain at least one letter";
  else if (!/\p{Nd}/u.test(password)) problem = "must contain at least one digit";
  if (problem) throw invalidArgument([{ field: "password", description: problem }]);
}

function derive(password: string, salt: Buffer, ln: number, r: number, p: number, keylen: number): Promise<Buffer> {
  const N = 2 ** ln;
  // Node refuses more than 32 MiB by default, which is exactly what ln=15,r=8 needs; leave headroom.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r * p };
  return new Promise((resolve, reject) => scrypt(password.normalize("NFC"), salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");

/** The accepted range of the cost exponent (PASSWORD_HASH_LN); verifyPassword refuses hashes outside it. */
export const HASH_LN = { min: 10, max: 17, default: COST.ln };

/**
 * `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64, no padding). `ln` lowers the cost only for tests that hash
 * a lot (the fuzzer registers users by the dozen); every hash carries its own cost, so verification is unaffected.
 */
export async function hashPassword(password: string, ln = COST.ln): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, ln, COST.r, COST.p, KEY_BYTES);
  return `$scrypt$ln=${ln},r=${COST.r},p=${COST.p}$${b64(salt)}$${b64(key)}`;
}

/** True when `password` matches `encoded`; compares in constant time. A malformed hash never matches. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const m = ENCODED.exec(encoded);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds keep a tampered record from making one login burn memory or CPU: at most 4× today's cost
  // (128 · 2^ln · r bytes ≤ 128 MiB; p multiplies time only).
  if (ln < 10 || ln > 17 || r < 1 || r > 8 || p < 1 || p > 4) return false;
  const expected = Buffer.from(m[5], "base64");
  if (expected.length < 16) return false;
  const actual = await derive(password, Buffer.from(m[4], "base64"), ln, r, p, expected.length);
  return timingSafeEqual(actual, expected);
}

const dummies = new Map<number, Promise<string>>();

/**
 * A hash of a random password with the current cost. Verifying against it when an e-mail is unknown makes
 * that login as slow as a wrong password, so timing does not tell which e-mails are registered.
 */
export function dummyHash(ln = COST.ln): Promise<string> {
  let dummy = dummies.get(ln);
  if (!dummy) dummies.set(ln, (dummy = hashPassword(randomBytes(24).toString("base64"), ln)));
  return dummy;
}
