// Issue 11: mesh/base/mtls.yaml (STRICT) and mesh/base/authorization.yaml enforced by real istiod on the
// services as proxyless gRPC servers (grpc-js-xds XdsServer, RBAC), proven by calls. One secured mesh stack
// (tools/stack/launcher.ts with `mesh`) is shared by every test. Callers are real mesh clients, each with a certificate
// from the stack's CA for one identity: the four services' ServiceAccounts, and "outside" (the ingress
// gateway's identity, which the load generator and `npm run flow` hold locally). The call graph and the
// internal RPCs come from the code (tools/checks/manifests/mesh-policy/code.ts's callGraph), so a new call is covered here
// without editing this file.
// Over 300 lines on purpose: every check runs on that one secured stack, which takes long to start.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { FailureReason, OrderService, OrderState } from "#gen/meshmart/orders/v1/orders_pb.js";
import { PaymentService } from "#gen/meshmart/payment/v1/payment_pb.js";
import { createGrpcJsTransport } from "#kit";
import { callGraph, RPCS, readCode } from "../tools/checks/manifests/mesh-policy/index.js";
import { ROOT } from "../tools/root.js";
import { type Stack, startStack, UNITS, type UnitName } from "../tools/stack/launcher.js";
import { xdsChannelOptions } from "../tools/stack/mesh/bootstrap.js";
import { certificateProviders, LocalCa, principalOf, WorkloadCert } from "../tools/stack/mesh/identities.js";
import { INGRESS_IDENTITY, serviceAccount } from "../tools/stack/mesh/security.js";
import { readDataSet } from "../tools/traffic/data-set.js";
import { runExperiment } from "../tools/traffic/experiment/run.js";
import { grpcurl } from "./support/grpcurl.js";

const CARD = { number: "4242424242424242", expMonth: 12, expYear: 2030, cvc: "123" };
const DECLINED = { ...CARD, number: "4000000000000002" };
const usd = (units: number) => ({ currencyCode: "USD", units: BigInt(units) });
const codeOf = (err: unknown) => Code[ConnectError.from(err).code];
const settle = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (err) => codeOf(err),
  );

/** The services' ServiceAccounts, and the outside caller. */
const CALLERS = ["identity", "catalog", "orders", "payment", "outside"] as const;
type Caller = (typeof CALLERS)[number];
const idOf = (c: Caller) => (c === "outside" ? INGRESS_IDENTITY : serviceAccount(c));

const GRAPH = callGraph(readCode(ROOT));
/** Internal RPCs: every one a service calls on another, and all of PaymentService (nothing outside calls it). */
const INTERNAL = [...new Set([...GRAPH.map((c) => c.rpc.path), ...RPCS.filter((r) => r.service === "PaymentService").map((r) => r.path)])];

describe("mesh security: STRICT mTLS and the AuthorizationPolicies enforced by istiod, proven by calls", function () {
  this.timeout(300_000);
  let stack: Stack;
  let mesh: NonNullable<Stack["mesh"]>;
  const closers: (() => void)[] = [];
  type Clients = {
    identity: Client<typeof IdentityService>;
    catalog: Client<typeof CatalogService>;
    orders: Client<typeof OrderService>;
    payment: Client<typeof PaymentService>;
  };
  const as = {} as Record<Caller, Clients>;

  function clientsFor(bootstrap: object): Clients {
    const make = <S extends DescService>(s: S, target: string) => {
      const t = createGrpcJsTransport({ target, defaultTimeoutMs: 10_000, channelOptions: xdsChannelOptions(JSON.stringify(bootstrap)) });
      closers.push(() => t.close());
      return createClient(s, t);
    };
    return {
      identity: make(IdentityService, mesh.targets.identity),
      catalog: make(CatalogService, mesh.targets.catalog),
      orders: make(OrderService, mesh.targets.orders),
      payment: make(PaymentService, mesh.targets.payment),
    };
  }

  before(async function () {
    this.timeout(480_000);
    stack = await startStack({
      healthTimeoutMs: 240_000, // a loaded 2-core machine can take minutes to start five processes and istiod
      logLevel: "info", // each served call's log line, with the caller's principal
      mesh: {
        clients: ["outside", "load", ...CALLERS.filter((c) => c !== "outside").map((c) => ({ name: `as-${c}`, serviceAccount: c }))],
        certRefreshMs: 1000,
      },
    });
    mesh = stack.mesh as NonNullable<Stack["mesh"]>;
    for (const c of CALLERS) as[c] = clientsFor(mesh.bootstrap(c === "outside" ? "outside" : `as-${c}`));
  });
  after(async () => {
    for (const close of closers) close();
    await stack?.stop();
  });

  /** Served calls of `method` (Service/Method) in a unit's log, with the principal each came from. */
  const servedCalls = (unit: UnitName, method: string) =>
    stack
      .output(unit)
      .split("\n")
      .filter((l) => l.includes('"msg":"rpc"') && l.includes(`"method":"${method}"`))
      .map((l) => JSON.parse(l) as { method: string; code: string; principal?: string });

  let token = "";

  it("the saga through the mesh: orders calls catalog and payment with its own identity (CONFIRMED, and a declined card released)", async () => {
    const outside = as.outside;
    await outside.identity.register({ email: "sec@example.com", password: "correct-horse-1", displayName: "Sec" });
    const { accessToken } = await outside.identity.login({ email: "sec@example.com", password: "correct-horse-1" });
    token = accessToken;
    const headers = { authorization: `Bearer ${accessToken}` };
    // The first saga also brings up orders' xDS channels to catalog and payment (routes, clusters, endpoints, the
    // TLS handshake); on a loaded machine that can outlast a step's deadline, and the order then fails
    // DEPENDENCY_UNAVAILABLE as designed. So: a few orders, the first CONFIRMED one counts.
    let ok = await outside.orders.placeOrder(
      { idempotencyKey: "sec-1", items: [{ sku: "mug-blue", quantity: 1 }], card: CARD },
      { headers, timeoutMs: 60_000 },
    );
    for (let i = 2; i <= 4 && ok.order?.state !== OrderState.CONFIRMED && ok.order?.failureReason === FailureReason.DEPENDENCY_UNAVAILABLE; i++)
      ok = await outside.orders.placeOrder(
        { idempotencyKey: `sec-1-${i}`, items: [{ sku: "mug-blue", quantity: 1 }], card: CARD },
        { headers, timeoutMs: 60_000 },
      );
    expect(ok.order?.state, `failure reason ${ok.order?.failureReason}`).to.equal(OrderState.CONFIRMED);
    const declined = await outside.orders.placeOrder(
      { idempotencyKey: "sec-2", items: [{ sku: "mug-blue", quantity: 1 }], card: DECLINED },
      { headers, timeoutMs: 60_000 },
    );
    expect(declined.order?.state).to.equal(OrderState.FAILED);
    expect(declined.order?.failureReason).to.equal(FailureReason.PAYMENT_DECLINED);
    const orders = principalOf(serviceAccount("orders"));
    for (const [unit, method] of [
      ["catalog-v1", "meshmart.catalog.v1.CatalogService/ReserveStock"],
      ["catalog-v1", "meshmart.catalog.v1.CatalogService/CommitReservation"],
      ["catalog-v1", "meshmart.catalog.v1.CatalogService/ReleaseStock"],
      ["payment", "meshmart.payment.v1.PaymentService/Charge"],
    ] as const) {
      const calls = [...servedCalls(unit, method), ...(unit === "catalog-v1" ? servedCalls("catalog-v2", method) : [])];
      expect(calls.length, `${method} served`).to.be.at.least(1);
      for (const c of calls) expect(c.principal, method).to.equal(orders);
    }
    // The outside caller reached orders with the ingress gateway's identity.
    expect(servedCalls("orders", "meshmart.orders.v1.OrderService/PlaceOrder").map((c) => c.principal)).to.include(principalOf(INGRESS_IDENTITY));
  });

  it("every RPC of the call graph succeeds from the caller's own identity, over mTLS", async () => {
    expect(GRAPH.map((c) => c.caller)).to.have.members(GRAPH.map(() => "orders")); // today only orders calls others
    const o = as.orders;
    const done = new Set<string>();
    const track = async <T>(path: string, p: Promise<T>) => {
      const r = await p;
      done.add(path);
      return r;
    };
    const C = "/meshmart.catalog.v1.CatalogService/";
    const P = "/meshmart.payment.v1.PaymentService/";
    await track(`${C}ReserveStock`, o.catalog.reserveStock({ reservationId: "sec-r1", items: [{ sku: "mug-blue", quantity: 1 }] }));
    await track(`${C}CommitReservation`, o.catalog.commitReservation({ reservationId: "sec-r1" }));
    await o.catalog.reserveStock({ reservationId: "sec-r2", items: [{ sku: "mug-blue", quantity: 1 }] });
    await track(`${C}ReleaseStock`, o.catalog.releaseStock({ reservationId: "sec-r2" }));
    const charged = await track(`${P}Charge`, o.payment.charge({ idempotencyKey: "sec-c1", orderId: "sec-o1", amount: usd(5), card: CARD }));
    await track(`${P}Refund`, o.payment.refund({ idempotencyKey: "sec-f1", paymentId: charged.payment?.paymentId ?? "", amount: usd(5) }));
    const listed = await track(`${P}ListPayments`, o.payment.listPayments({ orderId: "sec-o1" }));
    expect(listed.payments).to.have.length(1);
    for (const c of GRAPH) expect(done.has(c.rpc.path), `${c.rpc.path} (called by ${c.caller} in ${c.where}) not exercised here`).to.equal(true);
  });

  /** One request per internal RPC that would leave a trace in the database if its handler ran. */
  const attempts = (c: Clients, tag: string): Record<string, () => Promise<unknown>> => ({
    "/meshmart.catalog.v1.CatalogService/ReserveStock": () =>
      c.catalog.reserveStock({ reservationId: `deny-${tag}`, items: [{ sku: "mug-blue", quantity: 1 }] }),
    "/meshmart.catalog.v1.CatalogService/CommitReservation": () => c.catalog.commitReservation({ reservationId: "sec-r1" }),
    "/meshmart.catalog.v1.CatalogService/ReleaseStock": () => c.catalog.releaseStock({ reservationId: "sec-r1" }),
    "/meshmart.payment.v1.PaymentService/Charge": () => c.payment.charge({ idempotencyKey: `deny-${tag}`, orderId: `deny-${tag}`, amount: usd(7), card: CARD }),
    "/meshmart.payment.v1.PaymentService/Refund": () => c.payment.refund({ idempotencyKey: `deny-${tag}`, paymentId: "x", amount: usd(1) }),
    "/meshmart.payment.v1.PaymentService/ListPayments": () => c.payment.listPayments({ orderId: "sec-o1" }),
    "/meshmart.payment.v1.PaymentService/GetPayment": () => c.payment.getPayment({ paymentId: "x" }),
  });

  it("every internal RPC from every identity that is not allowed: PERMISSION_DENIED, the handler never ran, one log line at the callee", async () => {
    expect(Object.keys(attempts(as.orders, "x"))).to.have.members(INTERNAL);
    const before = await readDataSet(stack.mongoUri);
    await new Promise((r) => setTimeout(r, 1000)); // earlier calls' log lines (pino writes asynchronously) land before t0
    const t0 = Date.now();
    const outcomes: string[] = [];
    for (const caller of CALLERS) {
      for (const [path, call] of Object.entries(attempts(as[caller], caller))) {
        const allowed = caller === "orders" && GRAPH.some((g) => g.rpc.path === path);
        if (allowed) continue;
        outcomes.push(`${caller} ${path} ${await settle(call())}`);
      }
    }
    expect(outcomes.filter((o) => !o.endsWith(" PermissionDenied"))).to.deep.equal([]);
    expect(outcomes).to.have.length(CALLERS.length * INTERNAL.length - GRAPH.length);
    const after = await readDataSet(stack.mongoUri);
    for (const k of ["payments", "ledger", "reservations", "products"] as const) expect(after[k], k).to.deep.equal(before[k]);

    // The callees logged each refusal once, with the caller's principal and the method, and nothing served.
    await new Promise((r) => setTimeout(r, 1000)); // the callees' last log lines
    const lines = UNITS.flatMap((u) =>
      stack
        .output(u)
        .split("\n")
        .filter((l) => l.trim().startsWith("{")),
    ).map((l) => JSON.parse(l) as { time: number; msg: string; method?: string; principal?: string });
    const refusals = lines.filter((l) => l.time >= t0);
    const refused = refusals.filter((l) => l.msg === "call refused by the mesh authorization policy");
    expect(refused).to.have.length(outcomes.length);
    for (const caller of CALLERS) {
      const n = refused.filter((l) => l.principal === principalOf(idOf(caller))).length;
      expect(n, caller).to.equal(outcomes.filter((o) => o.startsWith(`${caller} `)).length);
    }
    expect(refusals.filter((l) => l.msg === "rpc" && INTERNAL.includes(`/${l.method}`))).to.deep.equal([]);
    expect(UNITS.map((u) => stack.output(u)).join("")).not.to.include(CARD.number); // the payload is never logged (it is never even read)
  });

  it("the outside identity reaches the public RPCs and nothing internal; a service identity cannot call the public ones it does not use", async () => {
    expect(await settle(as.outside.catalog.getProduct({ sku: "mug-blue" }))).to.equal("OK");
    expect(await settle(as.outside.catalog.listProducts({ pageSize: 1 }))).to.equal("OK");
    expect(await settle(as.payment.catalog.getProduct({ sku: "mug-blue" }))).to.equal("PermissionDenied");
    expect(await settle(as.orders.identity.login({ email: "sec@example.com", password: "correct-horse-1" }))).to.equal("PermissionDenied");
  });

  it("a plaintext client cannot reach any mesh port (refused at the connection, not answered), while the local port answers health", async () => {
    for (const u of UNITS) {
      const r = await grpcurl(["-plaintext", "-max-time", "5", stack.endpoints[u].grpc, "grpc.health.v1.Health/Check"]);
      expect(r.code, `${u}: ${r.stdout}`).not.to.equal(0);
      expect(r.stderr, u).not.to.match(/PermissionDenied|SERVING/);
      const local = await grpcurl(["-plaintext", "-max-time", "5", stack.endpoints[u].local as string, "grpc.health.v1.Health/Check"]);
      expect(local.stdout, u).to.include("SERVING");
      const listed = await grpcurl(["-plaintext", "-max-time", "5", stack.endpoints[u].local as string, "list"]);
      expect(listed.stdout, u).to.include("grpc.health.v1.Health");
      // The local port serves health and reflection only: no RPC of the service.
      const rpc = await grpcurl([
        "-plaintext",
        "-max-time",
        "5",
        "-d",
        "{}",
        stack.endpoints[u].local as string,
        "meshmart.payment.v1.PaymentService/GetPayment",
      ]);
      expect(rpc.stderr, u).to.match(/Unimplemented|not found|does not expose/i);
    }
  });

  it("a mesh client with a certificate from another CA is refused by every service, even claiming orders' identity", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshmart-rogue-"));
    try {
      const rogue = new WorkloadCert(await LocalCa.open(join(dir, "ca")), serviceAccount("orders"), join(dir, "orders"));
      await rogue.issue();
      const bootstrap = { ...mesh.bootstrap("as-orders"), ...certificateProviders(rogue.files, 1000) };
      const c = clientsFor(bootstrap);
      const results = {
        identity: await settle(c.identity.login({ email: "sec@example.com", password: "correct-horse-1" })),
        catalog: await settle(c.catalog.reserveStock({ reservationId: "rogue", items: [{ sku: "mug-blue", quantity: 1 }] })),
        orders: await settle(c.orders.listOrders({})),
        payment: await settle(c.payment.listPayments({ orderId: "sec-o1" })),
      };
      expect(results).to.deep.equal({ identity: "Unavailable", catalog: "Unavailable", orders: "Unavailable", payment: "Unavailable" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("npm run experiment -- mtls-plaintext --target mesh: a client without a mesh certificate cannot call payment, mesh clients go on", async () => {
    const { report } = await runExperiment({ name: "mtls-plaintext", target: "mesh", stack, rate: 5, durationMs: 6000, reportsDir: false });
    expect(report.target).to.equal("mesh");
    expect(report.passed, JSON.stringify(report.checks)).to.equal(true);
    const job = report.fault.events.find((e) => e.what.includes("without a mesh certificate"));
    expect(job?.what)
      .to.include(stack.endpoints.payment.grpc)
      .and.not.match(/exit 0 /);
  });

  /** The serial number of the certificate a mesh port presents to a new connection (a TLS handshake with a valid client certificate). */
  async function presentedSerial(address: string, files: { certificateFile: string; privateKeyFile: string; caCertificateFile: string }): Promise<string> {
    const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
    return new Promise((resolve, reject) => {
      const s = tlsConnect(
        {
          host,
          port,
          ca: readFileSync(files.caCertificateFile),
          cert: readFileSync(files.certificateFile),
          key: readFileSync(files.privateKeyFile),
          ALPNProtocols: ["h2"],
          checkServerIdentity: () => undefined, // SPIFFE ids are URI SANs, not host names
        },
        () => {
          const serial = s.getPeerCertificate().serialNumber;
          s.end();
          resolve(serial);
        },
      );
      s.once("error", reject);
    });
  }

  it("certificates renewed while running are used by new connections, with no failed call meanwhile", async () => {
    const outsideFiles = await mesh.security.files(INGRESS_IDENTITY);
    const before = Object.fromEntries(await Promise.all(UNITS.map(async (u) => [u, await presentedSerial(stack.endpoints[u].grpc, outsideFiles)])));
    // Calls keep flowing through the renewal: the outside caller's saga, orders calling catalog and payment.
    let stop = false;
    const failures: string[] = [];
    let calls = 0;
    expect(token, "the saga test logs in first").not.to.equal("");
    // Generous deadlines: this checks that no call fails for the renewal, not how fast a loaded machine is.
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await Promise.all([
          settle(
            as.outside.orders.placeOrder(
              { idempotencyKey: `renew-${i}`, items: [{ sku: "mug-blue", quantity: 1 }], card: CARD },
              { headers: { authorization: `Bearer ${token}` }, timeoutMs: 60_000 },
            ),
          ),
          settle(as.outside.catalog.getProduct({ sku: "mug-blue" }, { timeoutMs: 60_000 })),
        ]);
        calls += 2;
        for (const x of r) if (x !== "OK") failures.push(x);
      }
    })();
    const renewed = new Map<string, string>();
    for (const wc of mesh.security.identities.all()) renewed.set(principalOf(wc.identity), (await mesh.security.identities.renew(wc.identity)).serialNumber);
    const want = Object.fromEntries(UNITS.map((u) => [u, renewed.get(principalOf(serviceAccount(u.startsWith("catalog") ? "catalog" : u)))]));
    // file_watcher re-reads every second here: poll new connections until each port presents its new certificate.
    const deadline = Date.now() + 30_000;
    let now = before;
    while (Date.now() < deadline) {
      now = Object.fromEntries(await Promise.all(UNITS.map(async (u) => [u, await presentedSerial(stack.endpoints[u].grpc, outsideFiles)])));
      if (UNITS.every((u) => now[u] === want[u])) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const u of UNITS) {
      expect(now[u], u).to.equal(want[u]);
      expect(now[u], u).not.to.equal(before[u]);
    }
    // A new channel of a client whose own certificate was renewed gets in with it.
    const fresh = clientsFor(mesh.bootstrap("as-orders"));
    expect(await settle(fresh.payment.listPayments({ orderId: "sec-o1" }, { timeoutMs: 60_000 }))).to.equal("OK");
    stop = true;
    await loop;
    expect(calls).to.be.at.least(3);
    expect(failures).to.deep.equal([]);
  });
});
