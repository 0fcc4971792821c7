// Failure knobs for experiments: this instance fails or slows a share of its calls, as a sick pod would.
// Istio turns off retries and timeouts on a route that injects a fault, so mesh retries and outlier
// ejection can only be shown with real failures like these. Off by default; announced in the log when on.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "./log.js";

export interface FaultSettings {
  /** Share of calls (0..100) answered with UNAVAILABLE. */
  errorPercent: number;
  /** Extra latency added to a share of calls, in milliseconds. */
  delayMs: number;
  /** Share of calls (0..100) that get the delay. */
  delayPercent: number;
  /** Only these methods ("Service/Method" or "Method"); empty = all. */
  methods: string[];
}

export const NO_FAULTS: FaultSettings = { errorPercent: 0, delayMs: 0, delayPercent: 100, methods: [] };

/** Reads FAULT_ERROR_PERCENT, FAULT_DELAY_MS, FAULT_DELAY_PERCENT, FAULT_METHODS; names a bad variable. */
export function faultsFromEnv(source: Record<string, string | undefined> = process.env): FaultSettings {
  return parseFaults(
    {
      errorPercent: source.FAULT_ERROR_PERCENT,
      delayMs: source.FAULT_DELAY_MS,
      delayPercent: source.FAULT_DELAY_PERCENT,
      methods: source.FAULT_METHODS,
    },
    { errorPercent: "FAULT_ERROR_PERCENT", delayMs: "FAULT_DELAY_MS", delayPercent: "FAULT_DELAY_PERCENT", methods: "FAULT_METHODS" },
  );
}

/** Validates fault settings from env strings or a JSON body; errors name the field. */
export function parseFaults(
  raw: Record<string, unknown>,
  names: Record<keyof FaultSettings, string> = { errorPercent: "errorPercent", delayMs: "delayMs", delayPercent: "delayPercent", methods: "methods" },
): FaultSettings {
  const num = (key: "errorPercent" | "delayMs" | "delayPercent", max: number): number => {
    const v = raw[key];
    if (v === undefined || v === "") return NO_FAULTS[key];
    const n = typeof v === "number" ? v : Number(v);
    if (!Number.isFinite(n) || n < 0 || n > max) throw new RangeError(`${names[key]} must be a number 0..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  const m = raw.methods;
  const methods = Array.isArray(m) ? m.map(String) : typeof m === "string" && m.trim() ? m.split(",").map((s) => s.trim()) : [];
  return { errorPercent: num("errorPercent", 100), delayMs: num("delayMs", 600_000), delayPercent: num("delayPercent", 100), methods };
}

/** The knobs of one instance, changeable at run time through the admin endpoint. */
export class Faults {
  private settings: FaultSettings = NO_FAULTS;
  constructor(
    private readonly log: Logger,
    initial: FaultSettings = NO_FAULTS,
    private readonly random: () => number = Math.random,
  ) {
    this.set(initial);
  }

  get current(): FaultSettings {
    return this.settings;
  }

  set(settings: FaultSettings): void {
    this.settings = settings;
    if (settings.errorPercent > 0 || settings.delayMs > 0) this.log.warn({ faults: settings }, "fault injection ON");
    else this.log.info("fault injection off");
  }

  /** Server interceptor applying the knobs before the handler runs. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      const s = this.settings;
      if (s.errorPercent === 0 && s.delayMs === 0) return next(req);
      if (s.methods.length > 0 && !s.methods.some((m) => m === req.method.name || m === `${req.service.typeName}/${req.method.name}`)) return next(req);
      if (s.delayMs > 0 && this.random() * 100 < s.delayPercent) await sleep(s.delayMs, req.signal);
      if (this.random() * 100 < s.errorPercent) throw new ConnectError("injected fault (FAULT_ERROR_PERCENT)", Code.Unavailable);
      return next(req);
    };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
