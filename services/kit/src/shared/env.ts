// Configuration from environment variables, typed by the defaults and validated at start.

/** A bad configuration value; the message names the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`config: ${variable} ${problem}`);
    this.name = "ConfigError";
  }
}

type Widen<T> = T extends number ? number : T extends boolean ? boolean : T extends string ? string : T;
export type Config<D> = { readonly [K in keyof D]: Widen<D[K]> };

/** One-of rule: the variable must be one of these strings. */
export function oneOf<const T extends readonly string[]>(values: T, fallback: T[number]) {
  return { oneOf: values, fallback } as const;
}
type OneOf = ReturnType<typeof oneOf<readonly string[]>>;
type Resolve<D> = { readonly [K in keyof D]: D[K] extends OneOf ? D[K]["fallback"] : Widen<D[K]> };

/**
 * Reads every key of `defaults` from `source` (process.env by default). A number default makes the
 * variable an integer, a boolean default accepts true/false/1/0, a `oneOf` default a fixed set of strings.
 * Throws ConfigError naming the first bad variable.
 */
export function env<const D extends Record<string, string | number | boolean | OneOf>>(
  defaults: D,
  source: Record<string, string | undefined> = process.env,
): Resolve<D> {
  const out: Record<string, unknown> = {};
  for (const [name, fallback] of Object.entries(defaults)) {
    const raw = source[name];
    const given = raw !== undefined && raw.trim() !== "";
    if (typeof fallback === "number") {
      if (!given) out[name] = fallback;
      else if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
      else out[name] = Number.parseInt(raw, 10);
    } else if (typeof fallback === "boolean") {
      if (!given) out[name] = fallback;
      else if (/^(true|1|yes)$/i.test(raw.trim())) out[name] = true;
      else if (/^(false|0|no)$/i.test(raw.trim())) out[name] = false;
      else throw new ConfigError(name, `must be true or false, got "${raw}"`);
    } else if (typeof fallback === "object") {
      if (!given) out[name] = fallback.fallback;
      else if (!fallback.oneOf.includes(raw.trim())) throw new ConfigError(name, `must be one of ${fallback.oneOf.join(", ")}, got "${raw}"`);
      else out[name] = raw.trim();
    } else {
      out[name] = given ? raw : fallback;
    }
  }
  return out as Resolve<D>;
}

/** Checks that a port variable is in range; returns it. */
export function port(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(name, `must be a port 0..65535, got ${value}`);
  return value;
}
