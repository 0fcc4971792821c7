// The kit's propagation over a real hop: a front service forwarding a call to a back one with forward(ctx), both
// on real sockets (catalog's contract, handlers built from the kit): the headers and the rest of the deadline arrive.
import { expect } from "chai";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, forward, type RunningServer, serve, service } from "#kit";

const local = (s: RunningServer) => `127.0.0.1:${s.port}`;

describe("propagation through one hop", () => {
  const clients = clientPool();
  let back: RunningServer;
  let front: RunningServer;
  let seen: { headers: Headers; timeoutMs: number | undefined } | undefined;

  before(async () => {
    // back records what reached it; front forwards GetProduct to back with forward(ctx).
    back = await serve({
      name: "back",
      port: 0,
      host: "127.0.0.1",
      services: [
        service(CatalogService, {
          getProduct(_req, ctx) {
            seen = { headers: new Headers(ctx.requestHeader), timeoutMs: ctx.timeoutMs() };
            return { product: { sku: "echo" } };
          },
        }),
      ],
    });
    const backClient = clients.dial(CatalogService, local(back));
    front = await serve({
      name: "front",
      port: 0,
      host: "127.0.0.1",
      services: [service(CatalogService, { getProduct: (req, ctx) => backClient.getProduct(req, forward(ctx)) })],
    });
  });
  after(async () => {
    await front?.shutdown();
    await back?.shutdown();
    clients.close();
  });

  it("carries request id, trace, baggage and canary headers, but not authorization, to the next hop", async () => {
    const sent = {
      "x-request-id": "req-123",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      tracestate: "vendor=abc",
      b3: "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
      "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
      "x-b3-spanid": "e457b5a2e4d86bd1",
      "x-b3-sampled": "1",
      baggage: "userId=alice",
      "x-canary": "true",
      authorization: "Bearer secret",
    };
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { headers: sent, timeoutMs: 2000 });
    for (const [k, v] of Object.entries(sent)) {
      if (k === "authorization") expect(seen?.headers.get(k)).to.equal(null);
      else expect(seen?.headers.get(k), k).to.equal(v);
    }
  });

  it("gives the next hop a deadline shorter than the caller's", async () => {
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { timeoutMs: 1500 });
    expect(seen?.timeoutMs).to.be.a("number").that.is.greaterThan(0).and.lessThan(1500);
  });

  it("sets a default deadline on the next hop when the caller sent none", async () => {
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { timeoutMs: 0 });
    expect(seen?.timeoutMs).to.be.a("number").that.is.greaterThan(0).and.at.most(5000);
  });

  it("mints one x-request-id when the caller sent none, and answers with it", async () => {
    let answered = "";
    await clients.dial(CatalogService, local(front)).getProduct({ sku: "mug-blue" }, { onHeader: (h) => (answered = h.get("x-request-id") ?? "") });
    expect(answered).to.match(/^[0-9a-f-]{36}$/);
    expect(seen?.headers.get("x-request-id")).to.equal(answered);
  });
});
