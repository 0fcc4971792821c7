// The configuration every service shares, so each server.ts lists only what is its own.

import { ConfigError, env, oneOf, port } from "../shared/env.js";
import type { Logger } from "../shared/log.js";
import { MAX_RECEIVE_BYTES_DEFAULT, MAX_SEND_BYTES_DEFAULT } from "../shared/message-limits.js";
import type { AdminRoute } from "./admin.js";
import type { ReadinessCheck } from "./health.js";
import { type RunningServer, type ServeOptions, type ServiceEntry, serve } from "./serve.js";

/** Env defaults common to every service; spread into the service's own defaults. */
export const commonDefaults = {
  /** Loopback unless set: a service started by hand is not reachable from the network (internal RPCs have no
   *  caller check in code; the mesh's AuthorizationPolicy guards them). The images set HOST=0.0.0.0. */
  HOST: "127.0.0.1",
  MONGODB_URI: "mongodb://127.0.0.1:27017",
  ENGINE: oneOf(["grpc-js", "connect-node"], "grpc-js"),
  GRACE_MS: 10_000,
  DRAIN_DELAY_MS: 0,
  HEALTH_INTERVAL_MS: 2000,
  /** Largest request message accepted (bytes); see MAX_RECEIVE_BYTES_DEFAULT for why 1 MiB. */
  MAX_RECEIVE_BYTES: MAX_RECEIVE_BYTES_DEFAULT,
  /** Largest response message sent (bytes). */
  MAX_SEND_BYTES: MAX_SEND_BYTES_DEFAULT,
  /**
   * true: a proxyless workload of the mesh (grpc-js-xds XdsServer; mTLS and authorization from istiod, the
   * xDS bootstrap in GRPC_XDS_BOOTSTRAP(_CONFIG) with the workload certificate's files).
   */
  MESH: false,
  /** Mesh mode: the plaintext port outside the mesh with health and reflection only (0: a free one). */
  LOCAL_GRPC_PORT: 0,
};

/** env() for a service: also checks that PORT and ADMIN_PORT are ports, before anything is opened. */
export function serviceEnv<const D extends typeof commonDefaults & { PORT: number; ADMIN_PORT: number }>(
  defaults: D,
  source: Record<string, string | undefined>,
) {
  const config = env(defaults, source);
  port("PORT", config.PORT as number);
  port("ADMIN_PORT", config.ADMIN_PORT as number);
  port("LOCAL_GRPC_PORT", config.LOCAL_GRPC_PORT as number);
  if (config.MESH && !(config.PORT as number))
    throw new ConfigError("PORT", "must be set in mesh mode (MESH=true): istiod names the inbound listener by address and port");
  for (const name of ["MAX_RECEIVE_BYTES", "MAX_SEND_BYTES"] as const) {
    const bytes = config[name] as number;
    if (bytes < 1024 || bytes > 2 ** 31 - 1) throw new ConfigError(name, `must be 1024..${2 ** 31 - 1} bytes, got ${bytes}`);
  }
  return config;
}

export interface CommonConfig {
  PORT: number;
  ADMIN_PORT: number;
  HOST: string;
  ENGINE: string;
  GRACE_MS: number;
  DRAIN_DELAY_MS: number;
  HEALTH_INTERVAL_MS: number;
  MAX_RECEIVE_BYTES: number;
  MAX_SEND_BYTES: number;
  MESH: boolean;
  LOCAL_GRPC_PORT: number;
}

/** The serve() options that come straight from the common configuration. */
export function serveOptionsFrom(
  config: CommonConfig,
): Pick<
  ServeOptions,
  "host" | "port" | "adminPort" | "engine" | "graceMs" | "drainDelayMs" | "healthIntervalMs" | "maxReceiveBytes" | "maxSendBytes" | "mesh"
> {
  return {
    host: config.HOST,
    port: config.PORT,
    adminPort: config.ADMIN_PORT,
    engine: config.ENGINE as ServeOptions["engine"],
    graceMs: config.GRACE_MS,
    drainDelayMs: config.DRAIN_DELAY_MS,
    healthIntervalMs: config.HEALTH_INTERVAL_MS,
    maxReceiveBytes: config.MAX_RECEIVE_BYTES,
    maxSendBytes: config.MAX_SEND_BYTES,
    mesh: config.MESH ? { localPort: config.LOCAL_GRPC_PORT } : undefined,
  };
}

/** A service built from its configuration but not serving yet: what serve() needs, and its lifecycle. */
export interface ServicePart {
  name: string;
  entries: ServiceEntry[];
  readiness: ReadinessCheck[];
  adminRoutes?: Record<string, AdminRoute>;
  /** Background work to begin once serving (orders' recovery loop). */
  start?: () => void;
  /** Stops background work and closes the service's database. */
  close: () => Promise<void>;
}

/** Serves one part on its own server: the services mode, one process per service. */
export async function servePart(part: ServicePart, config: CommonConfig, opts: { signals?: boolean; log?: Logger } = {}): Promise<RunningServer> {
  try {
    const server = await serve({
      ...serveOptionsFrom(config),
      name: part.name,
      services: part.entries,
      readiness: part.readiness,
      adminRoutes: part.adminRoutes,
      onShutdown: part.close,
      signals: opts.signals,
      log: opts.log,
    });
    part.start?.();
    return server;
  } catch (err) {
    await part.close();
    throw err;
  }
}
