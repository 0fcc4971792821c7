// Opaque page tokens: base64url JSON of where the next page starts. A tampered token is INVALID_ARGUMENT.
import { invalidArgument } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 20;

export function encodePageToken(position: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

type Shape = Record<string, "string" | "number">;
type Decoded<S extends Shape> = { [K in keyof S]: S[K] extends "number" ? number : string };

/**
 * Decodes a page token made by encodePageToken, checking each key's type against `shape` (e.g.
 * `{ t: "number", id: "string" }`); undefined for the first page. Anything else is INVALID_ARGUMENT.
 */
export function decodePageToken<S extends Shape>(token: string, shape: S, field = "page_token"): Decoded<S> | undefined {
  if (!token) return undefined;
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    const ok = (k: string, type: string) => (type === "number" ? Number.isFinite(v[k]) : typeof v[k] === "string" && v[k].length <= 200);
    if (v && typeof v === "object" && Object.entries(shape).every(([k, type]) => ok(k, type))) return v as Decoded<S>;
  } catch {
    // fall through to the error below
  }
  throw invalidArgument([{ field, description: "is not a token returned by this API" }]);
}

/** page_size 0 means the default. */
export function pageSize(requested: number): number {
  return requested > 0 ? requested : DEFAULT_PAGE_SIZE;
}
