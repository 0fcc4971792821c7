// Access: every RPC that needs a user refuses missing and bad tokens; users see only their own orders;
// passwords and card numbers never reach the logs (captured at debug level across a flow and its error paths).
// Who may call what: catalog's reads are public by design; IdentityService/GetMe and every OrderService RPC
// need a user (tested here). payment (all of it) and catalog's ReserveStock/ReleaseStock/CommitReservation are
// internal, called by orders only: they carry no user check in the code. In the cluster the mesh's
// deny-by-default AuthorizationPolicy admits only orders' ServiceAccount to them; locally nothing but the
// network does — `npm start` binds every service to 127.0.0.1 (a service started by hand binds HOST=0.0.0.0).
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code } from "@connectrpc/connect";
import { expect } from "chai";
import { SignJWT } from "jose";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { clientPool } from "#kit";
import { DEV_KEY_FILE, signingKeyFromPem, tokenIssuer } from "../services/identity/src/tokens.js";
import { type Stack, serviceTargets, startStack } from "../tools/stack/launcher.js";
import { rejection } from "./support/rejection.js";

// Distinctive values, so a hit in the logs can only come from them.
const PASSWORD = "Quetzal-8841-Hush";
const WRONG_PASSWORD = "Quetzal-8841-Wrong";
const WEAK_PASSWORD = "quetzalonlyletters";
const CARD = "4929381277331108"; // passes Luhn, approves
const BAD_LUHN_CARD = "4929381277331105";
const NOT_A_CARD = "49293812773311ab";

describe("access", function () {
  this.timeout(60_000);
  const lines: string[] = [];
  const clients = clientPool();
  let stack: Stack;
  let keyDir: string;
  let targets: ReturnType<typeof serviceTargets>;
  let identity: Client<typeof IdentityService>;
  let orders: Client<typeof OrderService>;
  let alice: string;
  let bob: string;
  let aliceOrder: string;
  const badTokens: Record<string, string> = {};

  before(async () => {
    keyDir = await mkdtemp(join(tmpdir(), "meshmart-access-keys-"));
    // Every line every service writes, at debug level, whatever its length.
    stack = await startStack({ logLevel: "debug", env: { identity: { JWT_KEY_DIR: keyDir } }, onOutput: (_u, text) => lines.push(text) });
    targets = serviceTargets(stack);
    identity = clients.dial(IdentityService, targets.identity);
    orders = clients.dial(OrderService, targets.orders);
    for (const email of ["alice@example.com", "bob@example.com"]) await identity.register({ email, password: PASSWORD });
    alice = (await identity.login({ email: "alice@example.com", password: PASSWORD })).accessToken;
    bob = (await identity.login({ email: "bob@example.com", password: PASSWORD })).accessToken;

    // Tokens signed with identity's own key but wrong in one claim, and tokens not signed by identity at all.
    const key = await signingKeyFromPem(await readFile(join(keyDir, DEV_KEY_FILE), "utf8"));
    const user = { id: "00000000-0000-4000-8000-000000000001", email: "alice@example.com" };
    const settings = { issuer: "meshmart-identity", audience: "meshmart", ttlSeconds: 60 };
    badTokens.expired = (await tokenIssuer(key, settings).issue(user, new Date(Date.now() - 3_600_000))).token;
    badTokens["wrong audience"] = (await tokenIssuer(key, { ...settings, audience: "someone-else" }).issue(user)).token;
    badTokens["wrong issuer"] = (await tokenIssuer(key, { ...settings, issuer: "evil-identity" }).issue(user)).token;
    const other = generateKeyPairSync("ed25519").privateKey;
    badTokens["wrongly signed"] = await new SignJWT({ email: user.email })
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid })
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setSubject(user.id)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(other);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const claims = { iss: settings.issuer, aud: settings.audience, sub: user.id, exp: Math.floor(Date.now() / 1000) + 300 };
    badTokens["alg none"] = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
    // Algorithm confusion: HS256 keyed with the public key, as if it were a shared secret.
    const { createHmac } = await import("node:crypto");
    const head = `${b64({ alg: "HS256", kid: key.kid })}.${b64(claims)}`;
    badTokens["HS256 with the public key"] = `${head}.${createHmac("sha256", JSON.stringify(key.jwks.keys[0])).update(head).digest("base64url")}`;
    badTokens["no expiry"] = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid })
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setSubject(user.id)
      .sign(key.privateKey);
    badTokens.garbage = "not.a.jwt";
  });
  after(async () => {
    clients.close();
    await stack?.stop();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  const order = (key: string, card = CARD) => ({
    idempotencyKey: key,
    items: [{ sku: "mug-blue", quantity: 1 }],
    card: { number: card, expMonth: 12, expYear: 2099, cvc: "123" },
  });
  const userRpcs = {
    "IdentityService/GetMe": (h: HeadersInit) => identity.getMe({}, { headers: h }),
    "OrderService/PlaceOrder": (h: HeadersInit) => orders.placeOrder(order("access-1"), { headers: h }),
    "OrderService/GetOrder": (h: HeadersInit) => orders.getOrder({ orderId: "some-order" }, { headers: h }),
    "OrderService/ListOrders": (h: HeadersInit) => orders.listOrders({}, { headers: h }),
  };

  it("refuses every RPC that needs a user without a token, or with an expired, forged or wrong token", async () => {
    const seen: string[] = [];
    for (const [rpc, call] of Object.entries(userRpcs)) {
      seen.push(`${rpc} none: ${Code[(await rejection(call({}))).code]}`);
      seen.push(`${rpc} not bearer: ${Code[(await rejection(call({ authorization: `Basic ${btoa("alice:x")}` }))).code]}`);
      for (const [name, token] of Object.entries(badTokens))
        seen.push(`${rpc} ${name}: ${Code[(await rejection(call({ authorization: `Bearer ${token}` }))).code]}`);
    }
    expect(seen.filter((s) => !s.endsWith("Unauthenticated"))).to.deep.equal([]);
    expect(seen).to.have.length(4 * (2 + 8));
  });

  it("checks the token before the input: an anonymous malformed call is UNAUTHENTICATED, not INVALID_ARGUMENT", async () => {
    // An empty PlaceOrder breaks several input rules, and an empty GetOrder one; with a valid token both are
    // INVALID_ARGUMENT, without one they must say nothing about the contract's rules.
    expect((await rejection(orders.placeOrder({}))).code).to.equal(Code.Unauthenticated);
    expect((await rejection(orders.getOrder({}))).code).to.equal(Code.Unauthenticated);
    const auth = { headers: { authorization: `Bearer ${alice}` } };
    expect((await rejection(orders.placeOrder({}, auth))).code).to.equal(Code.InvalidArgument);
    expect((await rejection(orders.getOrder({}, auth))).code).to.equal(Code.InvalidArgument);
  });

  it("shows a user only their own orders", async () => {
    const placed = await orders.placeOrder(order("alice-1"), { headers: { authorization: `Bearer ${alice}` } });
    aliceOrder = placed.order?.orderId ?? "";
    expect(placed.order?.userId).to.not.equal("");
    const err = await rejection(orders.getOrder({ orderId: aliceOrder }, { headers: { authorization: `Bearer ${bob}` } }));
    expect(err.code).to.equal(Code.NotFound); // as for an unknown id: no existence leak
    const bobs = await orders.listOrders({}, { headers: { authorization: `Bearer ${bob}` } });
    expect(bobs.orders.map((o) => o.orderId)).to.not.include(aliceOrder);
    const alices = await orders.listOrders({}, { headers: { authorization: `Bearer ${alice}` } });
    expect(alices.orders.map((o) => o.orderId)).to.include(aliceOrder);
    // The same idempotency key from another user is another order, not a way into Alice's.
    const bobsOrder = await orders.placeOrder(order("alice-1"), { headers: { authorization: `Bearer ${bob}` } });
    expect(bobsOrder.order?.orderId).to.not.equal(aliceOrder);
  });

  it("never writes a password or a card number to the logs, error paths included", async () => {
    const auth = { headers: { authorization: `Bearer ${alice}` } };
    // Each of these fails somewhere (wrong password, weak password, taken e-mail, Luhn, pattern, expired card):
    // what matters here is what the services logged on the way, not the answer.
    const settle = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e: Error) => e.message,
      );
    const payment = clients.dial(PaymentService, targets.payment);
    const outcomes = [
      await settle(identity.login({ email: "alice@example.com", password: WRONG_PASSWORD })),
      await settle(identity.register({ email: "weak@example.com", password: WEAK_PASSWORD })),
      await settle(identity.register({ email: "alice@example.com", password: PASSWORD })),
      await settle(orders.placeOrder(order("bad-luhn", BAD_LUHN_CARD), auth)),
      await settle(orders.placeOrder(order("not-a-card", NOT_A_CARD), auth)),
      await settle(
        payment.charge({
          idempotencyKey: "direct",
          orderId: "o-direct",
          amount: { currencyCode: "USD", units: 5n },
          card: { number: CARD, expMonth: 1, expYear: 2001 },
        }),
      ),
      await settle(
        payment.charge({
          idempotencyKey: "direct2",
          orderId: "o-direct2",
          amount: { currencyCode: "USD", units: 5n },
          card: { number: BAD_LUHN_CARD, expMonth: 1, expYear: 2099 },
        }),
      ),
      await settle(orders.placeOrder(order("card-ok"), auth)),
    ];
    for (const o of outcomes) for (const secret of [PASSWORD, WRONG_PASSWORD, WEAK_PASSWORD, CARD, BAD_LUHN_CARD, NOT_A_CARD]) expect(o).to.not.include(secret);
    await new Promise((r) => setImmediate(r)); // pino writes asynchronously to the sink
    const text = lines.join("");
    expect(lines.length, "the flow was logged at debug level").to.be.greaterThan(10);
    for (const secret of [PASSWORD, WRONG_PASSWORD, WEAK_PASSWORD, CARD, BAD_LUHN_CARD, NOT_A_CARD, CARD.slice(0, 12), alice])
      expect(text.includes(secret), `"${secret}" appears in the logs`).to.equal(false);
  });
});
