// grpc-js Metadata <-> fetch Headers, the two header shapes the engines speak.
import { Metadata } from "@grpc/grpc-js";

// Set by the transport itself; copying them would confuse the peer.
const RESERVED = new Set([
  "content-type",
  "te",
  "user-agent",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "content-length",
  "host",
  "connection",
]);

export function metadataToHeaders(md: Metadata | undefined): Headers {
  const h = new Headers();
  if (!md) return h;
  for (const [key, value] of Object.entries(md.getMap())) {
    if (RESERVED.has(key) || key.startsWith(":")) continue;
    if (Buffer.isBuffer(value)) h.append(key, value.toString("base64").replace(/=+$/, ""));
    else h.append(key, value);
  }
  return h;
}

export function headersToMetadata(h: Headers | undefined, md = new Metadata()): Metadata {
  if (!h) return md;
  h.forEach((value, key) => {
    if (RESERVED.has(key)) return;
    if (key.endsWith("-bin")) for (const v of value.split(/,\s*/)) md.add(key, Buffer.from(v, "base64"));
    else md.add(key, value);
  });
  return md;
}
