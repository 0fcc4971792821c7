// grpc.health.v1 status that follows real readiness: each check (database, peers) polled on an interval.
import type * as grpc from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import type { Logger } from "../shared/log.js";

/** A readiness check: resolves true when the dependency can serve. Must not hang (use a timeout). */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<boolean>;
}

/** Resolves `p`, or false after `ms`. */
export function within(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.catch(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]).finally(() => clearTimeout(timer));
}

export type HealthListener = (service: string, status: ServingStatus) => void;

/** Health of one server: "" (the whole server) and every registered service share one status. */
export class Health {
  private status: ServingStatus = "NOT_SERVING";
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  private readonly grpcImpl: HealthImplementation;
  private readonly listeners = new Set<HealthListener>();
  private readonly watchCalls = new Set<grpc.ServerWritableStream<unknown, unknown>>();

  constructor(
    private readonly serviceNames: string[],
    private readonly checks: ReadinessCheck[],
    private readonly log: Logger,
  ) {
    this.grpcImpl = new HealthImplementation(Object.fromEntries(["", ...serviceNames].map((s) => [s, this.status])));
  }

  get current(): ServingStatus {
    return this.status;
  }

  /** "" and every registered service name. */
  get names(): string[] {
    return ["", ...this.serviceNames];
  }

  statusOf(service: string): ServingStatus | undefined {
    return service === "" || this.serviceNames.includes(service) ? this.status : undefined;
  }

  onChange(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Adds grpc-health-check's Health service, keeping hold of open Watch streams: they never end by
   * themselves, and grpc-js's graceful shutdown would otherwise wait its whole grace period for them.
   */
  addToServer(server: grpc.Server): void {
    const proxy = {
      addService: (definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
        const watch = impl.watch as (call: grpc.ServerWritableStream<unknown, unknown>) => void;
        server.addService(definition, {
          ...impl,
          watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
            this.watchCalls.add(call);
            const forget = () => this.watchCalls.delete(call);
            call.once("cancelled", forget);
            call.once("finish", forget);
            watch(call);
          },
        });
      },
    };
    this.grpcImpl.addToServer(proxy as never);
  }

  /** Runs the checks now and then every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.evaluate();
    const tick = () => {
      this.timer = setTimeout(() => void this.evaluate().finally(() => this.timer && tick()), intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Runs every check once and publishes the result. */
  async evaluate(): Promise<ServingStatus> {
    if (this.draining) return this.status;
    const results = await Promise.all(this.checks.map(async (c) => ({ name: c.name, ok: await c.check().catch(() => false) })));
    const failed = results.filter((r) => !r.ok).map((r) => r.name);
    if (!this.draining) this.publish(failed.length === 0 ? "SERVING" : "NOT_SERVING", failed);
    return this.status;
  }

  /** Shutdown: NOT_SERVING for good, so load balancers and probes stop sending work. */
  drain(): void {
    this.draining = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.publish("NOT_SERVING", ["shutting down"]);
    for (const call of this.watchCalls) call.end(); // watchers have seen NOT_SERVING; let them go
    this.watchCalls.clear();
  }

  private publish(status: ServingStatus, failed: string[]) {
    if (status === this.status) return;
    this.status = status;
    for (const s of ["", ...this.serviceNames]) {
      this.grpcImpl.setStatus(s, status);
      for (const l of this.listeners) l(s, status);
    }
    if (status === "SERVING") this.log.info("health SERVING");
    else if (this.draining) this.log.info("health NOT_SERVING (shutting down)");
    else this.log.warn({ failing: failed }, "health NOT_SERVING");
  }
}
