// meshmart's service kit: everything a service needs besides its domain.
export { type AdminRoute } from "./admin.js";
export { type AuthOptions, authenticate, currentUser, remoteKeys } from "./auth.js";
export { type AuthUser, DEFAULT_TIMEOUT_MS, detached, forward, PROPAGATED_HEADERS, propagatedKey, requestIdKey, userKey } from "./context.js";
export { databaseReady, openDatabase } from "./db.js";
export { closeClients, dial, useInMemoryTransport } from "./dial.js";
export { ConfigError, env, oneOf, port } from "./env.js";
export { DomainError, ERROR_DOMAIN, errorReason, invalidArgument, toConnectError, type Violation } from "./errors.js";
export { type FaultSettings, Faults, faultsFromEnv, NO_FAULTS } from "./faults.js";
export { createGrpcTransport } from "./grpc-transport.js";
export { Health, type ReadinessCheck, within } from "./health.js";
export { clientMetrics, observe, propagation, validation } from "./interceptors.js";
export { type Logger, logger } from "./log.js";
export { registry } from "./metrics.js";
export { type Engine, type RunningServer, type ServeOptions, type ServiceEntry, serve, service } from "./serve.js";
export { violations } from "./validate.js";
