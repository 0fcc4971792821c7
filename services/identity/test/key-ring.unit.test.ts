// The signing-key ring (services/identity/src/key-ring.ts) on a fake clock: which keys JWKS publishes before,
// across and after a rotation, that a retired key verifies until its tokens expire and not after, and that
// the ring survives a restart.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createLocalJWKSet, jwtVerify } from "jose";
import { ConfigError } from "#kit";
import { KEY_RING_FILE, openKeyRing } from "../src/key-ring.js";
import { DEV_KEY_FILE, loadSigningKey, newKeyPem, tokenIssuer } from "../src/tokens.js";

const TTL = 60;
const SETTINGS = { issuer: "i", audience: "a", ttlSeconds: TTL };
const kids = (ring: { jwks(now?: number): { keys: { kid?: string }[] } }, at?: number) => ring.jwks(at).keys.map((k) => k.kid);

describe("identity key ring (rotation)", () => {
  let dir: string;
  let t: number;
  const now = () => t;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "meshmart-keyring-"));
    t = 1_700_000_000_000;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("publishes current and next; after a rotation the next signs and the previous stays until its tokens expire", async () => {
    const ring = await openKeyRing({ file: "", dir, rotateSeconds: 600, ttlSeconds: TTL, now });
    const first = ring.current().kid;
    const [, next] = kids(ring);
    expect(kids(ring)).to.have.length(2).and.to.include(first);
    const issuer = tokenIssuer(ring.current, SETTINGS);
    const old = (await issuer.issue({ id: "u", email: "u@example.com" }, new Date(t))).token;
    // The last token the first key signs, a second before the rotation.
    const lastOld = (await issuer.issue({ id: "u", email: "u@example.com" }, new Date(t + 599_000))).token;

    t += 600_000;
    await ring.rotate();
    expect(ring.current().kid, "the published next key signs now").to.equal(next);
    const published = kids(ring);
    expect(published).to.include.members([first, next]).and.to.have.length(3);
    expect(new Set(published).size, "distinct kids").to.equal(3);
    const fresh = (await issuer.issue({ id: "u", email: "u@example.com" }, new Date(t))).token;
    const verify = (token: string, at: number) => jwtVerify(token, createLocalJWKSet(ring.jwks(at)), { currentDate: new Date(at), issuer: "i", audience: "a" });
    expect((await verify(fresh, t)).protectedHeader.kid).to.equal(next);
    // The old token was issued 600 s ago with a 60 s TTL: expired, though its key is still published.
    await verify(old, t).then(
      () => expect.fail("expired"),
      (err) => expect(err.code).to.equal("ERR_JWT_EXPIRED"),
    );
    // A token the old key signed just before the rotation verifies until it expires...
    expect((await verify(lastOld, t + (TTL - 2) * 1000)).protectedHeader.kid).to.equal(first);
    // ...then the old key is dropped from JWKS: nothing it signed verifies any more, even a token whose exp
    // lies further out (minted here with the old key's own issuer, as a leaked key would).
    const later = t + (TTL + 2) * 1000;
    expect(kids(ring, later)).to.not.include(first);
    expect(kids(ring, later)).to.include(next);
    const forgedLate = (await issuer.issue({ id: "u", email: "u@example.com" }, new Date(later))).token; // signed by `next` now
    expect((await verify(forgedLate, later)).protectedHeader.kid).to.equal(next);
    await verify(lastOld, later).then(
      () => expect.fail("dropped key"),
      (err) => expect(err.code).to.be.oneOf(["ERR_JWKS_NO_MATCHING_KEY", "ERR_JWT_EXPIRED"]),
    );
  });

  it("keeps the ring across a restart: same current, next and retired keys", async () => {
    const a = await openKeyRing({ file: "", dir, rotateSeconds: 600, ttlSeconds: TTL, now });
    await a.rotate();
    const b = await openKeyRing({ file: "", dir, rotateSeconds: 600, ttlSeconds: TTL, now });
    expect(b.current().kid).to.equal(a.current().kid);
    expect(kids(b)).to.deep.equal(kids(a));
    // The dev key file follows the current key (tools mint test tokens from it).
    expect((await loadSigningKey({ file: "", dir })).kid).to.equal(a.current().kid);
    expect(JSON.parse(await readFile(join(dir, KEY_RING_FILE), "utf8")).retired).to.have.length(1);
  });

  it("without rotation serves the one dev key, as before", async () => {
    const ring = await openKeyRing({ file: "", dir, rotateSeconds: 0, ttlSeconds: TTL, now });
    expect(kids(ring)).to.deep.equal([ring.current().kid]);
    expect((await loadSigningKey({ file: "", dir })).kid).to.equal(ring.current().kid);
  });

  it("refuses rotation with a fixed key file, naming JWT_ROTATE_SECONDS", async () => {
    const file = join(dir, "given.pem");
    await writeFile(file, newKeyPem(), { mode: 0o600 });
    const err = await openKeyRing({ file, dir, rotateSeconds: 60, ttlSeconds: TTL }).catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.message).to.contain("JWT_ROTATE_SECONDS");
  });

  it("names JWT_KEY_DIR when the ring file is damaged", async () => {
    await writeFile(join(dir, KEY_RING_FILE), "{not json", { mode: 0o600 });
    const err = await openKeyRing({ file: "", dir, rotateSeconds: 60, ttlSeconds: TTL }).catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err.message).to.contain("JWT_KEY_DIR");
    expect(DEV_KEY_FILE).to.be.a("string");
  });
});
