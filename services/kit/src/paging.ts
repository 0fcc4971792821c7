// Opaque page tokens: base64url JSON of where the next page starts. A tampered token is INVALID_ARGUMENT.
import { invalidArgument } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 20;

export function encodePageToken(position: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** Decodes a page token made by encodePageToken; undefined for the first page. */
export function decodePageToken<T extends Record<string, string | number>>(token: string, keys: (keyof T)[], field = "page_token"): T | undefined {
  if (!token) return undefined;
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (v && typeof v === "object" && keys.every((k) => ["string", "number"].includes(typeof v[k]))) return v as T;
  } catch {
    // fall through to the error below
  }
  throw invalidArgument([{ field, description: "is not a token returned by this API" }]);
}

/** page_size 0 means the default. */
export function pageSize(requested: number): number {
  return requested > 0 ? requested : DEFAULT_PAGE_SIZE;
}
