// The embedded dev database (tools/setup/devdb): FerretDB v1.24.2 on SQLite looks documents up by _id with an
// expression its own _id index does not match, so devdb adds one that does (tools/setup/devdb/idindex.go); and it
// applies an update as a read then a write, so devdb runs such commands one at a time per database, making
// each single-document write atomic as on MongoDB (tools/setup/devdb/writeorder.go).
import { expect } from "chai";
import mongoose, { type Connection } from "mongoose";
import { freshDatabase, testMongoUri } from "../support/db.js";

describe("devdb", () => {
  const fresh = freshDatabase("devdb");

  /**
   * SQLite's plan for a find by _id, as FerretDB's explain reports it. A query first: EXPLAIN runs no
   * statement, so a pooled SQLite connection would plan it with the schema it read before the index existed.
   */
  const planOf = async (collection: string, id: string) => {
    await fresh.db.db!.collection(collection).findOne({ _id: id as never });
    const explained = await fresh.db
      .db!.collection(collection)
      .find({ _id: id as never })
      .explain();
    return JSON.stringify(explained.queryPlanner);
  };

  it("looks a document up by _id through an index, also in a collection created while it runs", async () => {
    const coll = fresh.db.db!.collection<{ _id: string; n: number }>("lookups");
    await coll.insertMany(Array.from({ length: 20 }, (_, n) => ({ _id: `doc-${n}`, n })));
    let plan = await planOf("lookups", "doc-7");
    // devdb checks for new collections every 250 ms: wait for it rather than sleep a fixed time.
    for (const until = Date.now() + 5000; !plan.includes("USING INDEX") && Date.now() < until; plan = await planOf("lookups", "doc-7"))
      await new Promise((r) => setTimeout(r, 50));
    expect(plan).to.match(/SEARCH .* USING INDEX \S*_devdb_id_path/);
    expect(await coll.findOne({ _id: "doc-7" })).to.deep.equal({ _id: "doc-7", n: 7 });
  });

  describe("single-document writes under concurrent writers", () => {
    // Many connections, so the commands really reach the server at once.
    let wide: Connection;
    before(async () => {
      wide = await mongoose.createConnection(testMongoUri(), { dbName: fresh.name, maxPoolSize: 30, minPoolSize: 30 }).asPromise();
    });
    after(() => wide?.close());
    const writers = 30;

    it("applies a conditional $inc atomically: stock never goes below zero, no decrement is lost", async () => {
      const coll = wide.db!.collection<{ _id: string; stock: number }>("stock");
      await coll.insertOne({ _id: "sku", stock: 10 });
      const results = await Promise.all(Array.from({ length: writers }, () => coll.updateOne({ _id: "sku", stock: { $gte: 1 } }, { $inc: { stock: -1 } })));
      expect(results.reduce((n, r) => n + r.modifiedCount, 0)).to.equal(10);
      expect((await coll.findOne({ _id: "sku" }))?.stock).to.equal(0);
    });

    it("applies findOneAndUpdate with $push atomically: every writer's element is kept", async () => {
      const coll = wide.db!.collection<{ _id: string; holds: string[] }>("holds");
      await coll.insertOne({ _id: "sku", holds: [] });
      await Promise.all(Array.from({ length: writers }, (_, i) => coll.findOneAndUpdate({ _id: "sku" }, { $push: { holds: `h${i}` } })));
      expect((await coll.findOne({ _id: "sku" }))?.holds).to.have.length(writers);
    });
  });
});
