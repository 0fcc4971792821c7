// orders' domain errors, each with its gRPC code and a stable ErrorInfo reason.
import { Code } from "@connectrpc/connect";
import { DomainError } from "#kit";

export class OrderNotFoundError extends DomainError {
  constructor(orderId: string) {
    super(Code.NotFound, "ORDER_NOT_FOUND", `order "${orderId}" not found`, { order_id: orderId });
  }
}

export class IdempotencyKeyReusedError extends DomainError {
  constructor(key: string) {
    super(Code.AlreadyExists, "IDEMPOTENCY_KEY_REUSED", `idempotency key "${key}" was used for a different order`, { idempotency_key: key });
  }
}

export class DuplicateSkuError extends DomainError {
  constructor(sku: string) {
    super(Code.InvalidArgument, "DUPLICATE_SKU", `items: sku "${sku}" appears more than once`, { sku });
  }
}
