// A span exporter writing to a local file: one line per export batch, each line an OTLP/JSON
// ExportTraceServiceRequest (the OpenTelemetry "OTLP file" format, which the collector's otlpjsonfile
// receiver also reads). The local stack gives each service its own file; tools/traffic/trace reads them.
// The SDK modules come from tracing-sdk.ts (loaded only when tracing is on), not imported here.
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";

export class OtlpJsonLinesExporter implements SpanExporter {
  // Appends one after another, so two batches never interleave within a line.
  private writing: Promise<unknown>;
  constructor(
    readonly path: string,
    /** @opentelemetry/otlp-transformer's JsonTraceSerializer.serializeRequest. */
    private readonly serialize: (spans: ReadableSpan[]) => Uint8Array | undefined,
    /** @opentelemetry/core's ExportResultCode. */
    private readonly codes: { SUCCESS: ExportResult["code"]; FAILED: ExportResult["code"] },
  ) {
    this.writing = mkdir(dirname(path), { recursive: true });
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const line = Buffer.concat([this.serialize(spans) ?? new Uint8Array(), Buffer.from("\n")]);
    this.writing = this.writing
      .then(() => appendFile(this.path, line))
      .then(
        () => done({ code: this.codes.SUCCESS }),
        (error: Error) => done({ code: this.codes.FAILED, error }),
      );
  }

  async forceFlush(): Promise<void> {
    await this.writing.catch(() => undefined);
  }

  shutdown(): Promise<void> {
    return this.forceFlush();
  }
}
