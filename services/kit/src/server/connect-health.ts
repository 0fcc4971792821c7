// grpc.health.v1.Health as a Connect ServiceImpl, for the connect-node engine (grpc-health-check is grpc-js only).
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type Health as HealthService, HealthCheckResponse_ServingStatus as Status } from "#gen/health/v1/health_pb.js";
import type { Health } from "./health.js";

const toProto = { SERVING: Status.SERVING, NOT_SERVING: Status.NOT_SERVING, UNKNOWN: Status.UNKNOWN } as const;

export function connectHealthImpl(health: Health): ServiceImpl<typeof HealthService> {
  return {
    check({ service }) {
      const s = health.statusOf(service);
      if (s === undefined) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
      return { status: toProto[s] };
    },
    list() {
      return { statuses: Object.fromEntries(health.names.map((n) => [n, { status: toProto[health.current] }])) };
    },
    async *watch({ service }, ctx) {
      const queue: Status[] = [];
      let wake: (() => void) | undefined;
      const off = health.onChange((name, status) => {
        if (name !== service) return;
        queue.push(toProto[status]);
        wake?.();
      });
      try {
        const s = health.statusOf(service);
        yield { status: s === undefined ? Status.SERVICE_UNKNOWN : toProto[s] };
        while (!ctx.signal.aborted) {
          if (queue.length === 0)
            await new Promise<void>((r) => {
              wake = r;
              ctx.signal.addEventListener("abort", () => r(), { once: true });
            });
          while (queue.length > 0) yield { status: queue.shift() as Status };
        }
      } finally {
        off();
      }
    },
  };
}
