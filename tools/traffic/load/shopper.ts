// The shoppers: the clients, the users registered up front, and one function per op that makes the call
// and answers with its gRPC code name. The random choices (which user, which product, which words) are
// made before the first await, so with a seeded generator the calls made are the same run after run.
import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { createGrpcJsTransport } from "#kit";
import { xdsChannelOptions } from "../../stack/mesh/bootstrap.js";
import type { Op, Rng } from "./mix.js";

/** "host:port" of each service; in monolith mode (or behind one ingress) all the same address. */
export interface LoadTargets {
  identity: string;
  catalog: string;
  orders: string;
  payment?: string;
  /**
   * The load generator's own xDS bootstrap (JSON) when the targets are `xds:///` ones: it is then a client in
   * the local mesh with a workload identity of its own (tools/stack/mesh/bootstrap.ts), on the routes a caller in
   * the cluster would take.
   */
  xdsBootstrap?: string;
}

export interface PlacedOrder {
  /** Empty when the call failed before an order came back. */
  orderId: string;
  idempotencyKey: string;
  code: string;
  /** The order's state as answered: CONFIRMED, FAILED or PENDING. */
  status?: string;
  /** Email of the shopper who placed it (GetOrder answers only to the owner; the password is LOAD_PASSWORD). */
  user: string;
}

/** The load's users all share this password: they are throwaway accounts on test stacks, nothing secret. */
export const LOAD_PASSWORD = "load-shopper-1";
/** The payment service's test card that always approves (services/payment/src/cards.ts). */
export const APPROVED_CARD = { number: "4242424242424242", expMonth: 12, expYear: 2099, cvc: "123" };

/** "deadline_exceeded" from Code.DeadlineExceeded: grpc's own names, lower case. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The code of a call's outcome: "ok", or the error's gRPC code name ("unknown" for anything that is not a gRPC error). */
export function codeOf(err: unknown): string {
  return codeName(ConnectError.from(err).code);
}

interface Shopper {
  email: string;
  token: string;
}

export interface Shop {
  ops: Record<Op, () => Promise<string>>;
  placedOrders: PlacedOrder[];
  /** Products and users found or made by the setup. */
  setup: { products: number; users: number; runId: string };
  close(): void;
}

/** Runs `fn` over `items`, `limit` at a time (the setup's scrypt hashes should not swamp identity). */
async function inBatches<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += limit) out.push(...(await Promise.all(items.slice(i, i + limit).map(fn))));
  return out;
}

/**
 * Opens one kit channel per address (not the process-wide `dial` cache: closing that would also close
 * the channels of services running in the same process), registers and logs in `users` shoppers and
 * reads the catalog. Setup failures throw: a run against a stack that is not up says so at once.
 */
export async function openShop(targets: LoadTargets, o: { users: number; deadlineMs: number; rng: Rng }): Promise<Shop> {
  const transports = new Map<string, ReturnType<typeof createGrpcJsTransport>>();
  const transportFor = (address: string) => {
    let t = transports.get(address);
    const channelOptions = targets.xdsBootstrap ? xdsChannelOptions(targets.xdsBootstrap) : undefined;
    if (!t) transports.set(address, (t = createGrpcJsTransport({ target: address, defaultTimeoutMs: o.deadlineMs, channelOptions })));
    return t;
  };
  const close = () => {
    for (const t of transports.values()) t.close();
  };
  try {
    const identity: Client<typeof IdentityService> = createClient(IdentityService, transportFor(targets.identity));
    const catalog: Client<typeof CatalogService> = createClient(CatalogService, transportFor(targets.catalog));
    const orders: Client<typeof OrderService> = createClient(OrderService, transportFor(targets.orders));
    const call = { timeoutMs: o.deadlineMs };
    const setupCall = { timeoutMs: Math.max(o.deadlineMs, 30_000) }; // scrypt on a busy machine is slow

    const runId = randomUUID().slice(0, 8); // the database outlives runs: emails and keys must be new each time
    const shoppers: Shopper[] = await inBatches(
      Array.from({ length: o.users }, (_, i) => `load-${runId}-${i}@example.com`),
      4,
      async (email) => {
        await identity.register({ email, password: LOAD_PASSWORD, displayName: "load shopper" }, setupCall);
        const { accessToken } = await identity.login({ email, password: LOAD_PASSWORD }, setupCall);
        return { email, token: accessToken };
      },
    );

    const products: { sku: string; name: string; categories: string[] }[] = [];
    let pageToken = "";
    do {
      const page = await catalog.listProducts({ pageSize: 100, pageToken }, setupCall);
      products.push(...page.products);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (products.length === 0) throw new Error("the catalog has no products: nothing to browse or order");
    const skus = products.map((p) => p.sku);
    const categories = [...new Set(products.flatMap((p) => p.categories))];
    const words = [...new Set(products.flatMap((p) => p.name.toLowerCase().split(/\W+/)).filter((w) => w.length >= 3))];

    const placedOrders: PlacedOrder[] = [];
    let orderSeq = 0;
    const bearer = (s: Shopper) => ({ ...call, headers: { authorization: `Bearer ${s.token}` } });
    const settle = (p: Promise<unknown>) => p.then(() => "ok", codeOf);

    const ops: Record<Op, () => Promise<string>> = {
      browse: () => {
        const category = categories.length && o.rng.int(0, 1) ? o.rng.pick(categories) : "";
        return settle(catalog.listProducts({ pageSize: 12, category }, call));
      },
      search: () => settle(catalog.searchProducts({ query: o.rng.pick(words.length ? words : skus), pageSize: 10 }, call)),
      getProduct: () => settle(catalog.getProduct({ sku: o.rng.pick(skus) }, call)),
      login: () => {
        const shopper = o.rng.pick(shoppers);
        return settle(
          identity.login({ email: shopper.email, password: LOAD_PASSWORD }, call).then((r) => {
            shopper.token = r.accessToken; // later orders use the fresh token
          }),
        );
      },
      placeOrder: () => {
        const shopper = o.rng.pick(shoppers);
        const first = o.rng.int(0, skus.length - 1);
        const lines = o.rng.int(1, Math.min(2, skus.length));
        const items = Array.from({ length: lines }, (_, k) => ({ sku: skus[(first + k) % skus.length], quantity: 1 }));
        const idempotencyKey = `load-${runId}-${orderSeq++}`;
        const placed: PlacedOrder = { orderId: "", idempotencyKey, code: "unknown", user: shopper.email };
        placedOrders.push(placed);
        return orders.placeOrder({ idempotencyKey, items, card: APPROVED_CARD }, bearer(shopper)).then(
          ({ order }) => {
            placed.code = "ok";
            placed.orderId = order?.orderId ?? "";
            placed.status = order ? OrderState[order.state] : undefined;
            return "ok";
          },
          (err) => (placed.code = codeOf(err)),
        );
      },
    };
    return { ops, placedOrders, setup: { products: products.length, users: shoppers.length, runId }, close };
  } catch (err) {
    close();
    throw err;
  }
}
