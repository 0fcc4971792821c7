// meshmart's service kit: everything a service needs besides its domain. Its server side (serving) and client
// side (dialling) stand apart; services/kit/test/sides.unit.test.ts keeps them so.
export type { AdminRoute } from "./admin.js";
export { type AuthOptions, authenticate, currentUser, remoteKeys } from "./auth.js";
export { clientMetrics } from "./client-metrics.js";
export {
  type AuthUser,
  DEFAULT_TIMEOUT_MS,
  detached,
  forward,
  PROPAGATED_HEADERS,
  peerAddress,
  peerKey,
  principalKey,
  propagatedKey,
  requestIdKey,
  serverStoppingKey,
  userKey,
} from "./context.js";
export { databaseReady, openDatabase } from "./db.js";
export { type ClientPool, clientInterceptors, clientPool, type DialOptions } from "./dial.js";
export { type Config, ConfigError, env, oneOf, port } from "./env.js";
export { DomainError, ERROR_DOMAIN, errorReason, invalidArgument, toConnectError, type Violation } from "./errors.js";
export { type FaultSettings, Faults, faultsFromEnv, NO_FAULTS, parseFaults } from "./faults.js";
export { createGrpcJsTransport, type GrpcTransportOptions } from "./grpc-transport.js";
export { Health, type ReadinessCheck, within } from "./health.js";
export { inMemoryTransport } from "./in-memory.js";
export { observe, propagation, responseHeaders, validation } from "./interceptors.js";
export { type LockOptions, type Locks, lockTable } from "./locks.js";
export { type Logger, logger } from "./log.js";
export { main } from "./main.js";
export { checkWorkloadCert, principalOf, spiffeIdOf, type WorkloadCertFiles, workloadCertFiles } from "./mesh-security.js";
export { MAX_RECEIVE_BYTES_DEFAULT, MAX_SEND_BYTES_DEFAULT } from "./message-limits.js";
export { registry } from "./metrics.js";
export { formatMoney, money, toCents } from "./money.js";
export { DEFAULT_PAGE_SIZE, decodePageToken, encodePageToken, pageSize } from "./paging.js";
export { projectRoot } from "./project-root.js";
export { type Engine, interceptorsOf, kitInterceptors, type RunningServer, type ServeOptions, type ServiceEntry, serve, service } from "./serve.js";
export { type CommonConfig, commonDefaults, type ServicePart, serveOptionsFrom, servePart, serviceEnv } from "./service-config.js";
export { annotate, flushTracing, initTracing, inSpan, type TracingConfig, tracingConfig, tracingEnabled } from "./tracing.js";
export { violations } from "./validate.js";
