// The client side's Prometheus interceptor: every outgoing call counted and timed, named like the server's.
import type { Interceptor } from "@connectrpc/connect";
import { toConnectError } from "../shared/errors.js";
import { clientHandled, clientSeconds, clientStarted, codeName, methodLabels } from "../shared/metrics.js";
import { withOutcome } from "../shared/outcome.js";

/** Client-side metrics (grpc_client_started_total, grpc_client_handled_total, grpc_client_handling_seconds). */
export function clientMetrics(): Interceptor {
  return (next) => (req) => {
    const labels = methodLabels(req);
    clientStarted.inc(labels);
    const end = clientSeconds.startTimer();
    return withOutcome(
      () => next(req),
      (error) => {
        const code = codeName(error === undefined ? undefined : toConnectError(error));
        clientHandled.inc({ ...labels, grpc_code: code });
        end({ ...labels, grpc_code: code });
      },
    );
  };
}
