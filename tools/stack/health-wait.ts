// Waits for a gRPC server's health (grpc.health.v1) to reach a status: used by the local stack and the tests.
import { createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "#gen/health/v1/health_pb.js";
import { createGrpcJsTransport } from "#kit";

/** Polls grpc.health.v1.Health/Check until `want` (SERVING by default) or the timeout. */
export async function waitForHealth(
  address: string,
  opts: { want?: HealthCheckResponse_ServingStatus; timeoutMs?: number; service?: string } = {},
): Promise<void> {
  const want = opts.want ?? HealthCheckResponse_ServingStatus.SERVING;
  const connect = () => createGrpcJsTransport({ target: address, defaultTimeoutMs: 1000 });
  let transport = connect();
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last = "no answer";
  try {
    while (Date.now() < deadline) {
      try {
        const r = await createClient(Health, transport).check({ service: opts.service ?? "" });
        if (r.status === want) return;
        last = HealthCheckResponse_ServingStatus[r.status];
      } catch (err) {
        last = String(err);
        // A fresh channel for the next try: a channel refused once waits out its reconnect backoff (up to 1 s)
        // before it dials again, which would add that much to every start.
        transport.close();
        transport = connect();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    transport.close();
  }
  throw new Error(`${address} did not become ${HealthCheckResponse_ServingStatus[want]} (last: ${last})`);
}
