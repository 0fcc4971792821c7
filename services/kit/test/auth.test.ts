import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { expect } from "chai";
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { authenticate, currentUser, remoteKeys } from "#kit";

describe("authenticate", () => {
  let privateKey: CryptoKey;
  let client: ReturnType<typeof createClient<typeof CatalogService>>;

  const sign = (claims: JWTPayload, opts: { exp?: number | string | false; aud?: string } = {}) => {
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: "k1" })
      .setIssuer("meshmart-identity")
      .setAudience(opts.aud ?? "meshmart")
      .setSubject("alice");
    if (opts.exp !== false) jwt.setExpirationTime(opts.exp ?? "5m");
    return jwt.sign(privateKey);
  };
  const call = (token?: string) =>
    client.getProduct({ sku: "x" }, { headers: token ? { authorization: `Bearer ${token}` } : {} }).then(
      (r) => r.product?.name,
      (e) => ConnectError.from(e),
    );

  before(async () => {
    const pair = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    privateKey = pair.privateKey as CryptoKey;
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "EdDSA" }] };
    const transport = createRouterTransport(
      ({ service }) => service(CatalogService, { getProduct: (_req, ctx) => ({ product: { name: currentUser(ctx).id } }) }),
      {
        router: { interceptors: [authenticate({ keys: createLocalJWKSet(jwks), issuer: "meshmart-identity", audience: "meshmart" })] },
      },
    );
    client = createClient(CatalogService, transport);
  });

  it("puts the token's subject in the context", async () => {
    expect(await call(await sign({}))).to.equal("alice");
  });

  it("answers UNAUTHENTICATED without a token, for an expired one, one without exp, and one for another audience", async () => {
    for (const token of [
      undefined,
      await sign({}, { exp: Math.floor(Date.now() / 1000) - 10 }),
      await sign({}, { exp: false }),
      await sign({}, { aud: "elsewhere" }),
    ]) {
      const r = await call(token);
      expect(r).to.be.instanceOf(ConnectError);
      expect((r as ConnectError).code).to.equal(Code.Unauthenticated);
    }
  });

  it("answers UNAVAILABLE when the signing keys cannot be fetched", async () => {
    const transport = createRouterTransport(({ service }) => service(CatalogService, { getProduct: () => ({}) }), {
      router: {
        interceptors: [authenticate({ keys: remoteKeys("http://127.0.0.1:9/.well-known/jwks.json"), issuer: "meshmart-identity", audience: "meshmart" })],
      },
    });
    const err = await createClient(CatalogService, transport)
      .getProduct({ sku: "x" }, { headers: { authorization: `Bearer ${await sign({})}` } })
      .catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).to.equal(Code.Unavailable);
  });
});
