// Reservations take no lock (reservations.ts): commit and release race through the reservation's outcome
// claims, and a release that comes in while ReserveStock is still taking stock shows when it records RESERVED.
// These races, many at once over two catalog servers on one database (as v1 and v2 share theirs), must end
// with every unit of stock either sold, held by a RESERVED reservation, or back on the shelf.
import { type Client, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import type { Connection } from "mongoose";
import { CatalogService, ReservationState } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { clientPool, errorReason, openDatabase, type RunningServer } from "#kit";
import { dropDatabase, testMongoUri, uniqueDbName } from "../../../test/support/db.js";
import { type ProductStore, productStore } from "../src/products.js";
import { reservationBook } from "../src/reservations.js";
import { catalogConfig, startCatalog } from "../src/server.js";

describe("catalog reservations racing (no locks)", () => {
  const dbName = uniqueDbName("catalog_races");
  const pool = clientPool();
  const servers: RunningServer[] = [];
  const clients: Client<typeof CatalogService>[] = [];
  let db: Connection;
  let products: ProductStore;
  const SKUS = ["tea-kettle", "tea-sencha", "candle-cedar"];
  const N = 24;

  before(async () => {
    const base = { MONGODB_URI: testMongoUri(), DB_NAME: dbName, PORT: "0", ADMIN_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" };
    for (const VERSION of ["v1", "v2"]) {
      const s = await startCatalog(catalogConfig({ ...base, VERSION }));
      servers.push(s);
      clients.push(pool.dial(CatalogService, `127.0.0.1:${s.port}`));
    }
    db = await openDatabase(testMongoUri(), dbName);
    products = productStore(db);
    for (const sku of SKUS) await products.setStock(sku, 1000);
  });
  after(async () => {
    for (const s of servers) await s.shutdown();
    pool.close();
    await db?.close();
    await dropDatabase(dbName);
  });

  const outcome = (p: Promise<unknown>) =>
    p.then(
      () => "ok",
      (err) => errorReason(ConnectError.from(err)) ?? ConnectError.from(err).rawMessage,
    );
  const items = SKUS.map((sku) => ({ sku, quantity: 1 }));

  /** Each product's stock and holds add up: start − sold − held, and held by exactly the RESERVED reservations. */
  async function expectAccounted(start: Record<string, number>, ids: string[]) {
    const final = new Map<string, string>();
    for (const id of ids) {
      const r = await db.collection("reservations").findOne({ _id: id as never });
      const first = (r?.outcome as string[] | undefined)?.[0];
      final.set(id, r ? (r.state === "RELEASED" || r.state === "COMMITTED" ? r.state : (first ?? r.state)) : "NONE");
    }
    const count = (s: string) => [...final.values()].filter((v) => v === s).length;
    const held = ids.filter((id) => final.get(id) === "RESERVED").sort();
    for (const sku of SKUS) {
      const p = await products.get(sku);
      const mine = (p?.holds ?? []).filter((h) => ids.includes(h)).sort();
      expect({ sku, stock: p?.stock, holds: mine }).to.deep.equal({ sku, stock: start[sku] - count("COMMITTED") - count("RESERVED"), holds: held });
    }
    return { committed: count("COMMITTED"), released: count("RELEASED"), reserved: count("RESERVED"), none: count("NONE") };
  }

  const stocks = async () => Object.fromEntries(await Promise.all(SKUS.map(async (sku) => [sku, (await products.get(sku))?.stock ?? -1] as const)));

  it("commit against release of one reservation: exactly one wins, and the stock follows the winner", async () => {
    const start = await stocks();
    const ids = Array.from({ length: N }, (_, i) => `cr-${i}`);
    for (const id of ids) await clients[0].reserveStock({ reservationId: id, items });
    const results = await Promise.all(
      ids.map((id, i) =>
        Promise.all([outcome(clients[i % 2].commitReservation({ reservationId: id })), outcome(clients[(i + 1) % 2].releaseStock({ reservationId: id }))]),
      ),
    );
    for (const [commit, release] of results)
      expect(
        [commit, release].filter((r) => r === "ok"),
        JSON.stringify([commit, release]),
      ).to.have.length(1);
    const tally = await expectAccounted(start, ids);
    expect(tally.committed + tally.released).to.equal(N);
    expect(tally.committed).to.equal(results.filter(([c]) => c === "ok").length);
    // Repeats change nothing: the winner's answer again, the loser refused again.
    for (const [i, id] of ids.entries()) {
      const [commit] = results[i];
      expect(await outcome(clients[0].commitReservation({ reservationId: id }))).to.equal(commit === "ok" ? "ok" : "RESERVATION_STATE");
    }
    await expectAccounted(start, ids);
  });

  it("release while ReserveStock is taking stock: nothing stays held by a released reservation", async () => {
    const start = await stocks();
    const ids = Array.from({ length: N }, (_, i) => `rr-${i}`);
    const results = await Promise.all(
      ids.map(async (id, i) => {
        const reserve = outcome(clients[i % 2].reserveStock({ reservationId: id, items }));
        // Let the reservation's insert land first for most of them, so the release meets it half-made.
        if (i % 3 !== 0) await new Promise((r) => setImmediate(r));
        const release = outcome(clients[(i + 1) % 2].releaseStock({ reservationId: id }));
        return Promise.all([reserve, release]);
      }),
    );
    for (const [, release] of results) expect(release).to.equal("ok");
    const tally = await expectAccounted(start, ids);
    expect(tally.reserved, JSON.stringify(results)).to.equal(0);
    expect(tally.released).to.equal(N);
  });

  it("a release, then a late ReserveStock of the same id: takes nothing", async () => {
    const start = await stocks();
    const ids = Array.from({ length: N }, (_, i) => `lr-${i}`);
    await Promise.all(ids.map((id, i) => clients[i % 2].releaseStock({ reservationId: id })));
    const results = await Promise.all(ids.map((id, i) => outcome(clients[(i + 1) % 2].reserveStock({ reservationId: id, items }))));
    expect(results).to.deep.equal(Array(N).fill("RESERVATION_STATE"));
    expect(await stocks()).to.deep.equal(start);
  });

  it("two ReserveStocks of one id at once, the stock arriving between their takes: the RESERVED one holds every line", async () => {
    // Try A takes line 1, finds line 2 short and is held there (a hook on its product store) while try B of the
    // same id runs and the stock of line 2 arrives. Without a lease B found line 1 held by the id, took line 2
    // and wrote RESERVED, and then A gave line 1 back: a RESERVED reservation holding one line of two. With the
    // lease B waits for A (the `waiting` hook says when), then reserves anew once A has given back and freed the id.
    const [first, second] = ["tea-sencha", "candle-cedar"];
    await products.setStock(first, 5);
    await products.setStock(second, 0);
    const dbA = await openDatabase(testMongoUri(), dbName);
    const dbB = await openDatabase(testMongoUri(), dbName);
    try {
      let aShort!: () => void;
      const aIsShort = new Promise<void>((r) => (aShort = r));
      let letAGo!: () => void;
      const aMayGo = new Promise<void>((r) => (letAGo = r));
      const storeA = productStore(dbA);
      const held: ProductStore = {
        ...storeA,
        take: async (sku, qty, holder) => {
          const result = await storeA.take(sku, qty, holder);
          if (sku === second && typeof result === "object" && "short" in result) {
            aShort();
            await aMayGo;
          }
          return result;
        },
      };
      let bWaits!: () => void;
      const bIsWaiting = new Promise<void>((r) => (bWaits = r));
      const bookA = reservationBook(dbA, held);
      const bookB = reservationBook(dbB, productStore(dbB), { waiting: () => bWaits() });
      const lines = [
        { sku: first, quantity: 1 },
        { sku: second, quantity: 1 },
      ];
      const a = outcome(bookA.reserve("twice-1", lines));
      await aIsShort;
      await products.setStock(second, 5);
      const b = outcome(bookB.reserve("twice-1", lines));
      await Promise.race([b, bIsWaiting]); // without the lease B is done by now; with it, B waits for A
      letAGo();
      expect(await a).to.equal("OUT_OF_STOCK");
      expect(await b).to.equal("ok");
      const r = await db.collection("reservations").findOne({ _id: "twice-1" as never });
      expect(r?.state).to.equal("RESERVED");
      for (const sku of [first, second]) {
        const p = await products.get(sku);
        expect({ sku, stock: p?.stock, held: p?.holds.includes("twice-1") }).to.deep.equal({ sku, stock: 4, held: true });
      }
    } finally {
      await dbA.close();
      await dbB.close();
    }
  });

  it("a RESERVING reservation under a live lease makes a repeat wait (busy when its time runs out); a lapsed lease is taken over and finished", async () => {
    const book = reservationBook(db, products);
    const lines = [{ sku: "tea-kettle", quantity: 1 }];
    const before = (await products.get("tea-kettle"))?.stock ?? -1;
    // What a first try leaves behind when it dies right after its insert: RESERVING, nothing taken, leased.
    const { requestHash } = await book.reserve("lease-probe", lines);
    await book.release("lease-probe");
    const left = (id: string, leaseUntil: Date) => {
      const now = new Date();
      return db.collection("reservations").insertOne({
        _id: id as never,
        state: "RESERVING",
        requestHash,
        items: [{ sku: "tea-kettle", name: "", quantity: 1, unitPriceCents: 0 }],
        totalCents: 0,
        currency: "USD",
        leaseUntil,
        createdAt: now,
        updatedAt: now,
      });
    };
    await left("lease-live", new Date(Date.now() + 60_000));
    expect(await outcome(book.reserve("lease-live", lines, { timeoutMs: 200 }))).to.match(/being made by another call/);
    await left("lease-lapsed", new Date(Date.now() - 60_000));
    const r = await book.reserve("lease-lapsed", lines, { timeoutMs: 2_000 });
    expect(r.state).to.equal("RESERVED");
    const p = await products.get("tea-kettle");
    expect({ stock: p?.stock, held: p?.holds.includes("lease-lapsed") }).to.deep.equal({ stock: before - 1, held: true });
  });

  it("reports states through the API as the outcome says", async () => {
    await clients[0].reserveStock({ reservationId: "api-1", items });
    await clients[1].commitReservation({ reservationId: "api-1" });
    const { reservation } = await clients[0].releaseStock({ reservationId: "api-1" }).then(
      (r) => r,
      () => ({ reservation: undefined }),
    );
    expect(reservation).to.equal(undefined);
    const again = await clients[1].commitReservation({ reservationId: "api-1" });
    expect(again.reservation?.state).to.equal(ReservationState.COMMITTED);
  });
});
