// Reads the span files the services write with TRACES_FILE (one OTLP/JSON ExportTraceServiceRequest per
// line) into flat records, and puts one trace's spans in waterfall order.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** "" for a trace's root (or a span whose parent is in a process that does not trace). */
  parentSpanId: string;
  name: string;
  kind: "internal" | "server" | "client" | "producer" | "consumer";
  /** service.name, with service.version when set ("catalog v2"). */
  service: string;
  /** Epoch milliseconds (fractional). */
  startMs: number;
  durationMs: number;
  error: boolean;
  statusMessage: string;
  attributes: Record<string, string | number | boolean>;
}

const KINDS = ["internal", "internal", "server", "client", "producer", "consumer"] as const;

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: OtlpValue }[];
  status?: { code?: number; message?: string };
}
interface OtlpRequest {
  resourceSpans?: { resource?: { attributes?: { key: string; value: OtlpValue }[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

function value(v: OtlpValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return "";
}

const attrs = (list: { key: string; value: OtlpValue }[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));
const nanosToMs = (n: string) => Number(BigInt(n) / 1000n) / 1000;

/** The spans in one OTLP/JSON-lines text; a torn last line (a file still being written) is skipped. */
export function parseSpanLines(text: string): SpanRecord[] {
  const out: SpanRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let req: OtlpRequest;
    try {
      req = JSON.parse(line) as OtlpRequest;
    } catch {
      continue;
    }
    for (const rs of req.resourceSpans ?? []) {
      const res = attrs(rs.resource?.attributes);
      const service = [res["service.name"], res["service.version"]].filter((x) => x !== undefined && x !== "").join(" ") || "?";
      for (const ss of rs.scopeSpans ?? [])
        for (const s of ss.spans ?? []) {
          const startMs = nanosToMs(s.startTimeUnixNano);
          out.push({
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? "",
            name: s.name,
            kind: KINDS[s.kind ?? 0] ?? "internal",
            service,
            startMs,
            durationMs: nanosToMs(s.endTimeUnixNano) - startMs,
            error: s.status?.code === 2,
            statusMessage: s.status?.message ?? "",
            attributes: attrs(s.attributes),
          });
        }
    }
  }
  return out;
}

/** Every span in `dir`'s *.jsonl files (none when the directory does not exist). */
export function readSpans(dir: string): SpanRecord[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl"))
    .flatMap((f) => parseSpanLines(readFileSync(join(dir, f), "utf8")));
}

/** Spans grouped by trace id. */
export function byTrace(spans: SpanRecord[]): Map<string, SpanRecord[]> {
  const traces = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    const list = traces.get(s.traceId);
    if (list) list.push(s);
    else traces.set(s.traceId, [s]);
  }
  return traces;
}

/** The ids of the traces that touched `orderId` (PlaceOrder's, and any recovery's), oldest first. */
export function tracesOfOrder(spans: SpanRecord[], orderId: string): string[] {
  const first = new Map<string, number>();
  for (const s of spans)
    if (s.attributes["meshmart.order.id"] === orderId) first.set(s.traceId, Math.min(first.get(s.traceId) ?? Number.POSITIVE_INFINITY, s.startMs));
  return [...first.entries()].sort((a, b) => a[1] - b[1]).map(([id]) => id);
}

/** The gRPC status name of an RPC span ("OK", "UNAVAILABLE"), "ERROR" for another failed span, else "". */
export function codeOf(s: SpanRecord): string {
  const code = s.attributes["rpc.status_code"];
  if (typeof code === "string") return code;
  return s.error ? "ERROR" : "";
}

export interface Row {
  span: SpanRecord;
  depth: number;
}

/**
 * One trace's spans depth-first from its roots, children by start time: the waterfall's rows. A span whose
 * parent is not among them (a process that does not trace, or a caller outside) counts as a root.
 */
export function waterfallRows(spans: SpanRecord[]): Row[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, SpanRecord[]>();
  const roots: SpanRecord[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) {
      const list = children.get(s.parentSpanId);
      if (list) list.push(s);
      else children.set(s.parentSpanId, [s]);
    } else roots.push(s);
  }
  const rows: Row[] = [];
  const walk = (s: SpanRecord, depth: number) => {
    rows.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort((a, b) => a.startMs - b.startMs)) walk(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.startMs - b.startMs)) walk(r, 0);
  return rows;
}
