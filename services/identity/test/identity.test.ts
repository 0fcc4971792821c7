import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import mongoose from "mongoose";
import { BadRequestSchema } from "#gen/google/rpc/error_details_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { ConfigError, clientPool, errorReason, type RunningServer } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { rejection } from "../../../test/support/rejection.js";
import { ROOT } from "../../../tools/root.js";
import { identityConfig, JWKS_PATH, startIdentity } from "../src/server.js";
import { DEV_KEY_FILE, loadSigningKey, newKeyPem, signingKeyFromPem, tokenIssuer } from "../src/tokens.js";

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const TOKENS = { issuer: "meshmart-identity", audience: "meshmart", ttlSeconds: 3600 };

function configFor(dbName: string, extra: Record<string, string>) {
  return identityConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", ...extra });
}

describe("identity", () => {
  const clients = clientPool();
  let server: RunningServer;
  let identity: Client<typeof IdentityService>;
  let keyDir: string;
  const dbName = uniqueDbName("identity");
  const jwksUrl = () => `http://127.0.0.1:${server.adminPort}${JWKS_PATH}`;

  before(async () => {
    keyDir = await mkdtemp(join(tmpdir(), "meshmart-identity-keys-"));
    server = await startIdentity(configFor(dbName, { JWT_KEY_DIR: keyDir }));
    identity = clients.dial(IdentityService, `127.0.0.1:${server.port}`);
  });
  after(async () => {
    await server.shutdown();
    clients.close();
    await dropDatabase(dbName);
    await rm(keyDir, { recursive: true, force: true });
  });

  describe("Register", () => {
    it("creates a user, storing the e-mail trimmed and lower-cased", async () => {
      const { user } = await identity.register({ email: "Ada@Example.com", password: "analytical1", displayName: "Ada Lovelace" });
      expect(user?.userId).to.have.length.greaterThan(0);
      expect(user?.email).to.equal("ada@example.com");
      expect(user?.displayName).to.equal("Ada Lovelace");
      expect(Number(user?.createTime?.seconds)).to.be.greaterThan(0);
    });

    it("refuses an e-mail that is already registered, in any case, with ALREADY_EXISTS", async () => {
      const err = await rejection(identity.register({ email: "ADA@example.COM", password: "different2" }));
      expect(err.code).to.equal(Code.AlreadyExists);
      expect(errorReason(err)).to.equal("EMAIL_TAKEN");
    });

    it("lets exactly one of several concurrent registrations of one e-mail through", async () => {
      const emails = ["race@example.com", "Race@example.com", "RACE@example.com", "race@EXAMPLE.com", "rAce@example.com"];
      const results = await Promise.all(
        emails.map((email) =>
          identity.register({ email, password: "racing123" }).then(
            () => "ok",
            (e) => Code[ConnectError.from(e).code],
          ),
        ),
      );
      expect(results.filter((r) => r === "ok")).to.have.length(1);
      expect(results.filter((r) => r !== "ok")).to.deep.equal(Array(4).fill("AlreadyExists"));
    });

    it("rejects a password without a digit with INVALID_ARGUMENT naming password", async () => {
      const err = await rejection(identity.register({ email: "weak@example.com", password: "onlyletters" }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).to.deep.equal(["password"]);
    });

    it("rejects a password shorter than 8 characters, naming password", async () => {
      const err = await rejection(identity.register({ email: "short@example.com", password: "abc123" }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.contain("password");
    });

    it("rejects a malformed e-mail with INVALID_ARGUMENT naming email", async () => {
      const err = await rejection(identity.register({ email: "not-an-email", password: "analytical1" }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).to.deep.equal(["email"]);
    });

    it("stores a scrypt hash and never the password itself", async () => {
      await identity.register({ email: "grace@example.com", password: "cobol1959" });
      const conn = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
      try {
        const doc = await conn.collection("users").findOne({ email: "grace@example.com" });
        expect(doc?.passwordHash).to.match(/^\$scrypt\$ln=\d+,r=\d+,p=\d+\$/);
        expect(JSON.stringify(doc)).not.to.contain("cobol1959");
      } finally {
        await conn.close();
      }
    });
  });

  describe("Login", () => {
    let userId: string;
    before(async () => {
      userId = (await identity.register({ email: "linus@example.com", password: "penguin1991" })).user!.userId;
    });

    it("returns a token that verifies against the JWKS served on the admin port", async () => {
      const res = await identity.login({ email: "linus@example.com", password: "penguin1991" });
      expect(res.tokenType).to.equal("Bearer");
      expect(res.user?.userId).to.equal(userId);

      const { payload, protectedHeader } = await jwtVerify(res.accessToken, createRemoteJWKSet(new URL(jwksUrl())), {
        issuer: "meshmart-identity",
        audience: "meshmart",
      });
      expect(payload.sub).to.equal(userId);
      expect(payload.email).to.equal("linus@example.com");
      expect(payload.exp! - payload.iat!).to.equal(3600);
      expect(res.expireTime?.seconds).to.equal(BigInt(payload.exp!));
      expect(protectedHeader.alg).to.equal("EdDSA");
      expect(protectedHeader.kid).to.be.a("string").and.have.length.greaterThan(0);
    });

    it("serves the JWKS as JSON that caches may keep, with only the public key", async () => {
      const res = await fetch(jwksUrl());
      expect(res.status).to.equal(200);
      expect(res.headers.get("content-type")).to.equal("application/json");
      expect(res.headers.get("cache-control")).to.match(/max-age=\d+/);
      const { keys } = (await res.json()) as { keys: Record<string, string>[] };
      expect(keys).to.have.length(1);
      expect(keys[0]).to.include({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
      expect(keys[0]).not.to.have.property("d");
    });

    it("accepts the e-mail in another case and with spaces around it", async () => {
      const res = await identity.login({ email: "  LINUS@Example.com ", password: "penguin1991" });
      expect(res.user?.userId).to.equal(userId);
    });

    it("answers a wrong password and an unknown e-mail alike: UNAUTHENTICATED with the same message", async () => {
      const wrong = await rejection(identity.login({ email: "linus@example.com", password: "penguin1992" }));
      const unknown = await rejection(identity.login({ email: "nobody@example.com", password: "penguin1991" }));
      expect(wrong.code).to.equal(Code.Unauthenticated);
      expect(unknown.code).to.equal(Code.Unauthenticated);
      expect(wrong.rawMessage).to.equal("wrong e-mail or password");
      expect(unknown.rawMessage).to.equal(wrong.rawMessage);
    });

    it("takes about as long for an unknown e-mail as for a wrong password", async () => {
      const time = async (email: string) => {
        const start = performance.now();
        await rejection(identity.login({ email, password: "not-it-42" }));
        return performance.now() - start;
      };
      // The fastest of 5 each: on a shared machine a timing only gets slower, so the minimum is the fair one.
      const fastest = async (email: string) => {
        let best = Number.POSITIVE_INFINITY;
        for (let i = 0; i < 5; i++) best = Math.min(best, await time(email));
        return best;
      };
      const wrong = await fastest("linus@example.com");
      const unknown = await fastest("nobody@example.com");
      expect(unknown).to.be.greaterThan(wrong * 0.3); // both run one scrypt; without the dummy verify, unknown is ~10x faster
    });
  });

  describe("GetMe", () => {
    let userId: string;
    let token: string;
    before(async () => {
      userId = (await identity.register({ email: "barbara@example.com", password: "liskov1987", displayName: "Barbara" })).user!.userId;
      token = (await identity.login({ email: "barbara@example.com", password: "liskov1987" })).accessToken;
    });
    const mint = async (user: { id: string; email: string }, now?: Date, settings = TOKENS) =>
      (await tokenIssuer(await loadSigningKey({ file: "", dir: keyDir }), settings).issue(user, now)).token;

    it("returns the user named by the bearer token", async () => {
      const { user } = await identity.getMe({}, bearer(token));
      expect(user).to.include({ userId, email: "barbara@example.com", displayName: "Barbara" });
    });

    it("refuses a call without a token with UNAUTHENTICATED", async () => {
      expect((await rejection(identity.getMe({}))).code).to.equal(Code.Unauthenticated);
    });

    it("refuses an expired token with UNAUTHENTICATED", async () => {
      const expired = await mint({ id: userId, email: "barbara@example.com" }, new Date(Date.now() - 2 * 3600_000));
      const err = await rejection(identity.getMe({}, bearer(expired)));
      expect(err.code).to.equal(Code.Unauthenticated);
      expect(err.rawMessage).to.equal("token expired");
    });

    it("refuses a token signed by another key, even under the real kid", async () => {
      const real = await loadSigningKey({ file: "", dir: keyDir });
      const forger = { ...(await signingKeyFromPem(newKeyPem())), kid: real.kid };
      const forged = (await tokenIssuer(forger, TOKENS).issue({ id: userId, email: "barbara@example.com" })).token;
      expect(decodeProtectedHeader(forged).kid).to.equal(real.kid);
      expect((await rejection(identity.getMe({}, bearer(forged)))).code).to.equal(Code.Unauthenticated);
    });

    it("refuses a token for another audience", async () => {
      const other = await mint({ id: userId, email: "barbara@example.com" }, undefined, { ...TOKENS, audience: "someone-else" });
      expect((await rejection(identity.getMe({}, bearer(other)))).code).to.equal(Code.Unauthenticated);
    });

    it("answers NOT_FOUND for a valid token whose user no longer exists", async () => {
      const orphan = await mint({ id: "deleted-user", email: "gone@example.com" });
      const err = await rejection(identity.getMe({}, bearer(orphan)));
      expect(err.code).to.equal(Code.NotFound);
      expect(errorReason(err)).to.equal("USER_NOT_FOUND");
    });

    it("keeps the generated key file readable by its owner only", async () => {
      expect((await stat(join(keyDir, DEV_KEY_FILE))).mode & 0o777).to.equal(0o600);
    });
  });
});

describe("identity signing key", () => {
  const clients = clientPool();
  const dbName = uniqueDbName("identity_keys");
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "meshmart-identity-keys-"));
  });
  after(async () => {
    clients.close();
    await dropDatabase(dbName);
    await rm(dir, { recursive: true, force: true });
  });

  it("is reused after a restart, so a token from before still works", async () => {
    const first = await startIdentity(configFor(dbName, { JWT_KEY_DIR: dir }));
    let token: string;
    try {
      const identity = clients.dial(IdentityService, `127.0.0.1:${first.port}`);
      await identity.register({ email: "restart@example.com", password: "again1234" });
      token = (await identity.login({ email: "restart@example.com", password: "again1234" })).accessToken;
    } finally {
      await first.shutdown();
    }
    const second = await startIdentity(configFor(dbName, { JWT_KEY_DIR: dir }));
    try {
      const { user } = await clients.dial(IdentityService, `127.0.0.1:${second.port}`).getMe({}, bearer(token));
      expect(user?.email).to.equal("restart@example.com");
    } finally {
      await second.shutdown();
    }
  });

  it("comes from JWT_PRIVATE_KEY_FILE when that is set", async () => {
    const file = join(dir, "given.pem");
    const pem = newKeyPem();
    await writeFile(file, pem, { mode: 0o600 });
    const server = await startIdentity(configFor(dbName, { JWT_PRIVATE_KEY_FILE: file, JWT_KEY_DIR: join(dir, "unused") }));
    try {
      const { keys } = (await (await fetch(`http://127.0.0.1:${server.adminPort}${JWKS_PATH}`)).json()) as { keys: { kid: string }[] };
      expect(keys.map((k) => k.kid)).to.deep.equal([(await signingKeyFromPem(pem)).kid]);
    } finally {
      await server.shutdown();
    }
  });

  it("stops the start with a ConfigError naming JWT_PRIVATE_KEY_FILE when the file cannot be read", async () => {
    const err = await startIdentity(configFor(dbName, { JWT_PRIVATE_KEY_FILE: join(dir, "missing.pem") })).catch((e) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as ConfigError).variable).to.equal("JWT_PRIVATE_KEY_FILE");
  });
});

describe("identity configuration", () => {
  it("names TOKEN_TTL_SECONDS when it is not a number", () => {
    expect(() => identityConfig({ TOKEN_TTL_SECONDS: "abc" }))
      .to.throw(ConfigError, /TOKEN_TTL_SECONDS/)
      .with.property("variable", "TOKEN_TTL_SECONDS");
  });

  it("refuses a TOKEN_TTL_SECONDS of 0 or less", () => {
    expect(() => identityConfig({ TOKEN_TTL_SECONDS: "0" })).to.throw(ConfigError, /TOKEN_TTL_SECONDS/);
  });

  it("keeps the dev key under the repo root whatever the working directory", () => {
    expect(identityConfig({}).JWT_KEY_DIR).to.equal(join(ROOT, ".cache", "identity"));
  });
});
