// Monolith mode's building block: clients that call handlers in the same process, through the same
// server interceptors (validation, propagation), without a socket.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { CatalogService } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, inMemoryTransport, propagation, service, validation } from "#kit";

describe("in-memory transport", () => {
  const clients = clientPool();
  const transport = inMemoryTransport(
    [service(CatalogService, { getProduct: ({ sku }, ctx) => ({ product: { sku, name: ctx.requestHeader.get("x-canary") ?? "" } }) })],
    [propagation(), validation()],
  );
  after(() => clients.close());

  it("calls the handler in process, headers included", async () => {
    const client = createClient(CatalogService, transport);
    const { product } = await client.getProduct({ sku: "mug-blue" }, { headers: { "x-canary": "yes" } });
    expect(product).to.deep.include({ sku: "mug-blue", name: "yes" });
  });

  it("is what a pool made with it hands out, whatever the address", async () => {
    const { product } = await clientPool({ transport }).dial(CatalogService, "127.0.0.1:1").getProduct({ sku: "tea-sencha" });
    expect(product?.sku).to.equal("tea-sencha");
  });

  it("changes nothing for anyone else in the process: another pool's clients still go over the network", async () => {
    // Port 1 on loopback: nothing listens, so a network client fails; an in-memory one would answer.
    const err = ConnectError.from(
      await clients
        .dial(CatalogService, "127.0.0.1:1", { timeoutMs: 2000 })
        .getProduct({ sku: "tea-sencha" })
        .catch((e) => e),
    );
    expect(err.code).to.equal(Code.Unavailable);
  });

  it("applies the same input validation as the network servers", async () => {
    const client = createClient(CatalogService, transport);
    const err = ConnectError.from(await client.getProduct({ sku: "" }).catch((e) => e));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage).to.contain("sku");
  });
});
