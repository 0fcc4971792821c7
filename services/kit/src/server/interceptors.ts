// The kit's server interceptors, Connect-shaped so the grpc-js and connect-node engines share them.
import type { Interceptor } from "@connectrpc/connect";
import { capturePropagation, principalKey, requestIdKey } from "../shared/context.js";
import { invalidArgument, toConnectError } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import { codeName, methodLabels, serverHandled, serverSeconds, serverStarted } from "../shared/metrics.js";
import { violations } from "./validate.js";

/** Copies trace/routing headers into the context; echoes x-request-id on the response. */
export function propagation(): Interceptor {
  return (next) => async (req) => {
    const id = capturePropagation(req.header, req.contextValues);
    try {
      const res = await next(req);
      res.header.set("x-request-id", id);
      return res;
    } catch (err) {
      const e = toConnectError(err);
      e.metadata.set("x-request-id", id);
      throw e;
    }
  };
}

/** Counts and times every RPC and writes one log line for it (method, code, duration, request id). */
export function observe(log: Logger): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName.startsWith("grpc.")) return next(req); // health and reflection: noise
    const labels = methodLabels(req);
    serverStarted.inc(labels);
    const start = process.hrtime.bigint();
    let error: unknown;
    try {
      return await next(req);
    } catch (err) {
      error = toConnectError(err);
      throw error;
    } finally {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const code = codeName(error);
      serverHandled.inc({ ...labels, grpc_code: code });
      serverSeconds.observe({ ...labels, grpc_code: code }, seconds);
      const line = {
        method: `${req.service.typeName}/${req.method.name}`,
        code,
        ms: Math.round(seconds * 10000) / 10,
        requestId: req.contextValues.get(requestIdKey),
        // In the mesh: who called, as the AuthorizationPolicy saw it (from the caller's certificate).
        ...(req.contextValues.get(principalKey) ? { principal: req.contextValues.get(principalKey) } : {}),
      };
      if (error && code === "Internal") log.error({ ...line, err: (error as { cause?: unknown }).cause ?? error }, "rpc failed");
      else if (error) log.info({ ...line, error: (error as Error).message }, "rpc");
      else log.info(line, "rpc");
    }
  };
}

/** Checks the request against its contract's (buf.validate.field) rules; INVALID_ARGUMENT names the fields. */
export function validation(): Interceptor {
  const interceptor: Interceptor = (next) => async (req) => {
    if (!req.stream) {
      const found = violations(req.method.input, req.message);
      if (found.length > 0) throw invalidArgument(found);
    }
    return next(req);
  };
  validators.add(interceptor);
  return interceptor;
}

const validators = new WeakSet<Interceptor>();

/** Whether `i` is a validation() interceptor (a service's own interceptors, such as auth, go before it). */
export function isValidation(i: Interceptor): boolean {
  return validators.has(i);
}

/** Adds fixed headers to every response, errors included (e.g. x-served-by: catalog-v2). */
export function responseHeaders(headers: Record<string, string>): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      for (const [k, v] of Object.entries(headers)) res.header.set(k, v);
      return res;
    } catch (err) {
      const e = toConnectError(err);
      for (const [k, v] of Object.entries(headers)) e.metadata.set(k, v);
      throw e;
    }
  };
}
