// Monolith mode reads the kit's common settings the way every service does (it once called serve() with
// defaults, so MAX_RECEIVE_BYTES, GRACE_MS, ENGINE ... were silently ignored there).
import { Code, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { IdentityService } from "#gen/meshmart/identity/v1/identity_pb.js";
import { createGrpcJsTransport, type RunningServer } from "#kit";
import { freePort } from "../../tools/stack/devdb.js";
import { startMonolith } from "../../tools/stack/monolith.js";
import { testMongoUri } from "../support/db.js";
import { rejection } from "../support/rejection.js";

describe("monolith mode", function () {
  this.timeout(60_000);
  let monolith: RunningServer | undefined;
  let transport: ReturnType<typeof createGrpcJsTransport> | undefined;
  const saved = process.env.MAX_RECEIVE_BYTES;

  after(async () => {
    transport?.close();
    await monolith?.shutdown();
    if (saved === undefined) delete process.env.MAX_RECEIVE_BYTES;
    else process.env.MAX_RECEIVE_BYTES = saved;
  });

  it("applies MAX_RECEIVE_BYTES like a service does: a larger message is RESOURCE_EXHAUSTED", async () => {
    process.env.MAX_RECEIVE_BYTES = "2048";
    monolith = await startMonolith({ mongoUri: testMongoUri(), host: "127.0.0.1", port: await freePort(), adminPort: await freePort() });
    // Over the network, to the monolith's one port.
    transport = createGrpcJsTransport({ target: `127.0.0.1:${monolith.port}` });
    const identity = createClient(IdentityService, transport);
    // Under the limit the message reaches validation (a 4 KB name would be INVALID_ARGUMENT without a limit).
    const small = await rejection(identity.register({ email: "not-an-email", password: "x" }));
    expect(small.code).to.equal(Code.InvalidArgument);
    const big = await rejection(identity.register({ email: "big@example.com", password: "correct-horse-1", displayName: "x".repeat(4096) }));
    expect(big.code).to.equal(Code.ResourceExhausted);
  });
});
