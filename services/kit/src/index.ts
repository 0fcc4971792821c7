// meshmart's service kit: everything a service needs besides its domain. Its server side (serving) and client
// side (dialling) stand apart; services/kit/test/sides.unit.test.ts keeps them so.

export { clientMetrics } from "./client/client-metrics.js";
export { type ClientPool, clientInterceptors, clientPool, type DialOptions } from "./client/dial.js";
export { createGrpcJsTransport, type GrpcTransportOptions } from "./client/grpc-transport.js";
export { inMemoryTransport } from "./in-memory.js";
export type { AdminRoute } from "./server/admin.js";
export { type AuthOptions, authenticate, currentUser, remoteKeys } from "./server/auth.js";
export { databaseReady, openDatabase } from "./server/db.js";
export { type FaultSettings, Faults, faultsFromEnv, NO_FAULTS, parseFaults } from "./server/faults.js";
export { Health, type ReadinessCheck, within } from "./server/health.js";
export { observe, propagation, responseHeaders, validation } from "./server/interceptors.js";
export { checkWorkloadCert, principalOf, spiffeIdOf, type WorkloadCertFiles, workloadCertFiles } from "./server/mesh-security.js";
export { type Engine, interceptorsOf, kitInterceptors, type RunningServer, type ServeOptions, type ServiceEntry, serve, service } from "./server/serve.js";
export { type CommonConfig, commonDefaults, type ServicePart, serveOptionsFrom, servePart, serviceEnv } from "./server/service-config.js";
export { violations } from "./server/validate.js";
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
} from "./shared/context.js";
export { type Config, ConfigError, env, oneOf, port } from "./shared/env.js";
export { DomainError, ERROR_DOMAIN, errorReason, invalidArgument, toConnectError, type Violation } from "./shared/errors.js";
export { type LockOptions, type Locks, lockTable } from "./shared/locks.js";
export { type Logger, logger } from "./shared/log.js";
export { main } from "./shared/main.js";
export { MAX_RECEIVE_BYTES_DEFAULT, MAX_SEND_BYTES_DEFAULT } from "./shared/message-limits.js";
export { registry } from "./shared/metrics.js";
export { formatMoney, money, toCents } from "./shared/money.js";
export { DEFAULT_PAGE_SIZE, decodePageToken, encodePageToken, pageSize } from "./shared/paging.js";
export { projectRoot } from "./shared/project-root.js";
export { annotate, flushTracing, initTracing, inSpan, type TracingConfig, tracingConfig, tracingEnabled } from "./shared/tracing.js";
