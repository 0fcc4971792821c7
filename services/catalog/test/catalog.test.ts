import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { CatalogService, ReservationState } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, errorReason, type RunningServer, toCents } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { rejection } from "../../../test/support/rejection.js";
import { catalogConfig, startCatalog } from "../src/server.js";

const codeOf = async (p: Promise<unknown>): Promise<Code> => (await rejection(p)).code;

describe("catalog", () => {
  const clients = clientPool();
  let server: RunningServer;
  let catalog: Client<typeof CatalogService>;
  const dbName = uniqueDbName("catalog");

  before(async () => {
    server = await startCatalog(
      catalogConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", VERSION: "v1", LOG_LEVEL: "silent" }),
      {},
    );
    catalog = clients.dial(CatalogService, `127.0.0.1:${server.port}`);
  });
  after(async () => {
    await server?.shutdown();
    clients.close();
    await dropDatabase(dbName);
  });

  const stockOf = async (sku: string) => (await catalog.getProduct({ sku })).product?.stock ?? -1;

  describe("ListProducts", () => {
    it("pages through every seeded product once, in SKU order", async () => {
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await catalog.listProducts({ pageSize: 7, pageToken });
        expect(page.products.length).to.be.at.most(7);
        seen.push(...page.products.map((p) => p.sku));
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(seen.length).to.be.at.least(20);
      expect(new Set(seen).size).to.equal(seen.length);
      expect(seen).to.deep.equal([...seen].sort());
    });

    it("filters by category", async () => {
      const { products } = await catalog.listProducts({ category: "coffee", pageSize: 100 });
      expect(products.length).to.be.greaterThan(0);
      for (const p of products) expect(p.categories).to.include("coffee");
    });

    it("rejects a page token it did not make", async () => {
      expect(await codeOf(catalog.listProducts({ pageToken: "not-a-token" }))).to.equal(Code.InvalidArgument);
    });

    it("rejects a page size over 100, naming the field", async () => {
      const err = await catalog.listProducts({ pageSize: 101 }).catch((e) => ConnectError.from(e));
      expect((err as ConnectError).code).to.equal(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).to.contain("page_size");
    });
  });

  describe("GetProduct and SearchProducts", () => {
    it("returns a product with its price in money units", async () => {
      const { product } = await catalog.getProduct({ sku: "mug-blue" });
      expect(product?.name).to.equal("Blue Enamel Mug");
      expect(toCents(product!.price!)).to.equal(1250);
    });

    it("answers NOT_FOUND with the PRODUCT_NOT_FOUND reason for an unknown SKU", async () => {
      const err = ConnectError.from(await catalog.getProduct({ sku: "no-such-thing" }).catch((e) => e));
      expect(err.code).to.equal(Code.NotFound);
      expect(errorReason(err)).to.equal("PRODUCT_NOT_FOUND");
    });

    it("finds products containing every word of the query", async () => {
      const { products } = await catalog.searchProducts({ query: "coffee GRINDER" });
      expect(products.map((p) => p.sku)).to.deep.equal(["coffee-grinder"]);
    });

    it("leaves the v2 fields empty on v1", async () => {
      const { product } = await catalog.getProduct({ sku: "mug-blue" });
      expect(product?.rating).to.equal(0);
      expect(product?.badges).to.deep.equal([]);
    });
  });

  describe("ReserveStock / ReleaseStock / CommitReservation", () => {
    it("takes the stock and prices the reservation", async () => {
      const before = await stockOf("french-press");
      const { reservation } = await catalog.reserveStock({ reservationId: "res-1", items: [{ sku: "french-press", quantity: 2 }] });
      expect(reservation?.state).to.equal(ReservationState.RESERVED);
      expect(toCents(reservation!.total!)).to.equal(6800);
      expect(await stockOf("french-press")).to.equal(before - 2);
    });

    it("returns the first answer when ReserveStock is repeated, taking nothing more", async () => {
      const before = await stockOf("french-press");
      const again = await catalog.reserveStock({ reservationId: "res-1", items: [{ sku: "french-press", quantity: 2 }] });
      expect(again.reservation?.state).to.equal(ReservationState.RESERVED);
      expect(await stockOf("french-press")).to.equal(before);
    });

    it("refuses the same reservation id with other items (ALREADY_EXISTS)", async () => {
      expect(await codeOf(catalog.reserveStock({ reservationId: "res-1", items: [{ sku: "french-press", quantity: 3 }] }))).to.equal(Code.AlreadyExists);
    });

    it("commits once, and committing again changes nothing", async () => {
      const before = await stockOf("french-press");
      expect((await catalog.commitReservation({ reservationId: "res-1" })).reservation?.state).to.equal(ReservationState.COMMITTED);
      expect((await catalog.commitReservation({ reservationId: "res-1" })).reservation?.state).to.equal(ReservationState.COMMITTED);
      expect(await stockOf("french-press")).to.equal(before);
      expect(await codeOf(catalog.releaseStock({ reservationId: "res-1" }))).to.equal(Code.FailedPrecondition);
    });

    it("gives the stock back on release, once", async () => {
      const before = await stockOf("yoga-mat");
      await catalog.reserveStock({ reservationId: "res-2", items: [{ sku: "yoga-mat", quantity: 4 }] });
      expect(await stockOf("yoga-mat")).to.equal(before - 4);
      await catalog.releaseStock({ reservationId: "res-2" });
      await catalog.releaseStock({ reservationId: "res-2" });
      expect(await stockOf("yoga-mat")).to.equal(before);
      expect(await codeOf(catalog.commitReservation({ reservationId: "res-2" }))).to.equal(Code.FailedPrecondition);
    });

    it("is all or nothing: one short item takes no stock at all", async () => {
      const mugs = await stockOf("mug-white");
      const err = ConnectError.from(
        await catalog
          .reserveStock({
            reservationId: "res-3",
            items: [
              { sku: "mug-white", quantity: 1 },
              { sku: "tent-2p", quantity: 999 },
            ],
          })
          .catch((e) => e),
      );
      expect(err.code).to.equal(Code.FailedPrecondition);
      expect(errorReason(err)).to.equal("OUT_OF_STOCK");
      expect(await stockOf("mug-white")).to.equal(mugs);
      // The id is free again (nothing of the refused request is kept): a retry for what is in stock succeeds.
      const tents = await stockOf("tent-2p");
      const { reservation } = await catalog.reserveStock({
        reservationId: "res-3",
        items: [
          { sku: "mug-white", quantity: 1 },
          { sku: "tent-2p", quantity: 1 },
        ],
      });
      expect(reservation?.state).to.equal(ReservationState.RESERVED);
      expect([await stockOf("mug-white"), await stockOf("tent-2p")]).to.deep.equal([mugs - 1, tents - 1]);
    });

    it("answers NOT_FOUND for an unknown SKU and INVALID_ARGUMENT for a repeated SKU", async () => {
      expect(await codeOf(catalog.reserveStock({ reservationId: "res-4", items: [{ sku: "nope", quantity: 1 }] }))).to.equal(Code.NotFound);
      expect(
        await codeOf(
          catalog.reserveStock({
            reservationId: "res-4",
            items: [
              { sku: "mug-blue", quantity: 1 },
              { sku: "mug-blue", quantity: 1 },
            ],
          }),
        ),
      ).to.equal(Code.InvalidArgument);
    });

    it("rejects a zero quantity, naming items[0].quantity", async () => {
      const err = ConnectError.from(await catalog.reserveStock({ reservationId: "res-5", items: [{ sku: "mug-blue", quantity: 0 }] }).catch((e) => e));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.contain("items[0].quantity");
    });

    it("keeps a release that came first: a late ReserveStock for that id takes nothing", async () => {
      const before = await stockOf("headlamp");
      await catalog.releaseStock({ reservationId: "res-late" });
      expect(await codeOf(catalog.reserveStock({ reservationId: "res-late", items: [{ sku: "headlamp", quantity: 1 }] }))).to.equal(Code.FailedPrecondition);
      expect(await stockOf("headlamp")).to.equal(before);
    });

    it("never oversells under parallel reservations", async () => {
      const stock = await stockOf("sleeping-bag"); // 12 seeded
      const attempts = Array.from({ length: stock + 8 }, (_, i) =>
        catalog.reserveStock({ reservationId: `race-${i}`, items: [{ sku: "sleeping-bag", quantity: 1 }] }).then(
          () => "ok",
          (e) => Code[ConnectError.from(e).code],
        ),
      );
      const results = await Promise.all(attempts);
      expect(results.filter((r) => r === "ok")).to.have.length(stock);
      expect(results.filter((r) => r !== "ok")).to.deep.equal(Array(8).fill("FailedPrecondition"));
      expect(await stockOf("sleeping-bag")).to.equal(0);
    });
  });
});

describe("catalog v2", () => {
  const clients = clientPool();
  let server: RunningServer;
  const dbName = uniqueDbName("catalog_v2");
  before(async () => {
    server = await startCatalog(
      catalogConfig({ MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", VERSION: "v2", LOG_LEVEL: "silent" }),
    );
  });
  after(async () => {
    await server?.shutdown();
    clients.close();
    await dropDatabase(dbName);
  });

  it("serves ratings and badges, and says x-served-by: catalog-v2", async () => {
    const catalog = clients.dial(CatalogService, `127.0.0.1:${server.port}`);
    let served = "";
    const { product } = await catalog.getProduct({ sku: "last-one" }, { onHeader: (h) => (served = h.get("x-served-by") ?? "") });
    expect(served).to.equal("catalog-v2");
    expect(product?.rating).to.equal(5);
    expect(product?.badges).to.include("limited").and.include("low-stock");
  });
});
