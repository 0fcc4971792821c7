// The embedded dev database (tools/devdb): FerretDB v1.24.2 on SQLite looks documents up by _id with an
// expression its own _id index does not match, so devdb adds one that does (tools/devdb/idindex.go).
import { expect } from "chai";
import { freshDatabase } from "../support/db.js";

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
});
