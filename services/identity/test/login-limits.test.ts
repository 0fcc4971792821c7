// Login throttling over real gRPC + the real database, with a clock the test moves (no sleeps).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { expect } from "chai";
import { RetryInfoSchema } from "#gen/google/rpc/error_details_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { ConfigError, clientPool, errorReason, type RunningServer } from "#kit";
import { dropDatabase, serverEnv, uniqueDbName } from "../../../test/support/db.js";
import { rejection } from "../../../test/support/rejection.js";
import { loginSource } from "../src/identity-service.js";
import { backoffMs } from "../src/login-limits.js";
import { identityConfig, startIdentity } from "../src/server.js";

describe("identity login throttling", () => {
  const clients = clientPool();
  let server: RunningServer;
  let identity: Client<typeof IdentityService>;
  let keyDir: string;
  let clock = Date.parse("2026-01-01T00:00:00Z");
  const dbName = uniqueDbName("login_limits");
  // Behind one trusted proxy, so the test can speak from several sources over one loopback connection.
  const from = (ip: string) => ({ headers: { "x-forwarded-for": `203.0.113.250, ${ip}` } });

  before(async () => {
    keyDir = await mkdtemp(join(tmpdir(), "meshmart-login-keys-"));
    const config = identityConfig({
      ...serverEnv(dbName),
      JWT_KEY_DIR: keyDir,
      TRUSTED_PROXY_HOPS: "1",
      LOGIN_PAIR_FREE_FAILURES: "3",
      LOGIN_SOURCE_FREE_FAILURES: "6",
      LOGIN_ACCOUNT_FREE_SOURCES: "4",
      LOGIN_BACKOFF_BASE_MS: "1000",
      LOGIN_BACKOFF_CAP_MS: "60000",
    });
    server = await startIdentity(config, { now: () => clock });
    identity = clients.dial(IdentityService, `127.0.0.1:${server.port}`);
    for (const email of ["victim@example.com", "other@example.com", "spread@example.com"]) await identity.register({ email, password: "correct-horse-1" });
  });
  after(async () => {
    await server.shutdown();
    clients.close();
    await dropDatabase(dbName);
    await rm(keyDir, { recursive: true, force: true });
  });

  const wrong = (email: string, ip: string) => rejection(identity.login({ email, password: "wrong-guess-1" }, from(ip)));

  it("slows one source on one account after the free failures, with RESOURCE_EXHAUSTED and RetryInfo", async () => {
    for (let i = 0; i < 3; i++) expect((await wrong("victim@example.com", "198.51.100.1")).code).to.equal(Code.Unauthenticated);
    const blocked = await rejection(identity.login({ email: "victim@example.com", password: "correct-horse-1" }, from("198.51.100.1")));
    expect(blocked.code).to.equal(Code.ResourceExhausted);
    expect(errorReason(blocked)).to.equal("LOGIN_THROTTLED");
    const retry = blocked.findDetails(RetryInfoSchema)[0];
    expect(retry?.retryDelay && durationMs(retry.retryDelay)).to.equal(1000);
  });

  it("lets the right password in once the backoff has passed", async () => {
    clock += 1000;
    const { user } = await identity.login({ email: "victim@example.com", password: "correct-horse-1" }, from("198.51.100.1"));
    expect(user?.email).to.equal("victim@example.com");
  });

  it("doubles the wait with every further failure, up to the cap", async () => {
    expect([1, 2, 3, 10, 30].map((n) => backoffMs(n, { baseMs: 1000, capMs: 60_000 }))).to.deep.equal([1000, 2000, 4000, 60_000, 60_000]);
    for (let i = 0; i < 3; i++) await wrong("other@example.com", "198.51.100.2");
    expect((await wrong("other@example.com", "198.51.100.2")).code).to.equal(Code.ResourceExhausted); // blocked: not counted
    clock += 1000;
    expect((await wrong("other@example.com", "198.51.100.2")).code).to.equal(Code.Unauthenticated); // 4th failure
    const next = await rejection(identity.login({ email: "other@example.com", password: "correct-horse-1" }, from("198.51.100.2")));
    expect(durationMs(next.findDetails(RetryInfoSchema)[0].retryDelay!)).to.equal(2000);
    clock += 2000;
  });

  it("does not lock the real user out from another source while one source hammers the account", async () => {
    for (let i = 0; i < 20; i++) {
      clock += 60_000; // the attacker waits out every block and keeps going
      await wrong("victim@example.com", "198.51.100.66");
    }
    expect((await wrong("victim@example.com", "198.51.100.66")).code).to.equal(Code.ResourceExhausted);
    const { user } = await identity.login({ email: "victim@example.com", password: "correct-horse-1" }, from("192.0.2.10"));
    expect(user?.email).to.equal("victim@example.com");
  });

  it("slows one source spraying many accounts", async () => {
    for (let i = 0; i < 6; i++) expect((await wrong(`nobody${i}@example.com`, "198.51.100.9")).code).to.equal(Code.Unauthenticated);
    expect((await wrong("nobody-else@example.com", "198.51.100.9")).code).to.equal(Code.ResourceExhausted);
  });

  it("slows an account attacked from many sources, for at most the cap", async () => {
    for (let i = 1; i <= 4; i++) await wrong("spread@example.com", `198.51.100.${100 + i}`);
    const blocked = await rejection(identity.login({ email: "spread@example.com", password: "correct-horse-1" }, from("192.0.2.11")));
    expect(blocked.code).to.equal(Code.ResourceExhausted);
    expect(durationMs(blocked.findDetails(RetryInfoSchema)[0].retryDelay!)).to.be.at.most(60_000);
    clock += 60_000;
    const { user } = await identity.login({ email: "spread@example.com", password: "correct-horse-1" }, from("192.0.2.11"));
    expect(user?.email).to.equal("spread@example.com");
  });

  it("counts concurrent first failures without failing a login (a duplicate-key race was INTERNAL)", async () => {
    const codes = await Promise.all(Array.from({ length: 12 }, () => wrong("race@example.com", "198.51.100.200").then((e) => Code[e.code])));
    expect(codes.filter((c) => c !== "Unauthenticated" && c !== "ResourceExhausted")).to.deep.equal([]);
  });

  it("takes the source from x-forwarded-for only as far as the proxies are trusted", () => {
    expect(loginSource("10.0.0.5", "1.2.3.4, 5.6.7.8", 0)).to.equal("10.0.0.5");
    expect(loginSource("10.0.0.5", "1.2.3.4, 5.6.7.8", 1)).to.equal("5.6.7.8"); // the client cannot choose this one
    expect(loginSource("10.0.0.5", "1.2.3.4, 5.6.7.8", 2)).to.equal("1.2.3.4");
    expect(loginSource("10.0.0.5", "5.6.7.8", 2)).to.equal("10.0.0.5");
    expect(loginSource("10.0.0.5", null, 1)).to.equal("10.0.0.5");
  });

  it("names the variable of a bad limit setting", () => {
    expect(() => identityConfig({ LOGIN_BACKOFF_CAP_MS: "10", LOGIN_BACKOFF_BASE_MS: "100" }))
      .to.throw(ConfigError, "LOGIN_BACKOFF_CAP_MS")
      .with.property("variable", "LOGIN_BACKOFF_CAP_MS");
    expect(() => identityConfig({ TRUSTED_PROXY_HOPS: "-1" })).to.throw(ConfigError, "TRUSTED_PROXY_HOPS");
  });
});
