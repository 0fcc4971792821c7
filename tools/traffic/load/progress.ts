// One progress line on a terminal (stderr), redrawn in place; nothing at all when stderr is not a TTY
// (CI logs, pipes), so reports and logs stay clean.
import type { SecondStats } from "./recorder.js";

export interface Progress {
  update(elapsedMs: number, s: { sent: number; ok: number; errors: number; inFlight: number; last?: SecondStats }): void;
  done(): void;
}

const WIDTH = 24;

export function progressLine(totalMs: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  let lastDraw = 0;
  return {
    update(elapsedMs, s) {
      const now = Date.now();
      if (now - lastDraw < 200 && elapsedMs < totalMs) return; // a few redraws a second are plenty
      lastDraw = now;
      const frac = Math.min(1, elapsedMs / totalMs);
      const bar = "█".repeat(Math.round(frac * WIDTH)).padEnd(WIDTH, "░");
      const p99 = s.last ? `  p99 ${s.last.p99Ms.toFixed(1)} ms` : "";
      const line = `${bar} ${(elapsedMs / 1000).toFixed(0)}/${(totalMs / 1000).toFixed(0)} s  sent ${s.sent}  ok ${s.ok}  errors ${s.errors}  in flight ${s.inFlight}${p99}`;
      stream.write(`\r${line.slice(0, (stream.columns || 120) - 1)}\x1b[K`);
    },
    done() {
      stream.write("\n");
    },
  };
}
