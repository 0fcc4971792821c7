// The OpenTelemetry SDK side of tracing.ts, used only when tracing is on. Every SDK package is imported
// dynamically (the build bundles the kit and keeps node_modules external, and a static import there would
// load the SDK into every service at start, tracing or not); only types are imported statically.
import { type TextMapPropagator, TraceFlags, type Tracer } from "@opentelemetry/api";
import type { ExportResult } from "@opentelemetry/core";
import type { BatchSpanProcessor, ReadableSpan, Sampler, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OtlpJsonLinesExporter } from "./trace-file.js";
import { dropped, exported, type TracingAttributes, type TracingConfig } from "./tracing.js";

type SdkBase = typeof import("@opentelemetry/sdk-trace-base");

export function samplerFor(sdk: SdkBase, config: Pick<TracingConfig, "sampler" | "ratio">): Sampler {
  const ratio = new sdk.TraceIdRatioBasedSampler(config.ratio);
  switch (config.sampler) {
    case "always_on":
      return new sdk.AlwaysOnSampler();
    case "traceidratio":
      return ratio;
    case "parentbased_always_off":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new sdk.ParentBasedSampler({ root: ratio });
    default:
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
}

/**
 * The SDK's BatchSpanProcessor behind a count of the spans it holds, so a full queue drops the span here,
 * where it is counted, instead of silently inside the SDK. Ending a span never waits on the exporter.
 */
export class CountedBatchProcessor implements SpanProcessor {
  private queued = 0;
  private readonly inner: BatchSpanProcessor;
  constructor(
    Batch: typeof BatchSpanProcessor,
    exporter: SpanExporter,
    private readonly name: string,
    private readonly limits: TracingConfig["batch"],
  ) {
    const counting: SpanExporter = {
      export: (spans, done) => {
        this.queued -= spans.length;
        exporter.export(spans, (result: ExportResult) => {
          if (result.code === 0)
            exported.inc({ exporter: name }, spans.length); // ExportResultCode.SUCCESS
          else dropped.inc({ exporter: name, reason: "export_failed" }, spans.length);
          done(result);
        });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    this.inner = new Batch(counting, limits);
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
): Promise<{ tracer: Tracer; propagator: TextMapPropagator; attributes: TracingAttributes; flush: () => Promise<void> }> {
  const [core, b3, resources, base, node, semconv, transformer] = await Promise.all([
    import("@opentelemetry/core"),
    import("@opentelemetry/propagator-b3"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/semantic-conventions"),
    import("@opentelemetry/otlp-transformer"),
  ]);
  const processors: SpanProcessor[] = [];
  if (config.otlp) {
    // Only the exporter in use is loaded (the gRPC one brings its own channel code).
    const exporter =
      config.otlp.protocol === "grpc"
        ? new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter({ url: config.otlp.url })
        : new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter({ url: config.otlp.url });
    processors.push(new CountedBatchProcessor(base.BatchSpanProcessor, exporter, "otlp", config.batch));
  }
  if (config.file) {
    const file = new OtlpJsonLinesExporter(config.file, (spans) => transformer.JsonTraceSerializer.serializeRequest(spans), core.ExportResultCode);
    processors.push(new CountedBatchProcessor(base.BatchSpanProcessor, file, "file", config.batch));
  }
  const provider = new node.NodeTracerProvider({
    resource: resources.resourceFromAttributes({
      [semconv.ATTR_SERVICE_NAME]: config.service,
      ...(version ? { [semconv.ATTR_SERVICE_VERSION]: version } : {}),
    }),
    sampler: samplerFor(base, config),
    spanProcessors: processors,
  });
  // W3C trace context and B3 (single `b3` and multi `x-b3-*`), the formats the kit forwards and Envoy reads.
  // On the way in traceparent wins when both are valid (the last propagator that finds one); a malformed
  // header is ignored (a new trace). On the way out all three are written, so the next hop sees one parent.
  const propagator = new core.CompositePropagator({
    propagators: [
      new b3.B3Propagator({ injectEncoding: b3.B3InjectEncoding.MULTI_HEADER }),
      new b3.B3Propagator({ injectEncoding: b3.B3InjectEncoding.SINGLE_HEADER }),
      new core.W3CTraceContextPropagator(),
    ],
  });
  provider.register({ propagator });
  return {
    tracer: provider.getTracer("meshmart-kit"),
    propagator,
    // The semantic conventions' names (stable RPC and database attributes as of semantic-conventions 1.45).
    attributes: {
      rpcSystem: semconv.ATTR_RPC_SYSTEM_NAME,
      rpcMethod: semconv.ATTR_RPC_METHOD,
      rpcStatus: semconv.ATTR_RPC_STATUS_CODE,
      serverAddress: semconv.ATTR_SERVER_ADDRESS,
      serverPort: semconv.ATTR_SERVER_PORT,
      peerAddress: semconv.ATTR_NETWORK_PEER_ADDRESS,
      dbSystem: semconv.ATTR_DB_SYSTEM_NAME,
      dbNamespace: semconv.ATTR_DB_NAMESPACE,
      dbOperation: semconv.ATTR_DB_OPERATION_NAME,
      dbCollection: semconv.ATTR_DB_COLLECTION_NAME,
    },
    flush: () => provider.forceFlush(),
  };
}
