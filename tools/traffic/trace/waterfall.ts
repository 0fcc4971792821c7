// One trace as a waterfall: a row per span (service, method, duration, gRPC code), nested by parent, bars on
// a shared time axis; as text for the terminal and as SVG for the reports. The SVG can also show where in
// an experiment the trace happened, against the fault window.
import { codeOf, type SpanRecord, waterfallRows } from "./spans.js";

/** One row of a drawn trace: what the report keeps (its JSON stays self-contained). */
export interface TraceRow {
  depth: number;
  service: string;
  name: string;
  kind: SpanRecord["kind"];
  /** From the trace's first span, ms. */
  offsetMs: number;
  durationMs: number;
  /** gRPC status name for RPC spans ("OK", "UNAVAILABLE"), "ERROR" for another failed span, "" otherwise. */
  code: string;
  error: boolean;
}

export interface TraceView {
  traceId: string;
  orderId: string;
  /** When the trace began: epoch ms. */
  startMs: number;
  durationMs: number;
  /** The root span's code (PlaceOrder's answer). */
  code: string;
  rows: TraceRow[];
}

const short = (name: string) => name.replace(/^[a-z0-9_.]+\.(?=[A-Z])/, ""); // meshmart.catalog.v1.CatalogService/X → CatalogService/X

function label(s: SpanRecord): string {
  if (s.attributes["db.system.name"]) return `db ${s.name}`;
  if (s.kind === "client") return `→ ${short(s.name)}`;
  return short(s.name);
}

/** A trace's spans as the rows to draw. */
export function traceView(spans: SpanRecord[]): TraceView {
  const rows = waterfallRows(spans);
  const t0 = Math.min(...spans.map((s) => s.startMs));
  const end = Math.max(...spans.map((s) => s.startMs + s.durationMs));
  const root = rows[0]?.span;
  const orderId = spans.map((s) => s.attributes["meshmart.order.id"]).find((v) => typeof v === "string") ?? "";
  return {
    traceId: root?.traceId ?? "",
    orderId: String(orderId),
    startMs: t0,
    durationMs: end - t0,
    code: root ? codeOf(root) : "",
    rows: rows.map(({ span, depth }) => ({
      depth,
      service: span.service,
      name: label(span),
      kind: span.kind,
      offsetMs: span.startMs - t0,
      durationMs: span.durationMs,
      code: codeOf(span),
      error: span.error,
    })),
  };
}

const f1 = (n: number) => n.toFixed(1);

/** The waterfall as text: offset, duration, code, service, then the span indented under its parent. */
export function waterfallText(v: TraceView): string {
  const width = 30;
  const lines = [
    `trace ${v.traceId}${v.orderId ? ` (order ${v.orderId})` : ""}: ${f1(v.durationMs)} ms, ${v.rows.length} spans, ${v.code || "no code"}`,
    "",
    `${"start ms".padStart(9)} ${"ms".padStart(8)}  ${"code".padEnd(19)} ${"service".padEnd(11)} ${"".padEnd(width)}  span`,
  ];
  for (const r of v.rows) {
    const from = Math.floor((r.offsetMs / (v.durationMs || 1)) * width);
    const len = Math.max(1, Math.round((r.durationMs / (v.durationMs || 1)) * width));
    const bar = `${" ".repeat(from)}${(r.error ? "!" : "=").repeat(Math.min(len, width - from))}`.padEnd(width);
    lines.push(
      `${f1(r.offsetMs).padStart(9)} ${f1(r.durationMs).padStart(8)}  ${(r.code || "-").padEnd(19)} ${r.service.padEnd(11)} ${bar}  ${"  ".repeat(r.depth)}${r.name}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const r1 = (n: number) => Math.round(n * 10) / 10;

const FILL: Record<string, string> = { server: "#457b9d", client: "#a8dadc", internal: "#9b5de5", db: "#adb5bd" };

/** Where the trace sits in an experiment: the run's length, the fault window, and the trace's start, all ms from the load's start. */
export interface RunContext {
  runMs: number;
  fault: { startMs: number; endMs: number };
  atMs: number;
}

/** The waterfall as SVG; with `run`, a strip above it shows the run, its fault window and when this trace happened. */
export function waterfallSvg(title: string, v: TraceView, run?: RunContext): string {
  const W = 960;
  const LABEL = 360;
  const RIGHT = 190;
  const ROW = 17;
  const top = run ? 96 : 52;
  const H = top + v.rows.length * ROW + 30;
  const plotW = W - LABEL - RIGHT;
  const scale = v.durationMs > 0 ? plotW / v.durationMs : 0;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="8" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  out.push(
    `<text x="8" y="34" fill="#555">trace ${esc(v.traceId)}${v.orderId ? ` · order ${esc(v.orderId)}` : ""} · ${f1(v.durationMs)} ms · ${v.rows.length} spans · ${esc(v.code || "-")}</text>`,
  );
  if (run) {
    // The run strip: whole run, fault window shaded, this trace's moment marked.
    const sx = (ms: number) => LABEL + (Math.max(0, Math.min(ms, run.runMs)) / (run.runMs || 1)) * plotW;
    const y = 46;
    out.push(`<text x="${LABEL - 6}" y="${y + 11}" text-anchor="end" fill="#555">the run (${f1(run.runMs / 1000)} s)</text>`);
    out.push(`<rect x="${LABEL}" y="${y}" width="${plotW}" height="14" fill="#f1f3f5" stroke="#999"/>`);
    out.push(
      `<rect x="${r1(sx(run.fault.startMs))}" y="${y}" width="${r1(Math.max(1, sx(run.fault.endMs) - sx(run.fault.startMs)))}" height="14" fill="#f4a261" fill-opacity="0.6"/>`,
    );
    const during = run.atMs >= run.fault.startMs && run.atMs <= run.fault.endMs;
    out.push(`<path d="M${r1(sx(run.atMs))},${y - 2} l-5,-7 h10 z" fill="#e63946"/>`);
    out.push(
      `<text x="${LABEL + plotW + 6}" y="${y + 11}" fill="${during ? "#b5530f" : "#555"}">at ${f1(run.atMs / 1000)} s${during ? ", in the fault window" : ", outside the fault"}</text>`,
    );
  }
  // time axis
  const axisY = top - 6;
  for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
    const x = r1(LABEL + frac * plotW);
    out.push(`<line x1="${x}" x2="${x}" y1="${axisY}" y2="${H - 24}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${axisY - 2}" text-anchor="${frac === 1 ? "end" : "middle"}" fill="#555">${f1(frac * v.durationMs)} ms</text>`);
  }
  out.push(`<text x="${LABEL + plotW + 8}" y="${axisY - 2}" fill="#555">duration · code</text>`);
  v.rows.forEach((r, i) => {
    const y = top + i * ROW;
    if (i % 2 === 0) out.push(`<rect x="0" y="${y}" width="${W}" height="${ROW}" fill="#fafafa"/>`);
    const name = `${r.service} · ${r.name}`;
    out.push(
      `<text x="${8 + r.depth * 12}" y="${y + 12}"${r.error ? ' fill="#c1121f"' : ""}>${esc(name.length > 52 - r.depth * 2 ? `${name.slice(0, 50 - r.depth * 2)}…` : name)}</text>`,
    );
    const fill = r.name.startsWith("db ") ? FILL.db : (FILL[r.kind] ?? FILL.internal);
    const x = LABEL + r.offsetMs * scale;
    out.push(
      `<rect x="${r1(x)}" y="${y + 3}" width="${r1(Math.max(1, r.durationMs * scale))}" height="${ROW - 6}" fill="${fill}"${r.error ? ' stroke="#e63946" stroke-width="2"' : ""}><title>${esc(`${name}: ${f1(r.durationMs)} ms ${r.code}`)}</title></rect>`,
    );
    const bad = r.code !== "" && r.code !== "OK";
    out.push(
      `<text x="${LABEL + plotW + 8}" y="${y + 12}"${bad ? ' fill="#c1121f" font-weight="bold"' : ""}>${f1(r.durationMs)} ms${r.code ? ` · ${esc(r.code)}` : ""}</text>`,
    );
  });
  const ly = H - 8;
  let lx = 8;
  for (const [what, color] of [
    ["server span", FILL.server],
    ["client call", FILL.client],
    ["saga step", FILL.internal],
    ["database", FILL.db],
  ]) {
    out.push(`<rect x="${lx}" y="${ly - 9}" width="12" height="10" fill="${color}"/><text x="${lx + 16}" y="${ly}">${what}</text>`);
    lx += 100;
  }
  out.push(
    `<rect x="${lx}" y="${ly - 9}" width="12" height="10" fill="#fff" stroke="#e63946" stroke-width="2"/><text x="${lx + 16}" y="${ly}">failed (red code)</text>`,
  );
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
