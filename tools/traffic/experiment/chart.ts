// The report's picture: p50/p99 latency (top) and error rate (bottom) per second of the run, the fault
// window shaded across both, so a person sees at a glance what the fault did and when it was over.
import type { FaultTimes, Second } from "./evaluate.js";

const W = 760;
const PAD = { left: 56, right: 16, top: 36, gap: 34, bottom: 34 };
const LAT_H = 170;
const ERR_H = 90;
const H = PAD.top + LAT_H + PAD.gap + ERR_H + PAD.bottom;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const r1 = (n: number) => Math.round(n * 10) / 10;

/** A round axis maximum ≥ v (1, 2, 5 × 10^k). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

/** `marks`: moments to point at on the latency panel (the orders whose traces the report draws). */
export function chartSvg(title: string, timeline: Second[], fault: FaultTimes, durationMs: number, marks: { atMs: number; label: string }[] = []): string {
  const seconds = Math.max(1, Math.ceil(durationMs / 1000), ...timeline.map((s) => s.t + 1));
  const plotW = W - PAD.left - PAD.right;
  const x = (t: number) => PAD.left + (t / seconds) * plotW;
  const latTop = PAD.top;
  const errTop = PAD.top + LAT_H + PAD.gap;
  const latMax = niceMax(Math.max(...timeline.map((s) => s.p99Ms), 1));
  const yLat = (ms: number) => latTop + LAT_H - (Math.min(ms, latMax) / latMax) * LAT_H;
  const yErr = (share: number) => errTop + ERR_H - share * ERR_H;
  const line = (pick: (s: Second) => number) =>
    timeline
      .filter((s) => s.ok + s.errors > 0)
      .map((s, i) => `${i === 0 ? "M" : "L"}${r1(x(s.t + 0.5))},${r1(yLat(pick(s)))}`)
      .join(" ");
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${PAD.left}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // fault window across both panels
  const fx = x(fault.startMs / 1000);
  const fw = Math.max(1, x(fault.endMs / 1000) - fx);
  out.push(`<rect x="${r1(fx)}" y="${latTop}" width="${r1(fw)}" height="${errTop + ERR_H - latTop}" fill="#f4a261" fill-opacity="0.25"/>`);
  out.push(`<text x="${r1(fx + 3)}" y="${latTop + 12}" fill="#b5530f">fault</text>`);
  if (fault.restoredMs !== undefined) {
    const rx = r1(x(fault.restoredMs / 1000));
    out.push(`<line x1="${rx}" x2="${rx}" y1="${latTop}" y2="${errTop + ERR_H}" stroke="#2a9d8f" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${rx + 3}" y="${errTop - 6}" fill="#2a9d8f">restored</text>`);
  }
  // axes and grid
  for (const [top, h, max, unit] of [
    [latTop, LAT_H, latMax, " ms"],
    [errTop, ERR_H, 100, "%"],
  ] as const) {
    for (const f of [0, 0.5, 1]) {
      const y = r1(top + h - f * h);
      out.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
      out.push(`<text x="${PAD.left - 4}" y="${y + 4}" text-anchor="end">${r1(f * max)}${unit}</text>`);
    }
    out.push(`<rect x="${PAD.left}" y="${top}" width="${plotW}" height="${h}" fill="none" stroke="#999"/>`);
  }
  const step = seconds <= 30 ? 5 : seconds <= 120 ? 10 : 30;
  for (let t = 0; t <= seconds; t += step) out.push(`<text x="${r1(x(t))}" y="${errTop + ERR_H + 14}" text-anchor="middle">${t}s</text>`);
  out.push(`<text x="${W / 2}" y="${H - 4}" text-anchor="middle" fill="#555">seconds since the load started</text>`);
  // error rate bars
  for (const s of timeline) {
    const done = s.ok + s.errors;
    if (done === 0 || s.errors === 0) continue;
    const share = s.errors / done;
    out.push(`<rect x="${r1(x(s.t) + 1)}" y="${r1(yErr(share))}" width="${r1(Math.max(1, x(1) - x(0) - 2))}" height="${r1(share * ERR_H)}" fill="#e63946"/>`);
  }
  out.push(`<path d="${line((s) => s.p99Ms)}" fill="none" stroke="#e76f51" stroke-width="2"/>`);
  out.push(`<path d="${line((s) => s.p50Ms)}" fill="none" stroke="#264653" stroke-width="2"/>`);
  for (const m of marks) {
    const mx = r1(x(m.atMs / 1000));
    out.push(`<polygon points="${mx},${latTop + LAT_H} ${mx - 5},${latTop + LAT_H + 9} ${mx + 5},${latTop + LAT_H + 9}" fill="#6a4c93"/>`);
    out.push(`<text x="${mx}" y="${latTop + LAT_H + 20}" text-anchor="middle" fill="#6a4c93">${esc(m.label)}</text>`);
  }
  // legend
  const lx = W - PAD.right - 250;
  out.push(`<line x1="${lx}" x2="${lx + 18}" y1="14" y2="14" stroke="#264653" stroke-width="2"/><text x="${lx + 22}" y="18">p50</text>`);
  out.push(`<line x1="${lx + 52}" x2="${lx + 70}" y1="14" y2="14" stroke="#e76f51" stroke-width="2"/><text x="${lx + 74}" y="18">p99</text>`);
  out.push(`<rect x="${lx + 104}" y="8" width="12" height="10" fill="#e63946"/><text x="${lx + 120}" y="18">error rate</text>`);
  out.push(`<text x="${PAD.left + 4}" y="${errTop - 4}" fill="#555">errors (share of calls completed that second)</text>`);
  out.push(`<text x="${PAD.left + 4}" y="${latTop - 4}" fill="#555">latency</text>`);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
