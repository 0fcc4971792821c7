// catalog's domain errors, each with its gRPC code and a stable ErrorInfo reason.
import { Code } from "@connectrpc/connect";
import { DomainError } from "#kit";

export class ProductNotFoundError extends DomainError {
  constructor(sku: string) {
    super(Code.NotFound, "PRODUCT_NOT_FOUND", `product "${sku}" not found`, { sku });
  }
}

export class OutOfStockError extends DomainError {
  constructor(sku: string, left: number, wanted: number) {
    super(Code.FailedPrecondition, "OUT_OF_STOCK", `sku "${sku}": ${left} left, ${wanted} wanted`, { sku, left: String(left), wanted: String(wanted) });
  }
}

export class ReservationNotFoundError extends DomainError {
  constructor(id: string) {
    super(Code.NotFound, "RESERVATION_NOT_FOUND", `reservation "${id}" not found`, { reservation_id: id });
  }
}

export class ReservationConflictError extends DomainError {
  constructor(id: string) {
    super(Code.AlreadyExists, "RESERVATION_ID_REUSED", `reservation "${id}" already exists with other items`, { reservation_id: id });
  }
}

export class ReservationStateError extends DomainError {
  constructor(id: string, state: string, wanted: string) {
    super(Code.FailedPrecondition, "RESERVATION_STATE", `reservation "${id}" is ${state}; cannot ${wanted} it`, { reservation_id: id, state });
  }
}

export class DuplicateSkuError extends DomainError {
  constructor(sku: string) {
    super(Code.InvalidArgument, "DUPLICATE_SKU", `items: sku "${sku}" appears more than once`, { sku });
  }
}
