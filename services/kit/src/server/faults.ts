// Failure knobs for experiments: this instance fails or slows a share of its calls, as a sick pod would.
// Istio turns off retries and timeouts on a route that injects a fault, so mesh retries and outlier
// ejection can only be shown with real failures like these. Off by default; announced in the log when on.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../shared/log.js";

export interface FaultSettings {
  /** Share of calls (0..100) answered with UNAVAILABLE. */
  errorPercent: number;
  /** Extra latency added to a share of calls, in milliseconds. */
  delayMs: number;
  /** Share of calls (0..100) that get the delay. */
  delayPercent: number;
  /** Only these methods ("Service/Method" or "Method"); empty = all. */
  methods: string[];
  /** The next N matching calls fail with UNAVAILABLE whatever errorPercent says (deterministic tests and demos). */
  failNext: number;
}

export const NO_FAULTS: FaultSettings = { errorPercent: 0, delayMs: 0, delayPercent: 100, methods: [], failNext: 0 };

/** Reads FAULT_ERROR_PERCENT, FAULT_DELAY_MS, FAULT_DELAY_PERCENT, FAULT_METHODS, FAULT_FAIL_NEXT; names a bad variable. */
export function faultsFromEnv(source: Record<string, string | undefined> = process.env): FaultSettings {
  return parseFaults(
    {
      errorPercent: source.FAULT_ERROR_PERCENT,
      delayMs: source.FAULT_DELAY_MS,
      delayPercent: source.FAULT_DELAY_PERCENT,
      methods: source.FAULT_METHODS,
      failNext: source.FAULT_FAIL_NEXT,
    },
    {
      errorPercent: "FAULT_ERROR_PERCENT",
      delayMs: "FAULT_DELAY_MS",
      delayPercent: "FAULT_DELAY_PERCENT",
      methods: "FAULT_METHODS",
      failNext: "FAULT_FAIL_NEXT",
    },
  );
}

/** Validates fault settings from env strings or a JSON body; errors name the field. */
export function parseFaults(
  raw: Record<string, unknown>,
  names: Record<keyof FaultSettings, string> = {
    errorPercent: "errorPercent",
    delayMs: "delayMs",
    delayPercent: "delayPercent",
    methods: "methods",
    failNext: "failNext",
  },
): FaultSettings {
  const num = (key: "errorPercent" | "delayMs" | "delayPercent" | "failNext", max: number): number => {
    const v = raw[key];
    if (v === undefined || v === "") return NO_FAULTS[key];
    const n = typeof v === "number" ? v : Number(v);
    if (!Number.isFinite(n) || n < 0 || n > max) throw new RangeError(`${names[key]} must be a number 0..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  const m = raw.methods;
  const methods = Array.isArray(m) ? m.map(String) : typeof m === "string" && m.trim() ? m.split(",").map((s) => s.trim()) : [];
  const failNext = num("failNext", 1_000_000);
  if (!Number.isInteger(failNext)) throw new RangeError(`${names.failNext} must be a whole number, got ${JSON.stringify(raw.failNext)}`);
  return { errorPercent: num("errorPercent", 100), delayMs: num("delayMs", 600_000), delayPercent: num("delayPercent", 100), methods, failNext };
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
    if (settings.errorPercent > 0 || settings.delayMs > 0 || settings.failNext > 0) this.log.warn({ faults: settings }, "fault injection ON");
    else this.log.info("fault injection off");
  }

  /** Server interceptor applying the knobs before the handler runs. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      const s = this.settings;
      if (s.errorPercent === 0 && s.delayMs === 0 && s.failNext === 0) return next(req);
      if (req.service.typeName.startsWith("grpc.")) return next(req); // health and reflection stay truthful
      if (s.methods.length > 0 && !s.methods.some((m) => m === req.method.name || m === `${req.service.typeName}/${req.method.name}`)) return next(req);
      if (s.delayMs > 0 && this.random() * 100 < s.delayPercent) await sleep(s.delayMs, req.signal);
      const now = this.settings; // read again: the knobs may have changed during the delay
      if (now.failNext > 0) {
        this.settings = { ...now, failNext: now.failNext - 1 };
        throw new ConnectError("injected fault (failNext)", Code.Unavailable);
      }
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
