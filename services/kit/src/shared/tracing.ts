// OpenTelemetry tracing, set up from the standard OTEL_* variables. The kit makes the spans itself (RPC spans
// in tracing-rpc.ts, database spans from the driver's command events below, `inSpan` for a service's own
// steps) rather than through the require-hook instrumentations, which see neither the connect-node engine
// nor the monolith's in-memory transport, and which do not hook ESM imports run by tsx (README "Tracing").
//
// Off unless a destination is configured (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and/or TRACES_FILE); off
// means no SDK at all: its modules are not even loaded (tracing-sdk.ts is imported on demand), no
// interceptor is installed, no command monitoring, and every helper here returns at its first line.
import { type Attributes, type Context, context, type Span, SpanKind, SpanStatusCode, type TextMapPropagator, type Tracer, trace } from "@opentelemetry/api";
import type { Connection } from "mongoose";
import { Counter } from "prom-client";
import { ConfigError } from "./env.js";
import { registry } from "./metrics.js";

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;

export interface TracingConfig {
  service: string;
  sampler: (typeof SAMPLERS)[number];
  /** Ratio for the *traceidratio samplers (OTEL_TRACES_SAMPLER_ARG), 0..1. */
  ratio: number;
  /** OTLP traces URL and protocol, when an endpoint is set. */
  otlp?: { url: string; protocol: "http/protobuf" | "grpc" };
  /** JSON-lines file (one OTLP/JSON export request per line), when TRACES_FILE is set. */
  file?: string;
  /** Batch span processor limits (OTEL_BSP_*): a full queue drops spans (counted) instead of growing. */
  batch: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMillis: number; exportTimeoutMillis: number };
}

function intVar(source: Record<string, string | undefined>, name: string, fallback: number, min: number): number {
  const raw = source[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `must be a whole number ≥ ${min}, got "${raw}"`);
  return n;
}

/** The tracing settings in `source`, or undefined when tracing is off. Bad values throw ConfigError naming the variable. */
export function tracingConfig(service: string, source: Record<string, string | undefined> = process.env): TracingConfig | undefined {
  const sampler = (source.OTEL_TRACES_SAMPLER || "parentbased_always_on").trim().toLowerCase();
  if (!(SAMPLERS as readonly string[]).includes(sampler))
    throw new ConfigError("OTEL_TRACES_SAMPLER", `must be one of ${SAMPLERS.join(", ")}, got "${sampler}"`);
  const rawRatio = source.OTEL_TRACES_SAMPLER_ARG;
  const ratio = rawRatio === undefined || rawRatio === "" || !sampler.endsWith("traceidratio") ? 1 : Number(rawRatio);
  if (!(ratio >= 0 && ratio <= 1)) throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", `must be a ratio 0..1, got "${rawRatio}"`);

  const protocol = (source.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || source.OTEL_EXPORTER_OTLP_PROTOCOL || "http/protobuf").trim();
  if (protocol !== "http/protobuf" && protocol !== "grpc")
    throw new ConfigError(
      source.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" : "OTEL_EXPORTER_OTLP_PROTOCOL",
      `must be http/protobuf or grpc, got "${protocol}"`,
    );
  let otlp: TracingConfig["otlp"];
  for (const name of ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] as const) {
    const raw = source[name]?.trim();
    if (!raw) continue;
    if (!/^https?:\/\/[^/]/.test(raw) || !URL.canParse(raw)) throw new ConfigError(name, `must be an http(s) URL, got "${raw}"`);
    // The signal-specific variable is the full URL; the general one is a base the HTTP exporter appends /v1/traces to.
    const url = name === "OTEL_EXPORTER_OTLP_ENDPOINT" && protocol === "http/protobuf" ? `${raw.replace(/\/+$/, "")}/v1/traces` : raw;
    otlp = { url, protocol };
    break;
  }
  const file = source.TRACES_FILE?.trim() || undefined;
  const exporters = (source.OTEL_TRACES_EXPORTER ?? "").trim();
  if (exporters !== "" && exporters !== "otlp" && exporters !== "none")
    throw new ConfigError("OTEL_TRACES_EXPORTER", `must be otlp or none, got "${exporters}"`);

  if (source.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true" || exporters === "none" || sampler === "always_off") return undefined;
  if (!otlp && !file) return undefined;
  return {
    service: source.OTEL_SERVICE_NAME?.trim() || service,
    sampler: sampler as TracingConfig["sampler"],
    ratio,
    otlp,
    file,
    batch: {
      maxQueueSize: intVar(source, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1),
      maxExportBatchSize: intVar(source, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1),
      scheduledDelayMillis: intVar(source, "OTEL_BSP_SCHEDULE_DELAY", 5000, 0),
      exportTimeoutMillis: intVar(source, "OTEL_BSP_EXPORT_TIMEOUT", 30_000, 1),
    },
  };
}

/** Trace headers a call carries; replaced on every outgoing call by the client span's own. */
export const TRACE_HEADERS = ["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"];

/** Spans dropped and exported (by tracing-sdk.ts), on /metrics whether tracing is on or not. */
export const dropped = new Counter({
  name: "tracing_spans_dropped_total",
  help: "Finished spans not exported: the export queue was full (queue_full) or the exporter failed (export_failed).",
  labelNames: ["exporter", "reason"],
  registers: [registry],
});
export const exported = new Counter({
  name: "tracing_spans_exported_total",
  help: "Spans handed to an exporter that reported success.",
  labelNames: ["exporter"],
  registers: [registry],
});

/** The semantic conventions' attribute names the kit's spans use (from @opentelemetry/semantic-conventions, loaded with the SDK). */
export interface TracingAttributes {
  rpcSystem: string;
  rpcMethod: string;
  rpcStatus: string;
  serverAddress: string;
  serverPort: string;
  peerAddress: string;
  dbSystem: string;
  dbNamespace: string;
  dbOperation: string;
  dbCollection: string;
}

let tracer: Tracer | undefined;
let propagator: TextMapPropagator | undefined;
let attributes: TracingAttributes | undefined;
let flush: (() => Promise<void>) | undefined;

/** Whether this process records spans (initTracing found a destination). */
export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

/** The kit's tracer and the propagator it reads and writes trace headers with; undefined when tracing is off. */
export function kitTracing(): { tracer: Tracer; propagator: TextMapPropagator; attributes: TracingAttributes } | undefined {
  return tracer && propagator && attributes ? { tracer, propagator, attributes } : undefined;
}

/**
 * Starts tracing for this process from the environment (once); returns the settings, or undefined when off.
 * Entry points await it first, before any logger, database connection or client is made.
 */
export async function initTracing(
  service: string,
  source: Record<string, string | undefined> = process.env,
  version?: string,
): Promise<TracingConfig | undefined> {
  const config = tracingConfig(service, source);
  if (!config || tracer) return config;
  const sdk = await import("./tracing-sdk.js");
  const started = await sdk.startSdk(config, version);
  ({ tracer, propagator, attributes, flush } = started);
  return config;
}

/** Writes out the spans still queued (at shutdown, so the last calls' spans are not lost). */
export async function flushTracing(): Promise<void> {
  await flush?.().catch(() => undefined);
}

/** The current trace and span ids, for log lines (pino mixin); {} when off or outside any span. */
export function traceLogFields(): { traceId?: string; spanId?: string } {
  if (!tracer) return {};
  const sc = trace.getSpan(context.active())?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return {};
  return { traceId: sc.traceId, spanId: sc.spanId };
}

/** Sets attributes on the current span (e.g. the order id on PlaceOrder's server span); nothing when off. */
export function annotate(attributes: Attributes): void {
  if (!tracer) return;
  trace.getSpan(context.active())?.setAttributes(attributes);
}

/**
 * Runs `fn` inside a span named `name` (a step of a service's own work, such as a saga step), ending it with
 * an error status if `fn` throws. `root` starts a new trace (background work such as recovery). Off: just `fn()`.
 */
export function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>, opts: { root?: boolean } = {}): Promise<T> {
  if (!tracer) return fn();
  return tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes, root: opts.root }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      markFailed(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Error status and message on `span`, with the gRPC code name when the error carries one. */
export function markFailed(span: Span, err: unknown, code?: string): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code ? `${code}: ${message}` : message });
}

// Command names whose first field is not a collection name.
const NO_COLLECTION = new Set([
  "ping",
  "hello",
  "isMaster",
  "ismaster",
  "buildInfo",
  "endSessions",
  "getMore",
  "killCursors",
  "listCollections",
  "listIndexes",
]);

/**
 * A client span for every MongoDB command sent while a recorded span is current (so readiness pings and the
 * recovery loop's polling make no root spans), from the driver's command monitoring events. The driver
 * emits commandStarted inside the caller's async context, so the span's parent is the caller's span.
 */
export function traceCommands(client: ReturnType<Connection["getClient"]>): void {
  const on = kitTracing();
  if (!on) return;
  const { tracer: t, attributes: a } = on;
  const open = new Map<number, Span>();
  client.on("commandStarted", (e) => {
    const parent: Context = context.active();
    if (!trace.getSpan(parent)?.isRecording()) return;
    const first = e.command?.[e.commandName];
    const collection = !NO_COLLECTION.has(e.commandName) && typeof first === "string" ? first : undefined;
    const span = t.startSpan(
      collection ? `${e.commandName} ${collection}` : e.commandName,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [a.dbSystem]: "mongodb",
          [a.dbNamespace]: e.databaseName,
          [a.dbOperation]: e.commandName,
          ...(collection ? { [a.dbCollection]: collection } : {}),
        },
      },
      parent,
    );
    open.set(e.requestId, span);
  });
  client.on("commandSucceeded", (e) => {
    open.get(e.requestId)?.end();
    open.delete(e.requestId);
  });
  client.on("commandFailed", (e) => {
    const span = open.get(e.requestId);
    if (!span) return;
    markFailed(span, e.failure);
    span.end();
    open.delete(e.requestId);
  });
}
