// identity's domain errors, each with its gRPC code and a stable ErrorInfo reason.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "#gen/google/rpc/error_details_pb.js";
import { DomainError, ERROR_DOMAIN } from "#kit";

export class EmailTakenError extends DomainError {
  constructor(email: string) {
    super(Code.AlreadyExists, "EMAIL_TAKEN", `e-mail "${email}" is already registered`, { email });
  }
}

/** One message for an unknown e-mail and a wrong password, so a caller cannot tell which e-mails exist. */
export class InvalidCredentialsError extends DomainError {
  constructor() {
    super(Code.Unauthenticated, "INVALID_CREDENTIALS", "wrong e-mail or password");
  }
}

/**
 * Too many failed logins from this source or for this account: RESOURCE_EXHAUSTED (a quota ran out, as
 * gRPC's and Google's conventions have it for rate limits) with a google.rpc.RetryInfo saying when to try
 * again. Not UNAVAILABLE: that tells clients and the mesh to retry at once, which is the opposite of the point.
 */
export class LoginThrottledError extends ConnectError {
  constructor(waitMs: number) {
    const seconds = Math.ceil(waitMs / 1000);
    super(`too many failed logins: try again in ${seconds} s`, Code.ResourceExhausted, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "LOGIN_THROTTLED", domain: ERROR_DOMAIN, metadata: { retry_after_seconds: String(seconds) } } },
      { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(Math.max(1, Math.ceil(waitMs))) } },
    ]);
  }
}

export class UserNotFoundError extends DomainError {
  constructor(userId: string) {
    super(Code.NotFound, "USER_NOT_FOUND", `user "${userId}" not found`, { user_id: userId });
  }
}
