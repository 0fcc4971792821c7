// A Charge whose caller has already gone must not charge: orders may have compensated by then, and nothing
// would ever refund it. Store-level, against the real database.
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { lockTable } from "#kit";
import { freshDatabase } from "../../../test/support/db.js";
import { paymentStore } from "../src/payments.js";

describe("a late Charge", () => {
  const fresh = freshDatabase("late_charge");

  const input = {
    idempotencyKey: "late-1",
    orderId: "ord-late",
    cents: 1250,
    currency: "USD",
    card: { number: "4242424242424242", expMonth: 12, expYear: 2099 },
  };

  it("charges nothing when its caller is already gone", async () => {
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    const gone = AbortSignal.abort();
    const err = await payments.charge(input, gone).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).to.equal(Code.DeadlineExceeded);
    expect((await payments.ledgerTotals("ord-late")).byCurrency).to.deep.equal({});
    expect(await fresh.db.collection("payments").countDocuments({ orderId: "ord-late" })).to.equal(0);
  });

  it("still answers a repeat of a charge that was made, whatever its caller's state", async () => {
    const payments = paymentStore(fresh.db, lockTable(fresh.db));
    const made = await payments.charge({ ...input, idempotencyKey: "late-2" });
    const again = await payments.charge({ ...input, idempotencyKey: "late-2" }, AbortSignal.abort());
    expect(again._id).to.equal(made._id);
  });
});
