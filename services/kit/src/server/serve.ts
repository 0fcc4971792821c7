// The server bootstrap every service uses: engine, interceptors, health, reflection, admin port, shutdown.
// Over 300 lines on purpose: serve() owns one server's life, and its engines, admin port, health, drain and
// stop share that state; the parts that stand alone are modules of their own (admin, health, reflection,
// grpc-server, mesh-server).
import { once, setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health as HealthService } from "#gen/health/v1/health_pb.js";
import { peerAddress, peerKey, serverStoppingKey } from "../shared/context.js";
import { ConfigError } from "../shared/env.js";
import { type Logger, logger } from "../shared/log.js";
import { MAX_RECEIVE_BYTES_DEFAULT, MAX_SEND_BYTES_DEFAULT } from "../shared/message-limits.js";
import { flushTracing } from "../shared/tracing.js";
import { serverSpans } from "../shared/tracing-rpc.js";
import { type AdminRoute, adminServer } from "./admin.js";
import { connectHealthImpl } from "./connect-health.js";
import { connectReflectionImpls } from "./connect-reflection.js";
import { type FaultSettings, Faults, faultsFromEnv } from "./faults.js";
import { type AnyServiceImpl, addConnectService } from "./grpc-server.js";
import { Health, type ReadinessCheck } from "./health.js";
import { isValidation, observe, propagation, validation } from "./interceptors.js";
import { checkWorkloadCert, meshRefusalLog, workloadCertFiles } from "./mesh-security.js";
import { bindXdsServer, createXdsServer } from "./mesh-server.js";
import { addReflection } from "./reflection.js";

export type Engine = "grpc-js" | "connect-node";

export interface ServiceEntry {
  service: DescService;
  impl: AnyServiceImpl;
  /** This service's own interceptors (auth, response headers); they run inside the kit's. */
  interceptors?: Interceptor[];
}

/** Pairs a service descriptor with its handlers (typed); a missing method answers UNIMPLEMENTED. */
export function service<S extends DescService>(desc: S, impl: Partial<ServiceImpl<S>>, opts: { interceptors?: Interceptor[] } = {}): ServiceEntry {
  return { service: desc, impl: impl as AnyServiceImpl, interceptors: opts.interceptors };
}

/**
 * The interceptors one service runs: the shared ones, with its own just inside them but before input
 * validation, so a call without a valid token is UNAUTHENTICATED whatever its message holds (an anonymous
 * caller learns nothing about the contract's rules from INVALID_ARGUMENT answers).
 */
export function interceptorsOf(entry: ServiceEntry, shared: Interceptor[]): Interceptor[] {
  const own = entry.interceptors ?? [];
  const at = shared.findIndex(isValidation);
  return at < 0 ? [...shared, ...own] : [...shared.slice(0, at), ...own, ...shared.slice(at)];
}

export interface ServeOptions {
  /** Short service name for logs, e.g. "catalog". */
  name: string;
  /** gRPC port; 0 picks a free one. */
  port: number;
  /** Interface to bind; default 0.0.0.0. */
  host?: string;
  /** Admin HTTP port (/metrics, /readyz, /faults); 0 picks a free one; omit for none. */
  adminPort?: number;
  services: ServiceEntry[];
  engine?: Engine;
  /** Interceptors for every service of this server, inside the kit's (a service's own come from its entry). */
  interceptors?: Interceptor[];
  /** What must be up for health to say SERVING (database, peers). */
  readiness?: ReadinessCheck[];
  healthIntervalMs?: number;
  /** How long in-flight calls may run on after shutdown starts. */
  graceMs?: number;
  /** Pause between NOT_SERVING and closing the port, so load balancers notice first. */
  drainDelayMs?: number;
  adminRoutes?: Record<string, AdminRoute>;
  faults?: FaultSettings;
  /** Largest request message accepted; a bigger one is refused with RESOURCE_EXHAUSTED. Default MAX_RECEIVE_BYTES_DEFAULT. */
  maxReceiveBytes?: number;
  /** Largest response message sent; a bigger one fails with RESOURCE_EXHAUSTED. Default MAX_SEND_BYTES_DEFAULT. */
  maxSendBytes?: number;
  /**
   * Proxyless mesh mode (grpc-js engine only): the gRPC port is an xDS server governed by istiod (mTLS,
   * authorization), and `localPort` serves health and reflection in plaintext outside the mesh, for local
   * tools. The workload certificate named by the xDS bootstrap must be valid, or serve() throws naming the file.
   */
  mesh?: MeshServeOptions;
  /** Knobs shared with other callers (monolith mode: the in-memory transport uses the same ones). */
  faultKnobs?: Faults;
  /** Runs after the last call finished: close the database here. */
  onShutdown?: () => unknown;
  /** Handle SIGTERM/SIGINT: shut down and exit 0 (entry points set this; tests do not). */
  signals?: boolean;
  log?: Logger;
}

export interface MeshServeOptions {
  /** Plaintext port for health and reflection (0: a free one). */
  localPort: number;
  /** How long to wait for istiod's inbound listener. Default 30 s. */
  listenerTimeoutMs?: number;
}

export interface RunningServer {
  name: string;
  port: number;
  /** Mesh mode: the plaintext health + reflection port. */
  localPort?: number;
  adminPort?: number;
  health: Health;
  faults: Faults;
  log: Logger;
  /** Graceful shutdown: NOT_SERVING, stop accepting, drain within graceMs, onShutdown. Idempotent. */
  shutdown(): Promise<void>;
}

/** Server-side HTTP/2 settings: keepalive, and a maximum connection age so load spreads again behind a mesh. */
export const SERVER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  "grpc.max_connection_age_ms": 5 * 60_000,
  "grpc.max_connection_age_grace_ms": 30_000,
};

/** What runs around every handler, outermost first: the trace span (when tracing is on), propagation, metrics and the log line, faults, validation. */
export function kitInterceptors(log: Logger, faults?: Faults): Interceptor[] {
  return [...serverSpans(), propagation(), observe(log), ...(faults ? [faults.interceptor()] : []), validation()];
}

/**
 * connect-node answers request bytes that do not decode (truncated, invalid UTF-8 in a proto3 string) and a
 * compressed flag without grpc-encoding with INTERNAL, and offers no hook before the handler runs. It is the
 * caller's input that is wrong, so this rewrites exactly those gRPC trailers (by the library's message, pinned
 * by test/fuzz.test.ts) to INVALID_ARGUMENT, as the grpc-js adapter answers.
 */
const CALLER_FAULTS = ["parse binary:", "received compressed envelope, but do not know how to decompress"];

function undecodableAsInvalidArgument(res: http2.Http2ServerResponse): http2.Http2ServerResponse {
  const addTrailers = res.addTrailers.bind(res);
  res.addTrailers = (trailers) => {
    const raw = trailers["grpc-message"];
    let message = "";
    try {
      message = typeof raw === "string" ? decodeURIComponent(raw) : "";
    } catch {
      // not percent-encoded text: leave the trailer as it is
    }
    if (trailers["grpc-status"] === "13" && CALLER_FAULTS.some((m) => message.startsWith(m)))
      trailers = { ...trailers, "grpc-status": "3", "grpc-message": encodeURIComponent(`request is not a valid message: ${message}`) };
    addTrailers(trailers);
  };
  return res;
}

const SERVER_STOPPING = new ConnectError("the server is shutting down", Code.Unavailable);
/** How long cancelled calls get to end after the grace period, before the database closes. */
const STOP_AFTER_CANCEL_MS = 3000;

/** Counts the calls whose handler is still running (whatever their transport says), to wait for them at shutdown. */
function callsRunning() {
  let count = 0;
  let onIdle: (() => void) | undefined;
  const interceptor: Interceptor = (next) => async (req) => {
    count++;
    try {
      return await next(req);
    } finally {
      count--;
      if (count === 0) onIdle?.();
    }
  };
  /** Resolves with how many are still running once none is, or after `ms`. */
  async function settled(ms: number): Promise<number> {
    if (count === 0) return 0;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      onIdle = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    onIdle = undefined;
    return count;
  }
  return { interceptor, settled };
}

/** Starts a gRPC server for the services, with the kit's interceptors, health, reflection and admin port. */
export async function serve(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.log ?? logger(opts.name);
  const engine = opts.engine ?? "grpc-js";
  const host = opts.host ?? "0.0.0.0";
  const graceMs = opts.graceMs ?? 10_000;
  const faults = opts.faultKnobs ?? new Faults(log, opts.faults ?? faultsFromEnv());
  const names = opts.services.map((s) => s.service.typeName);
  const health = new Health(names, opts.readiness ?? [], log);
  const shutdownController = new AbortController();
  setMaxListeners(0, shutdownController.signal); // every call in flight links its own signal to this one
  const running = callsRunning();
  const interceptors = [running.interceptor, ...kitInterceptors(log, faults), ...(opts.interceptors ?? [])];
  const maxReceiveBytes = opts.maxReceiveBytes ?? MAX_RECEIVE_BYTES_DEFAULT;
  const maxSendBytes = opts.maxSendBytes ?? MAX_SEND_BYTES_DEFAULT;

  let port: number;
  let localPort: number | undefined;
  let closeListener: () => Promise<void>;
  let forceClose: () => void;

  if (opts.mesh) {
    if (engine !== "grpc-js") throw new ConfigError("ENGINE", `must be grpc-js in mesh mode (grpc-js-xds serves the mesh port), got ${engine}`);
    // Before anything listens: no valid certificate, no service (never a silent plaintext fallback).
    const cert = checkWorkloadCert(workloadCertFiles());
    log.info({ identity: cert.spiffeId, certificateValidUntil: cert.notAfter.toISOString() }, "mesh workload certificate ok");
    const channelOptions = { ...SERVER_CHANNEL_OPTIONS, "grpc.max_receive_message_length": maxReceiveBytes, "grpc.max_send_message_length": maxSendBytes };
    const server = createXdsServer({ ...channelOptions, interceptors: [meshRefusalLog(log)] });
    for (const s of opts.services) addConnectService(server, s.service, s.impl, interceptorsOf(s, interceptors), shutdownController.signal);
    health.addToServer(server);
    addReflection(
      server,
      opts.services.map((s) => s.service),
    );
    const local = new grpc.Server(channelOptions);
    health.addToServer(local);
    addReflection(
      local,
      opts.services.map((s) => s.service),
    );
    localPort = await new Promise<number>((resolve, reject) =>
      // On loopback, not the workload's address: like a port-forward, and never on the mesh port's host:port
      // (identity's usual port is the manifests' 50051).
      local.bindAsync(`127.0.0.1:${opts.mesh?.localPort}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    try {
      await bindXdsServer(server, host, opts.port, log, opts.mesh.listenerTimeoutMs ?? 30_000);
    } catch (err) {
      server.forceShutdown();
      local.forceShutdown();
      throw err;
    }
    port = opts.port;
    closeListener = () =>
      Promise.all([
        new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
        new Promise<void>((resolve) => local.tryShutdown(() => resolve())),
      ]).then(() => undefined);
    forceClose = () => {
      server.forceShutdown();
      local.forceShutdown();
    };
  } else if (engine === "grpc-js") {
    const server = new grpc.Server({
      ...SERVER_CHANNEL_OPTIONS,
      "grpc.max_receive_message_length": maxReceiveBytes,
      "grpc.max_send_message_length": maxSendBytes,
    });
    for (const s of opts.services) addConnectService(server, s.service, s.impl, interceptorsOf(s, interceptors), shutdownController.signal);
    health.addToServer(server);
    addReflection(
      server,
      opts.services.map((s) => s.service),
    );
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    closeListener = () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    forceClose = () => server.forceShutdown();
  } else {
    // Loaded only for this engine: the grpc-js engine, every service's default, never needs it (~0.4 MB less RSS).
    const { connectNodeAdapter } = await import("@connectrpc/connect-node");
    const handler = connectNodeAdapter({
      routes: (router) => {
        for (const s of opts.services) router.service(s.service, s.impl, { interceptors: interceptorsOf(s, interceptors) });
        router.service(HealthService, connectHealthImpl(health));
        for (const r of connectReflectionImpls(opts.services.map((s) => s.service))) router.service(r.service, r.impl as never);
      },
      interceptors,
      contextValues: (req) =>
        createContextValues().set(peerKey, peerAddress(req.socket.remoteAddress, false)).set(serverStoppingKey, shutdownController.signal),
      readMaxBytes: maxReceiveBytes,
      writeMaxBytes: maxSendBytes,
      shutdownSignal: shutdownController.signal,
    });
    const server = http2.createServer((req, res) => handler(req, undecodableAsInvalidArgument(res)));
    const sessions = new Set<http2.Http2Session>();
    server.on("session", (s) => {
      sessions.add(s);
      s.once("close", () => sessions.delete(s));
    });
    server.listen(opts.port, host);
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
    closeListener = async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close(); // GOAWAY: no new streams; running ones finish
      await closed;
    };
    forceClose = () => {
      for (const s of sessions) s.destroy();
    };
  }

  let adminPort: number | undefined;
  const admin = opts.adminPort === undefined ? undefined : adminServer(health, faults, opts.adminRoutes);
  if (admin) {
    try {
      admin.listen(opts.adminPort, host);
      await once(admin, "listening");
    } catch (err) {
      forceClose(); // do not leave the gRPC port open behind a failed start
      await closeListener();
      throw new Error(`admin port ${opts.adminPort}: ${(err as Error).message}`);
    }
    adminPort = (admin.address() as AddressInfo).port;
  }

  await health.start(opts.healthIntervalMs ?? 2000);
  log.info({ port, localPort, adminPort, engine, mesh: !!opts.mesh, services: names, health: health.current }, `${opts.name} listening`);

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () =>
    (shutdownPromise ??= (async () => {
      log.info({ graceMs }, "shutting down: health NOT_SERVING, draining calls");
      health.drain();
      if (opts.drainDelayMs) await new Promise((r) => setTimeout(r, opts.drainDelayMs));
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), graceMs)));
      // Drained means every handler has returned, not only every stream: a handler may run on after its caller
      // left (a saga finishing with fresh deadlines), and the database closes right after this.
      const drained = closeListener()
        .then(() => running.settled(graceMs))
        .then(() => "drained" as const);
      const result = await Promise.race([drained, graceOver]);
      clearTimeout(timer);
      if (result === "timeout") {
        log.warn("grace period over: cancelling the calls still running");
        shutdownController.abort(SERVER_STOPPING);
        forceClose();
        // Cancelled handlers still run until their next await returns (a saga records its step and stops): let
        // them end before onShutdown closes the database under them, which they would answer with INTERNAL.
        const left = await running.settled(STOP_AFTER_CANCEL_MS);
        if (left > 0) log.warn({ calls: left }, "calls still running after cancellation; closing anyway");
      }
      if (admin) await new Promise<void>((r) => admin.close(() => r()));
      await opts.onShutdown?.();
      await flushTracing();
      log.info("stopped");
    })());

  if (opts.signals) {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, "signal received");
      shutdown().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  return { name: opts.name, port, localPort, adminPort, health, faults, log, shutdown };
}
