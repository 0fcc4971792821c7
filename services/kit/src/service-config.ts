// The configuration every service shares, so each server.ts lists only what is its own.
import { oneOf } from "./env.js";
import type { ServeOptions } from "./serve.js";

/** Env defaults common to every service; spread into the service's own defaults. */
export const commonDefaults = {
  HOST: "0.0.0.0",
  MONGODB_URI: "mongodb://127.0.0.1:27017",
  ENGINE: oneOf(["grpc-js", "connect-node"], "grpc-js"),
  GRACE_MS: 10_000,
  DRAIN_DELAY_MS: 0,
  HEALTH_INTERVAL_MS: 2000,
};

interface CommonConfig {
  PORT: number;
  ADMIN_PORT: number;
  HOST: string;
  ENGINE: string;
  GRACE_MS: number;
  DRAIN_DELAY_MS: number;
  HEALTH_INTERVAL_MS: number;
}

/** The serve() options that come straight from the common configuration. */
export function serveOptionsFrom(
  config: CommonConfig,
): Pick<ServeOptions, "host" | "port" | "adminPort" | "engine" | "graceMs" | "drainDelayMs" | "healthIntervalMs"> {
  return {
    host: config.HOST,
    port: config.PORT,
    adminPort: config.ADMIN_PORT,
    engine: config.ENGINE as ServeOptions["engine"],
    graceMs: config.GRACE_MS,
    drainDelayMs: config.DRAIN_DELAY_MS,
    healthIntervalMs: config.HEALTH_INTERVAL_MS,
  };
}
