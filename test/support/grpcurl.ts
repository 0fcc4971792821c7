// Runs the real grpcurl binary (built by tools/setup/setup.sh) against a server.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { BIN } from "../../tools/stack/devdb.js";

export const GRPCURL = join(BIN, "grpcurl");

export interface GrpcurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** grpcurl -plaintext [args] address [method]; never throws on a non-zero exit. */
export function grpcurl(args: string[]): Promise<GrpcurlResult> {
  return new Promise((resolve, reject) => {
    execFile(GRPCURL, ["-plaintext", "-max-time", "10", ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** Calls `method` with a JSON body through reflection; returns the parsed response or throws with grpcurl's error text. */
export async function grpcurlCall<T = Record<string, unknown>>(
  address: string,
  method: string,
  body: unknown = {},
  headers: Record<string, string> = {},
): Promise<T> {
  const h = Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const r = await grpcurl([...h, "-d", JSON.stringify(body), address, method]);
  if (r.code !== 0) throw new GrpcurlError(r);
  return JSON.parse(r.stdout || "{}") as T;
}

export class GrpcurlError extends Error {
  constructor(readonly result: GrpcurlResult) {
    super(`grpcurl exited ${result.code}: ${result.stderr.trim()}`);
  }
  /** The gRPC code name grpcurl printed, e.g. "NotFound". */
  get grpcCode(): string | undefined {
    return /Code: (\w+)/.exec(this.result.stderr)?.[1];
  }
}
