// Domain errors as gRPC statuses with google.rpc details, so grpcurl and every client see the same reason.
import { Code, ConnectError } from "@connectrpc/connect";
import mongoose from "mongoose";
import { BadRequestSchema, ErrorInfoSchema } from "#gen/google/rpc/error_details_pb.js";

/** The `domain` of every ErrorInfo meshmart sends. */
export const ERROR_DOMAIN = "meshmart.dev";

/**
 * A ConnectError carrying a google.rpc.ErrorInfo: `reason` is a stable UPPER_SNAKE identifier a client may
 * branch on, `metadata` the ids involved. Services subclass it in their errors.ts.
 */
export class DomainError extends ConnectError {
  constructor(code: Code, reason: string, message: string, metadata: Record<string, string> = {}) {
    // name stays "ConnectError": ConnectError's instanceof check relies on it.
    super(message, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN, metadata } }]);
  }
}

/** A field that broke an input rule. */
export interface Violation {
  field: string;
  description: string;
}

/** INVALID_ARGUMENT naming the fields, with a google.rpc.BadRequest detail. */
export function invalidArgument(violations: Violation[]): ConnectError {
  const message = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new ConnectError(message, Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: { fieldViolations: violations } }]);
}

/** The ErrorInfo reason of an error, if it carries one. */
export function errorReason(err: unknown): string | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}

const DATABASE_DOWN = new Set([
  "MongoServerSelectionError",
  "MongoNetworkError",
  "MongoNetworkTimeoutError",
  "MongoNotConnectedError",
  "MongoTopologyClosedError",
]);

/**
 * Wraps anything thrown into a ConnectError. A lost database is UNAVAILABLE (worth a retry elsewhere);
 * anything else unknown is a bug: INTERNAL, without leaking its text to the caller.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  // Every network error of the driver counts, subclasses included: PoolClearedError (an operation waiting
  // for a connection when the pool was cleared) answered INTERNAL while the database was stopped.
  if (err instanceof mongoose.mongo.MongoNetworkError || (err instanceof Error && DATABASE_DOWN.has(err.name)))
    return new ConnectError("database unavailable", Code.Unavailable, undefined, undefined, err);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}
