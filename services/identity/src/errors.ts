// identity's domain errors, each with its gRPC code and a stable ErrorInfo reason.
import { Code } from "@connectrpc/connect";
import { DomainError } from "#kit";

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

export class UserNotFoundError extends DomainError {
  constructor(userId: string) {
    super(Code.NotFound, "USER_NOT_FOUND", `user "${userId}" not found`, { user_id: userId });
  }
}
