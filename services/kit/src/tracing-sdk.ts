// The OpenTelemetry SDK side of tracing.ts, loaded only when tracing is on: the provider, the sampler, the
// propagator, and the exporters behind a bounded, counted queue.
import { type TextMapPropagator, TraceFlags, type Tracer } from "@opentelemetry/api";
import { CompositePropagator, ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { OtlpJsonLinesExporter } from "./trace-file.js";
import { dropped, exported, type TracingConfig } from "./tracing.js";

export function samplerFor(config: Pick<TracingConfig, "sampler" | "ratio">): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.ratio);
  switch (config.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "traceidratio":
      return ratio;
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratio });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * W3C trace context and B3 (single `b3` and multi `x-b3-*` headers), the formats the kit forwards and Envoy
 * reads. On the way in, traceparent wins when both are valid; a malformed header is ignored (a new trace).
 * On the way out all three are written, so every hop after this one sees the same parent in each format.
 */
export function kitPropagator(): TextMapPropagator {
  return new CompositePropagator({
    propagators: [
      new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }),
      new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }),
      new W3CTraceContextPropagator(),
    ],
  });
}

/**
 * The SDK's BatchSpanProcessor behind a count of the spans it holds, so a full queue drops the span here,
 * where it is counted, instead of silently inside the SDK. Ending a span never waits on the exporter.
 */
export class CountedBatchProcessor implements SpanProcessor {
  private queued = 0;
  private readonly inner: BatchSpanProcessor;
  constructor(
    exporter: SpanExporter,
    private readonly name: string,
    private readonly limits: TracingConfig["batch"],
  ) {
    const counting: SpanExporter = {
      export: (spans, done) => {
        this.queued -= spans.length;
        exporter.export(spans, (result) => {
          if (result.code === ExportResultCode.SUCCESS) exported.inc({ exporter: name }, spans.length);
          else dropped.inc({ exporter: name, reason: "export_failed" }, spans.length);
          done(result);
        });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    this.inner = new BatchSpanProcessor(counting, limits);
  }
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.limits.maxQueueSize) {
      dropped.inc({ exporter: this.name, reason: "queue_full" });
      return;
    }
    this.queued++;
    this.inner.onEnd(span);
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

/** Starts the SDK for `config`: a provider registered as the global one (AsyncLocalStorage context). */
export async function startSdk(
  config: TracingConfig,
  version?: string,
): Promise<{ tracer: Tracer; propagator: TextMapPropagator; flush: () => Promise<void> }> {
  const processors: SpanProcessor[] = [];
  if (config.otlp) {
    // Only the exporter in use is loaded (the gRPC one brings its own channel code).
    const exporter =
      config.otlp.protocol === "grpc"
        ? new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter({ url: config.otlp.url })
        : new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter({ url: config.otlp.url });
    processors.push(new CountedBatchProcessor(exporter, "otlp", config.batch));
  }
  if (config.file) processors.push(new CountedBatchProcessor(new OtlpJsonLinesExporter(config.file), "file", config.batch));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service, ...(version ? { [ATTR_SERVICE_VERSION]: version } : {}) }),
    sampler: samplerFor(config),
    spanProcessors: processors,
  });
  const propagator = kitPropagator();
  provider.register({ propagator });
  return { tracer: provider.getTracer("meshmart-kit"), propagator, flush: () => provider.forceFlush() };
}
