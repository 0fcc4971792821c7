// toConnectError: a lost database is UNAVAILABLE (retryable), never INTERNAL. Found by the db-outage fault
// test: while the database was stopped, calls waiting for a connection got the driver's PoolClearedError,
// which was answered INTERNAL.
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import mongoose from "mongoose";
import { toConnectError } from "../src/shared/errors.js";

/** Stand-in for the driver's PoolClearedError, which mongodb does not export: same base class and name. */
class PoolClearedError extends mongoose.mongo.MongoNetworkError {
  override get name() {
    return "MongoPoolClearedError";
  }
}

describe("toConnectError (unit)", () => {
  it("a cleared connection pool (database stopped) is UNAVAILABLE, not INTERNAL", () => {
    const err = toConnectError(
      new PoolClearedError('Connection pool for 127.0.0.1:27017 was cleared because another operation failed with: "connect ECONNREFUSED"'),
    );
    expect(err.code).to.equal(Code.Unavailable);
    expect(err.rawMessage).to.equal("database unavailable");
  });

  it("every driver network error is UNAVAILABLE, and the named ones still are", () => {
    expect(toConnectError(new mongoose.mongo.MongoNetworkTimeoutError("timed out")).code).to.equal(Code.Unavailable);
    expect(toConnectError(new mongoose.mongo.MongoNetworkError("connection 1 closed")).code).to.equal(Code.Unavailable);
    const selection = Object.assign(new Error("server selection timed out"), { name: "MongoServerSelectionError" });
    expect(toConnectError(selection).code).to.equal(Code.Unavailable);
  });

  it("anything else unknown stays INTERNAL without its text, and a ConnectError passes through", () => {
    const internal = toConnectError(new TypeError("secret detail"));
    expect(internal.code).to.equal(Code.Internal);
    expect(internal.rawMessage).to.equal("internal error");
    const given = new ConnectError("no", Code.NotFound);
    expect(toConnectError(given)).to.equal(given);
  });
});
