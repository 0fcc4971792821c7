// Runs a service entry point as a real child process (tsx), for shutdown, crash and end-to-end tests.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { createGrpcTransport } from "../../services/kit/src/grpc-transport.js";
import { ROOT } from "../../tools/devdb.js";

export interface ServiceProcess {
  child: ChildProcess;
  output: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Spawns `node --import tsx <entry>` with `env`; output is kept for assertions and failure messages. */
export function startProcess(entry: string, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, entry)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    output: () => out,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** Polls grpc.health.v1.Health/Check until `want` (SERVING by default) or the timeout. */
export async function waitForHealth(
  address: string,
  opts: { want?: HealthCheckResponse_ServingStatus; timeoutMs?: number; service?: string } = {},
): Promise<void> {
  const want = opts.want ?? HealthCheckResponse_ServingStatus.SERVING;
  const transport = createGrpcTransport({ target: address, defaultTimeoutMs: 1000 });
  const client = createClient(Health, transport);
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last = "no answer";
  try {
    while (Date.now() < deadline) {
      try {
        const r = await client.check({ service: opts.service ?? "" });
        if (r.status === want) return;
        last = HealthCheckResponse_ServingStatus[r.status];
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    transport.close();
  }
  throw new Error(`${address} did not become ${HealthCheckResponse_ServingStatus[want]} (last: ${last})`);
}
