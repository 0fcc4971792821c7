// Walks meshmart's whole flow against a running stack (npm start): register → login → list products →
// place an order → read it back. Prints each step; exits 1 when an answer is not what it should be.
//
//   npm run flow                          approved card (4242…): the order ends CONFIRMED
//   npm run flow -- --card 4000000000000002   declined card: the order ends FAILED
//   npm run flow -- --identity 127.0.0.1:50051 --catalog 127.0.0.1:50052 --orders 127.0.0.1:50053
//   npm run flow -- --mesh               through the local mesh of `npm start -- --mesh`, as its client "cli"
//                                        (xds:/// targets; the bootstrap it wrote to .cache/mesh/cli-bootstrap.json)
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { FailureReason, OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { clientPool, formatMoney, toCents } from "#kit";

const { values: args } = parseArgs({
  options: {
    identity: { type: "string", default: "127.0.0.1:50051" },
    catalog: { type: "string", default: "127.0.0.1:50052" },
    orders: { type: "string", default: "127.0.0.1:50053" },
    card: { type: "string", default: "4242424242424242" },
    sku: { type: "string", default: "mug-blue" },
    quantity: { type: "string", default: "1" },
    email: { type: "string" },
    json: { type: "boolean", default: false },
    mesh: { type: "boolean", default: false },
  },
});

if (args.mesh) {
  const xds = (svc: string) => `xds:///${svc}.meshmart.svc.cluster.local:50051`;
  Object.assign(args, { identity: xds("identity"), catalog: xds("catalog"), orders: xds("orders") });
  if (!process.env.GRPC_XDS_BOOTSTRAP && !process.env.GRPC_XDS_BOOTSTRAP_CONFIG) {
    const file = join(import.meta.dirname, "..", "..", ".cache", "mesh", "cli-bootstrap.json");
    if (!existsSync(file)) {
      console.error(`flow: ${file} not found; start the mesh first (npm start -- --mesh)`);
      process.exit(2);
    }
    process.env.GRPC_XDS_BOOTSTRAP = file;
  }
}

const say = (...parts: unknown[]) => !args.json && console.log(...parts);
const clients = clientPool();

async function main() {
  const identity = clients.dial(IdentityService, args.identity);
  const catalog = clients.dial(CatalogService, args.catalog);
  const orders = clients.dial(OrderService, args.orders);
  const email = args.email ?? `shopper-${randomUUID().slice(0, 8)}@example.com`;
  const password = "correct-horse-1";

  const { user } = await identity.register({ email, password, displayName: "Flow Walker" }).catch(async (err) => {
    if (ConnectError.from(err).code !== 6) throw err; // ALREADY_EXISTS: walk again as that user
    return { user: undefined };
  });
  say(`1. registered      ${email}${user ? ` (user ${user.userId})` : " (already registered)"}`);

  const { accessToken } = await identity.login({ email, password });
  const auth = { headers: { authorization: `Bearer ${accessToken}` } };
  say(`2. logged in       token ${accessToken.slice(0, 24)}…`);

  const { products } = await catalog.listProducts({ pageSize: 5 });
  say(`3. products        ${products.map((p) => `${p.sku} (${p.stock} left)`).join(", ")}, …`);
  const stockBefore = (await catalog.getProduct({ sku: args.sku })).product?.stock ?? 0;

  const { order } = await orders.placeOrder(
    {
      idempotencyKey: randomUUID(),
      items: [{ sku: args.sku, quantity: Number(args.quantity) }],
      card: { number: args.card, expMonth: 12, expYear: 2099, cvc: "123" },
    },
    auth,
  );
  if (!order) throw new Error("PlaceOrder returned no order");
  const total = order.total ? formatMoney(toCents(order.total) ?? 0, order.total.currencyCode) : "-";
  say(
    `4. placed order    ${order.orderId}: ${OrderState[order.state]}${order.state === OrderState.FAILED ? ` (${FailureReason[order.failureReason]}: ${order.failureMessage})` : ""}, total ${total}`,
  );

  const read = (await orders.getOrder({ orderId: order.orderId }, auth)).order;
  const stockAfter = (await catalog.getProduct({ sku: args.sku })).product?.stock ?? 0;
  say(`5. read it back    ${read?.orderId}: ${read ? OrderState[read.state] : "missing"}; ${args.sku} stock ${stockBefore} → ${stockAfter}`);

  const result = { email, orderId: order.orderId, state: OrderState[order.state], failureReason: FailureReason[order.failureReason], stockBefore, stockAfter };
  if (args.json) console.log(JSON.stringify(result));
  clients.close();
  // Exit explicitly: with --mesh, grpc-js-xds's client of istiod keeps the event loop alive after the channels close.
  process.exit(read?.state === order.state ? 0 : 1);
}

main().catch((err) => {
  console.error(`flow failed: ${err instanceof Error ? err.message : err}`);
  clients.close();
  process.exit(1);
});
