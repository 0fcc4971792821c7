// Signing-key rotation under load (issue 12 item 7): real identity rotating every 3 s (tokens live 5 s) and
// real orders verifying through identity's JWKS over HTTP (the kit's remoteKeys, as deployed). Shoppers keep
// logging in and calling orders and identity with every token they hold that has not expired: across several
// rotations no call may be UNAUTHENTICATED. Afterwards the first key is gone from the JWKS, and tokens it
// signed are refused, expired or not.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { clientPool, type RunningServer } from "#kit";
import { KEY_RING_FILE } from "../services/identity/src/key-ring.js";
import { identityConfig, JWKS_PATH, startIdentity } from "../services/identity/src/server.js";
import { signingKeyFromPem, tokenIssuer } from "../services/identity/src/tokens.js";
import { ordersConfig, startOrders } from "../services/orders/src/server.js";
import { bearer, OrderService, ordersEnv, type Peers, startPeers } from "../services/orders/test/fixture.js";
import { dropDatabase, serverEnv, uniqueDbName } from "./support/db.js";

const ROTATE_S = 3;
const TTL_S = 5;

describe("signing-key rotation under load (identity + orders, real processes' code over real sockets)", function () {
  this.timeout(120_000);
  const clients = clientPool();
  let keyDir: string;
  let identityServer: RunningServer;
  let ordersServer: RunningServer;
  let peers: Peers;
  const dbName = uniqueDbName("identity_rotation");

  before(async () => {
    keyDir = await mkdtemp(join(tmpdir(), "meshmart-rotation-"));
    identityServer = await startIdentity(
      identityConfig({
        ...serverEnv(dbName),
        JWT_KEY_DIR: keyDir,
        JWT_ROTATE_SECONDS: String(ROTATE_S),
        TOKEN_TTL_SECONDS: String(TTL_S),
        PASSWORD_HASH_LN: "10",
      }),
    );
    peers = await startPeers();
    ordersServer = await startOrders(ordersConfig(ordersEnv(peers, { IDENTITY_JWKS_URL: `http://127.0.0.1:${identityServer.adminPort}${JWKS_PATH}` })));
  });
  after(async () => {
    clients.close();
    await ordersServer?.shutdown();
    await identityServer?.shutdown();
    await peers?.stop();
    await dropDatabase(dbName);
    await rm(keyDir, { recursive: true, force: true });
  });

  it("answers every unexpired token across rotations, then refuses the dropped key's tokens", async () => {
    const identity = clients.dial(IdentityService, `127.0.0.1:${identityServer.port}`);
    const orders = clients.dial(OrderService, `127.0.0.1:${ordersServer.port}`);
    const jwksKids = async () =>
      ((await (await fetch(`http://127.0.0.1:${identityServer.adminPort}${JWKS_PATH}`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const firstPem = JSON.parse(await readFile(join(keyDir, KEY_RING_FILE), "utf8")).current as string;
    const firstKid = (await signingKeyFromPem(firstPem)).kid;
    const published = await jwksKids();
    expect(published, "current and next, distinct").to.have.length(2);
    expect(new Set(published).size).to.equal(2);

    const users = ["ada", "grace", "edsger"].map((n) => ({ email: `${n}-rot@example.com`, password: "rotation-1234" }));
    for (const u of users) await identity.register(u);
    const tokens: { token: string; exp: number; kid: string }[] = [];
    const login = async (u: (typeof users)[number]) => {
      const { accessToken } = await identity.login(u, { timeoutMs: 5000 });
      tokens.push({ token: accessToken, exp: (decodeJwt(accessToken).exp as number) * 1000, kid: decodeProtectedHeader(accessToken).kid as string });
    };
    for (const u of users) await login(u);
    const firstToken = tokens[0];
    expect(firstToken.kid).to.equal(firstKid);

    const codes: Record<string, number> = {};
    const unauthenticated: string[] = [];
    const count = (c: string) => {
      codes[c] = (codes[c] ?? 0) + 1;
    };
    // Any token with at least 300 ms to live (a call takes less): the load uses old and new keys alike.
    const call = async (i: number) => {
      const live = tokens.filter((t) => t.exp - Date.now() > 300);
      const t = live[i % live.length];
      try {
        if (i % 2) await orders.listOrders({ pageSize: 5 }, { headers: bearer(t.token), timeoutMs: 3000 });
        else await identity.getMe({}, { headers: { authorization: `Bearer ${t.token}` }, timeoutMs: 3000 });
        count("ok");
      } catch (err) {
        const e = ConnectError.from(err);
        count(Code[e.code]);
        if (e.code === Code.Unauthenticated)
          unauthenticated.push(`${i % 2 ? "orders" : "identity"}: kid ${t.kid}, ${t.exp - Date.now()} ms left: ${e.rawMessage}`);
      }
    };
    const seenJwks = new Set<string>();
    const until = Date.now() + (ROTATE_S * 4 + 1) * 1000;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; Date.now() < until; i++) {
      const p = call(i).finally(() => inFlight.delete(p));
      inFlight.add(p);
      // A new login every ~400 ms (round robin), so tokens of every key are in use; the JWKS watched meanwhile.
      if (i % 8 === 0) {
        const l = login(users[i % users.length]).catch((err) => count(`login ${ConnectError.from(err).code}`));
        inFlight.add(l as Promise<void>);
        void l.finally(() => inFlight.delete(l as Promise<void>));
        for (const k of await jwksKids()) seenJwks.add(k);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(inFlight);

    const signingKids = new Set(tokens.map((t) => t.kid));
    expect(signingKids.size, `tokens from ${ROTATE_S * 4} s of rotation every ${ROTATE_S} s`).to.be.at.least(4);
    expect(unauthenticated, JSON.stringify(codes)).to.deep.equal([]);
    expect(codes.ok, JSON.stringify(codes)).to.be.above(100);
    expect(Object.keys(codes), "every call answered OK").to.deep.equal(["ok"]);
    for (const k of signingKids) expect(seenJwks.has(k), `kid ${k} was published`).to.equal(true);

    // The first key retired ~3 s in and its tokens lived 5 s: it is gone from the JWKS now.
    expect(await jwksKids()).to.not.include(firstKid);
    expect(firstToken.exp).to.be.below(Date.now());
    for (const [name, r] of [
      ["orders", orders.listOrders({ pageSize: 5 }, { headers: bearer(firstToken.token), timeoutMs: 3000 })],
      ["identity", identity.getMe({}, { headers: { authorization: `Bearer ${firstToken.token}` }, timeoutMs: 3000 })],
    ] as const)
      await r.then(
        () => expect.fail(`${name} accepted an expired token of a dropped key`),
        (err) => expect(ConnectError.from(err).code, name).to.equal(Code.Unauthenticated),
      );
    // Not only because it expired: a fresh token signed with the dropped key (a leaked old key) is refused too.
    const leaked = (
      await tokenIssuer(await signingKeyFromPem(firstPem), { issuer: "meshmart-identity", audience: "meshmart", ttlSeconds: 600 }).issue({
        id: "someone",
        email: "x@example.com",
      })
    ).token;
    for (const [name, r] of [
      ["orders", orders.listOrders({ pageSize: 5 }, { headers: bearer(leaked), timeoutMs: 3000 })],
      ["identity", identity.getMe({}, { headers: { authorization: `Bearer ${leaked}` }, timeoutMs: 3000 })],
    ] as const)
      await r.then(
        () => expect.fail(`${name} accepted a token of a dropped key`),
        (err) => {
          expect(ConnectError.from(err).code, name).to.equal(Code.Unauthenticated);
          expect(ConnectError.from(err).rawMessage, name).to.equal("invalid token");
        },
      );
  });
});
