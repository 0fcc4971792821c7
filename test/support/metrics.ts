// Reading a service's Prometheus text (its admin port's /metrics) in tests.

/** The value of counter `name` on the line carrying every one of `labels`; 0 when there is none yet. */
export function counter(metrics: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(" ").at(-1)) : 0;
}
