// Monolith mode reads the kit's common settings the way every service does (it once called serve() with
// defaults, so MAX_RECEIVE_BYTES, GRACE_MS, ENGINE ... were silently ignored there). Started as npm start starts
// it: the launcher's monolith unit, one process.
import { Code, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { createGrpcJsTransport } from "#kit";
import { type MonolithUnit, type Stack, startStack } from "../../tools/stack/launcher.js";
import { testMongoUri } from "../support/db.js";
import { rejection } from "../support/rejection.js";

describe("monolith mode", function () {
  this.timeout(60_000);
  let monolith: Stack<MonolithUnit> | undefined;
  let transport: ReturnType<typeof createGrpcJsTransport> | undefined;

  after(async () => {
    transport?.close();
    await monolith?.stop();
  });

  it("applies MAX_RECEIVE_BYTES like a service does: a larger message is RESOURCE_EXHAUSTED", async () => {
    monolith = await startStack({ monolith: true, mongoUri: testMongoUri(), logLevel: "warn", env: { monolith: { MAX_RECEIVE_BYTES: "2048" } } });
    // Over the network, to the monolith's one port.
    transport = createGrpcJsTransport({ target: monolith.endpoints.monolith.grpc });
    const identity = createClient(IdentityService, transport);
    // Under the limit the message reaches validation (a 4 KB name would be INVALID_ARGUMENT without a limit).
    const small = await rejection(identity.register({ email: "not-an-email", password: "x" }));
    expect(small.code).to.equal(Code.InvalidArgument);
    const big = await rejection(identity.register({ email: "big@example.com", password: "correct-horse-1", displayName: "x".repeat(4096) }));
    expect(big.code).to.equal(Code.ResourceExhausted);
  });
});
