// The traces an experiment report draws: the slowest PlaceOrder, and one that failed (preferably inside
// the fault window, where the fault's effect shows).
import { byTrace, codeOf, type SpanRecord } from "./spans.js";
import { type TraceView, traceView } from "./waterfall.js";

export interface OrderTrace {
  root: SpanRecord;
  spans: SpanRecord[];
  /** PlaceOrder answered an error, or the order was compensated / a step failed inside it. */
  failed: boolean;
}

/** Every trace whose entry is orders' PlaceOrder server span. */
export function placeOrderTraces(spans: SpanRecord[]): OrderTrace[] {
  const out: OrderTrace[] = [];
  for (const trace of byTrace(spans).values()) {
    const ids = new Set(trace.map((s) => s.spanId));
    const root = trace.find((s) => s.kind === "server" && s.name.endsWith("OrderService/PlaceOrder") && !ids.has(s.parentSpanId));
    if (!root) continue;
    const code = codeOf(root);
    const failed = code !== "OK" || trace.some((s) => s.error || s.name === "saga compensate");
    out.push({ root, spans: trace, failed });
  }
  return out;
}

/** The slowest PlaceOrder, and the slowest failed one inside `window` (epoch ms) or else anywhere. */
export function pickTraces(spans: SpanRecord[], window?: { fromMs: number; toMs: number }): { slowest?: TraceView; failed?: TraceView } {
  const all = placeOrderTraces(spans);
  const slowestOf = (list: OrderTrace[]) => list.reduce<OrderTrace | undefined>((a, b) => (!a || b.root.durationMs > a.root.durationMs ? b : a), undefined);
  const failed = all.filter((t) => t.failed);
  const inWindow = window ? failed.filter((t) => t.root.startMs >= window.fromMs && t.root.startMs <= window.toMs) : [];
  const slowest = slowestOf(all);
  const failedPick = slowestOf(inWindow.length ? inWindow : failed);
  return { slowest: slowest && traceView(slowest.spans), failed: failedPick && traceView(failedPick.spans) };
}
