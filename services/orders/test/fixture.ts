// What orders tests stand on: real catalog and payment servers (in-process, real gRPC, real database),
// and a signing key of our own standing in for identity (orders only needs its public half).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Client } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import mongoose, { type Connection } from "mongoose";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { OrderService } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { clientPool, openDatabase, type RunningServer } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { catalogConfig, startCatalog } from "../../catalog/src/server.js";
import { paymentConfig, startPayment } from "../../payment/src/server.js";
import { ordersPeerEnv } from "../src/peers.js";

export const APPROVE = { number: "4242424242424242", expMonth: 12, expYear: 2099, cvc: "123" };
export const DECLINE = { ...APPROVE, number: "4000000000000002" };
export const NO_FUNDS = { ...APPROVE, number: "4000000000009995" };

export interface Peers {
  catalog: RunningServer;
  payment: RunningServer;
  catalogClient: Client<typeof CatalogService>;
  paymentClient: Client<typeof PaymentService>;
  /** Serves the test key as a JWKS over HTTP, as identity's admin port does. */
  jwksUrl: string;
  jwks: { keys: JWK[] };
  token(sub: string, opts?: { expiresIn?: string | number; email?: string }): Promise<string>;
  mongoUri: string;
  dbNames: { orders: string; catalog: string; payment: string };
  stop(): Promise<void>;
}

/** `mongoUri`: where the peers (and ordersEnv) point, the test database unless given (a counting proxy, say). */
export async function startPeers(opts: { mongoUri?: string } = {}): Promise<Peers> {
  const mongoUri = opts.mongoUri ?? testMongoUri();
  const names = { catalog: uniqueDbName("o_catalog"), payment: uniqueDbName("o_payment"), orders: uniqueDbName("orders") };
  const base = { MONGODB_URI: mongoUri, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1" };
  const catalog = await startCatalog(catalogConfig({ ...base, DB_NAME: names.catalog }));
  const payment = await startPayment(paymentConfig({ ...base, DB_NAME: names.payment }));
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "test", alg: "EdDSA", use: "sig" }] };
  const http: Server = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(jwks)));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const clients = clientPool();
  return {
    catalog,
    payment,
    catalogClient: clients.dial(CatalogService, `127.0.0.1:${catalog.port}`),
    paymentClient: clients.dial(PaymentService, `127.0.0.1:${payment.port}`),
    jwksUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}/.well-known/jwks.json`,
    jwks,
    mongoUri,
    dbNames: names,
    token: (sub, opts = {}) =>
      new SignJWT({ email: opts.email ?? `${sub}@example.com` })
        .setProtectedHeader({ alg: "EdDSA", kid: "test" })
        .setSubject(sub)
        .setIssuer("meshmart-identity")
        .setAudience("meshmart")
        .setIssuedAt()
        .setExpirationTime(opts.expiresIn ?? "10m")
        .sign(privateKey),
    async stop() {
      await catalog.shutdown();
      await payment.shutdown();
      await new Promise((r) => http.close(r));
      clients.close();
      for (const n of Object.values(names)) await dropDatabase(n);
    },
  };
}

/**
 * For a describe block whose tests drive orders' saga or recovery themselves: the peers and an orders database,
 * open for the whole block (read them inside the tests). `paymentDb()` is the in-process payment server's own
 * connection, for its ledger and models.
 */
export function sagaBench(): { readonly peers: Peers; readonly db: Connection; paymentDb(): Connection } {
  let peers: Peers | undefined;
  let db: Connection | undefined;
  before(async () => {
    peers = await startPeers();
    db = await openDatabase(peers.mongoUri, peers.dbNames.orders);
  });
  after(async () => {
    await db?.close();
    await peers?.stop();
  });
  const bench = {
    get peers() {
      if (!peers) throw new Error("sagaBench: read the peers inside a test (they start in before())");
      return peers;
    },
    get db() {
      if (!db) throw new Error("sagaBench: read the database inside a test (it opens in before())");
      return db;
    },
    paymentDb: () => mongoose.connections.find((c) => c.name === bench.peers.dbNames.payment) as Connection,
  };
  return bench;
}

export function ordersEnv(peers: Peers, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MONGODB_URI: peers.mongoUri,
    DB_NAME: peers.dbNames.orders,
    PORT: "0",
    ADMIN_PORT: "0",
    HOST: "127.0.0.1",
    ...ordersPeerEnv({ catalog: `127.0.0.1:${peers.catalog.port}`, payment: `127.0.0.1:${peers.payment.port}`, jwksUrl: peers.jwksUrl }),
    ...extra,
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export { OrderService };
