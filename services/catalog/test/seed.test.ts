// Catalog's startup seed next to a serving catalog (a rolling restart, v1 and v2 starting together): it must
// add missing products only and never write an existing one, or it undoes reservations made meanwhile
// (FerretDB v1 applies an update that matches as a write-back of the whole document).
import { expect } from "chai";
import mongoose, { type Connection } from "mongoose";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { loadSeed, productStore, type SeedProduct } from "../src/products.js";
import { reservationBook } from "../src/reservations.js";

describe("catalog seed beside a serving catalog", () => {
  const dbName = uniqueDbName("seed");
  let serving: Connection; // the catalog that takes reservations
  let starting: Connection; // a catalog process starting up and seeding
  let seed: SeedProduct[];

  before(async () => {
    serving = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
    starting = await mongoose.createConnection(testMongoUri(), { dbName }).asPromise();
    seed = await loadSeed();
    expect(await productStore(serving).seed(seed)).to.equal(seed.length);
  });
  after(async () => {
    await serving?.close();
    await starting?.close();
    await dropDatabase(dbName);
  });

  it("writes nothing to products that exist (stock, holds and update time as they were)", async () => {
    const products = productStore(serving);
    await reservationBook(serving, products).reserve("seed-r1", [{ sku: "mug-blue", quantity: 3 }]);
    const before = await products.get("mug-blue");
    await new Promise((r) => setTimeout(r, 5)); // a write now would show as a later updatedAt
    expect(await productStore(starting).seed(seed)).to.equal(0);
    expect(await products.get("mug-blue")).to.deep.equal(before);
  });

  it("adds a product that is missing", async () => {
    await serving.collection("products").deleteOne({ _id: "tent-2p" as never });
    expect(await productStore(starting).seed(seed)).to.equal(1);
    expect((await productStore(serving).get("tent-2p"))?.stock).to.equal(seed.find((p) => p.sku === "tent-2p")?.stock);
  });

  it("loses no reservation made while another catalog seeds over and over", async function () {
    this.timeout(120_000);
    const products = productStore(serving);
    const book = reservationBook(serving, products);
    const sku = "mug-white";
    const start = (await products.get(sku))?.stock ?? 0;
    let stop = false;
    let seeds = 0;
    let seeded: () => void = () => undefined;
    let nextSeed = new Promise<void>((r) => (seeded = r));
    const seeding = productStore(starting);
    const seeder = (async () => {
      const one = seed.filter((p) => p.sku === sku); // one product: seed runs between every worker's reservations
      while (!stop) {
        await seeding.seed(one);
        seeds++;
        seeded();
        nextSeed = new Promise<void>((r) => (seeded = r));
      }
    })();
    const N = 60;
    try {
      await Promise.all(
        [0, 1, 2].map(async (w) => {
          for (let i = w; i < N; i += 3) {
            await book.reserve(`seed-race-${i}`, [{ sku, quantity: 1 }]);
            await nextSeed; // a reservation is quicker than a seed run: let one pass before the next
          }
        }),
      );
    } finally {
      stop = true;
      await seeder;
    }
    expect(seeds, "the seed ran while reservations were made").to.be.at.least(N / 3);
    const after = await products.get(sku);
    expect({ stock: after?.stock, holds: after?.holds.length }).to.deep.equal({ stock: start - N, holds: N });
  });
});
