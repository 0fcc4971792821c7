// Structured logs: pino, one JSON line per event, or one readable line with LOG_FORMAT=pretty.
import { createRequire } from "node:module";
import { type DestinationStream, type Logger, pino } from "pino";
import { traceLogFields, tracingEnabled } from "./tracing.js";

export type { Logger };

type Pretty = typeof import("pino-pretty");

/**
 * pino-pretty, loaded only when asked for: it is a development dependency (`npm start`), so the images
 * (`npm ci --omit=dev`) do not have it. Synchronous (require) because logger() is.
 */
function loadPretty(): Pretty | undefined {
  try {
    return createRequire(import.meta.url)("pino-pretty") as Pretty;
  } catch {
    return undefined;
  }
}

/**
 * A logger tagged with the service name. LOG_LEVEL and LOG_FORMAT (json | pretty) come from the environment.
 * `destination` (JSON only) is for tests that read what a service logs.
 */
export function logger(service: string, source: Record<string, string | undefined> = process.env, destination?: DestinationStream): Logger {
  const level = source.LOG_LEVEL ?? "info";
  // mixin: the current trace and span ids on every line logged during a traced call (none while tracing is off).
  const options = { level, base: { service }, redact: ["password", "card.number", "authorization"], ...(tracingEnabled() ? { mixin: traceLogFields } : {}) };
  if (source.LOG_FORMAT === "pretty") {
    const pretty = loadPretty();
    if (pretty)
      return pino(
        options,
        pretty({
          sync: true,
          colorize: process.stdout.isTTY,
          ignore: "pid,hostname,service",
          messageFormat: `[${service}] {msg}`,
          translateTime: "HH:MM:ss.l",
          singleLine: true,
        }),
      );
    const log = pino(options);
    log.warn("LOG_FORMAT=pretty needs pino-pretty, a development dependency not installed here: logging JSON");
    return log;
  }
  return destination ? pino(options, destination) : pino(options);
}
