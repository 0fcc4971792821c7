// Raw HTTP/2 requests with broken gRPC framing, sent with node's http2 client (no gRPC library between us
// and the socket): garbage bodies, a length prefix larger than the body, the compressed flag without
// grpc-encoding, oversized messages, several messages for a unary method, no message at all.
import * as http2 from "node:http2";
import { status as grpcStatus } from "@grpc/grpc-js";
import fc from "fast-check";

export interface FrameCase {
  name: string;
  path: string;
  body: Uint8Array;
  headers?: Record<string, string>;
}

/** The outcome of one raw request: a gRPC code name, `http_<status>` without one, or `reset`/`timeout`. */
export type FrameOutcome = string;

function frame(message: Uint8Array, opts: { compressed?: boolean; claimedLength?: number } = {}): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, opts.compressed ? 1 : 0);
  view.setUint32(1, opts.claimedLength ?? message.length);
  out.set(message, 5);
  return out;
}

/** A protobuf string field 1 of `n` bytes: a well-formed message of about that size. */
function bigMessage(n: number): Uint8Array {
  const len: number[] = [];
  let v = n;
  while (v > 127) {
    len.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  len.push(v);
  const out = new Uint8Array(1 + len.length + n).fill(0x61);
  out[0] = 0x0a;
  out.set(len, 1);
  return out;
}

/** The fixed cases for one method path, and `random` more garbage bodies from the seed. */
export function frameCases(path: string, opts: { maxReceiveBytes: number; random: number; seed: number }): FrameCase[] {
  const small = Uint8Array.of(0x0a, 0x03, 0x61, 0x62, 0x63);
  const cases: FrameCase[] = [
    { name: "length prefix larger than the body", path, body: frame(small, { claimedLength: 1000 }) },
    { name: "length prefix of 4 GiB", path, body: frame(small, { claimedLength: 0xffffffff }) },
    { name: "compressed flag without grpc-encoding", path, body: frame(small, { compressed: true }) },
    { name: "oversized message (limit + 1 KiB)", path, body: frame(bigMessage(opts.maxReceiveBytes + 1024)) },
    { name: "two messages for a unary method", path, body: new Uint8Array([...frame(small), ...frame(small)]) },
    { name: "no message", path, body: new Uint8Array(0) },
    { name: "half a prefix", path, body: Uint8Array.of(0, 0, 0) },
    { name: "unknown method", path: `${path}DoesNotExist`, body: frame(small) },
    { name: "unknown service", path: "/meshmart.nothing.v1.Nothing/Call", body: frame(small) },
  ];
  const garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 256 }), { numRuns: opts.random, seed: opts.seed });
  for (const bytes of garbage) cases.push({ name: "garbage body", path, body: bytes });
  const framedGarbage = fc.sample(fc.uint8Array({ maxLength: 256 }), { numRuns: opts.random, seed: opts.seed + 1 });
  for (const bytes of framedGarbage) cases.push({ name: "framed garbage", path, body: frame(bytes) });
  return cases;
}

const codeName = (code: number) => (grpcStatus[code] ?? `code_${code}`).toLowerCase();

/** Sends one raw request on `session`; resolves with how the server ended it (never rejects). */
export function sendFrame(session: http2.ClientHttp2Session, c: FrameCase, timeoutMs: number): Promise<FrameOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let httpStatus = 0;
    let grpc: string | undefined;
    const done = (outcome: FrameOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      done("timeout");
    }, timeoutMs);
    const stream = session.request({
      ":method": "POST",
      ":path": c.path,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": `${timeoutMs}m`,
      ...c.headers,
    });
    // The status is the answer: a server may refuse an oversized body without reading it to the end, and
    // then our upload would stall on flow control, so the stream is closed as soon as the status is in.
    const answered = (code: string) => {
      grpc = code;
      done(code);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    stream.on("response", (headers) => {
      httpStatus = Number(headers[":status"]);
      if (headers["grpc-status"] !== undefined) answered(codeName(Number(headers["grpc-status"])));
    });
    stream.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) answered(codeName(Number(trailers["grpc-status"])));
    });
    stream.on("data", () => undefined);
    stream.on("error", () => done(grpc ?? "reset"));
    stream.on("close", () => done(grpc ?? (httpStatus ? `http_${httpStatus}` : "reset")));
    stream.end(c.body);
  });
}

/** Runs the cases against `target` (host:port) on one HTTP/2 connection (a new one if the server closed it). */
export async function sendFrames(target: string, cases: FrameCase[], timeoutMs: number): Promise<Record<string, FrameOutcome[]>> {
  const byName: Record<string, FrameOutcome[]> = {};
  let session: http2.ClientHttp2Session | undefined;
  try {
    for (const c of cases) {
      if (!session || session.closed || session.destroyed) {
        session = http2.connect(`http://${target}`);
        session.on("error", () => undefined); // a server GOAWAY/reset shows in the stream outcome
      }
      const outcome = await sendFrame(session, c, timeoutMs);
      (byName[c.name] ??= []).push(outcome);
    }
  } finally {
    session?.close();
  }
  return byName;
}
