// Structured logs: pino, one JSON line per event, or one readable line with LOG_FORMAT=pretty.
import { type DestinationStream, type Logger, pino } from "pino";
import pretty from "pino-pretty";
import { traceLogFields, tracingEnabled } from "./tracing.js";

export type { Logger };

/**
 * A logger tagged with the service name. LOG_LEVEL and LOG_FORMAT (json | pretty) come from the environment.
 * `destination` (JSON only) is for tests that read what a service logs.
 */
export function logger(service: string, source: Record<string, string | undefined> = process.env, destination?: DestinationStream): Logger {
  const level = source.LOG_LEVEL ?? "info";
  // mixin: the current trace and span ids on every line logged during a traced call (none while tracing is off).
  const options = { level, base: { service }, redact: ["password", "card.number", "authorization"], ...(tracingEnabled() ? { mixin: traceLogFields } : {}) };
  if (source.LOG_FORMAT === "pretty") {
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
  }
  return destination ? pino(options, destination) : pino(options);
}
