// The tracing settings (OTEL_* variables, errors naming the variable) and the bounded export queue. Nothing
// here starts the SDK: tests share one process, and tracing stays off in it.
import type { ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import * as sdk from "@opentelemetry/sdk-trace-base";
import { expect } from "chai";
import { ConfigError, registry } from "#kit";
import { tracingConfig, tracingEnabled } from "../src/shared/tracing.js";
import { clientSpans, serverSpans } from "../src/shared/tracing-rpc.js";
import { CountedBatchProcessor, samplerFor } from "../src/shared/tracing-sdk.js";

const dropped = async (reason: string) => {
  const m = await registry.getSingleMetric("tracing_spans_dropped_total")?.get();
  return m?.values.filter((v) => v.labels.reason === reason && v.labels.exporter === "test").reduce((n, v) => n + v.value, 0) ?? 0;
};

describe("tracing settings and the export queue", () => {
  it("is off without a destination, or when switched off, whatever else is set", () => {
    expect(tracingConfig("x", {})).to.equal(undefined);
    expect(tracingConfig("x", { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" })).to.equal(undefined);
    for (const offSwitch of [{ OTEL_SDK_DISABLED: "true" }, { OTEL_TRACES_EXPORTER: "none" }, { OTEL_TRACES_SAMPLER: "always_off" }])
      expect(
        tracingConfig("x", { TRACES_FILE: "/tmp/x.jsonl", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", ...offSwitch }),
        JSON.stringify(offSwitch),
      ).to.equal(undefined);
  });

  it("reads the destinations, the sampler and the queue limits", () => {
    const c = tracingConfig("orders", {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
      TRACES_FILE: "/tmp/orders.jsonl",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.1",
      OTEL_BSP_MAX_QUEUE_SIZE: "100",
    });
    expect(c).to.deep.include({ service: "orders", sampler: "parentbased_traceidratio", ratio: 0.1, file: "/tmp/orders.jsonl" });
    expect(c?.otlp).to.deep.equal({ url: "http://collector:4318/v1/traces", protocol: "http/protobuf" });
    expect(c?.batch.maxQueueSize).to.equal(100);
    expect(samplerFor(sdk, { sampler: "parentbased_traceidratio", ratio: 0.1 }).toString()).to.match(/ParentBased.*TraceIdRatioBased\{0\.1\}/);
    // The signal's own variable is the whole URL; gRPC takes the endpoint as it is.
    expect(tracingConfig("x", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom" })?.otlp?.url).to.equal("http://c:4318/custom");
    expect(tracingConfig("x", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })?.otlp).to.deep.equal({
      url: "http://c:4317",
      protocol: "grpc",
    });
    expect(tracingConfig("x", { TRACES_FILE: "/f", OTEL_SERVICE_NAME: "renamed" })?.service).to.equal("renamed");
  });

  it("names the variable when a value is wrong", () => {
    const bad: [Record<string, string>, string][] = [
      [{ OTEL_TRACES_SAMPLER: "sometimes" }, "OTEL_TRACES_SAMPLER"],
      [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, "OTEL_TRACES_SAMPLER_ARG"],
      [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "ten percent" }, "OTEL_TRACES_SAMPLER_ARG"],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT"],
      [{ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
      [{ OTEL_TRACES_EXPORTER: "zipkin" }, "OTEL_TRACES_EXPORTER"],
      [{ TRACES_FILE: "/f", OTEL_BSP_MAX_QUEUE_SIZE: "0" }, "OTEL_BSP_MAX_QUEUE_SIZE"],
    ];
    for (const [source, variable] of bad) {
      expect(() => tracingConfig("x", source), JSON.stringify(source))
        .to.throw(ConfigError)
        .with.property("message")
        .that.contains(variable);
    }
  });

  it("installs no interceptor while tracing is off (an untraced call pays nothing)", () => {
    expect(tracingEnabled()).to.equal(false);
    expect(serverSpans()).to.deep.equal([]);
    expect(clientSpans()).to.deep.equal([]);
  });

  it("drops (and counts) spans beyond the queue instead of waiting for a stuck exporter", async () => {
    const stuck: SpanExporter = { export: (_spans, _done: (r: ExportResult) => void) => undefined, shutdown: async () => undefined };
    const processor = new CountedBatchProcessor(sdk.BatchSpanProcessor, stuck, "test", {
      maxQueueSize: 2,
      maxExportBatchSize: 2,
      scheduledDelayMillis: 60_000,
      exportTimeoutMillis: 1000,
    });
    const span = (sampled: boolean) =>
      ({ spanContext: () => ({ traceId: "a".repeat(32), spanId: "b".repeat(16), traceFlags: sampled ? 1 : 0 }) }) as unknown as ReadableSpan;
    const before = await dropped("queue_full");
    for (let i = 0; i < 5; i++) processor.onEnd(span(true));
    processor.onEnd(span(false)); // not sampled: never queued, never counted
    expect((await dropped("queue_full")) - before).to.equal(3);
  });
});
