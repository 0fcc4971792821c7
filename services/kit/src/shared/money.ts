// Money on the wire is google.type.Money-shaped (units + nanos); inside the services it is integer cents.
import { create } from "@bufbuild/protobuf";
import { type Money, MoneySchema } from "#gen/meshmart/common/v1/money_pb.js";

/** Integer minor units (cents) as a Money message. */
export function money(cents: number, currencyCode = "USD"): Money {
  if (!Number.isSafeInteger(cents) || cents < 0) throw new RangeError(`money: ${cents} is not a whole number of cents`);
  return create(MoneySchema, { currencyCode, units: BigInt(Math.floor(cents / 100)), nanos: (cents % 100) * 10_000_000 });
}

/** A Money message as integer cents; undefined when it has fractions of a cent. */
export function toCents(m: Pick<Money, "units" | "nanos">): number | undefined {
  if (m.nanos % 10_000_000 !== 0) return undefined;
  return Number(m.units) * 100 + m.nanos / 10_000_000;
}

/** "12.50 USD" for logs and messages. */
export function formatMoney(cents: number, currencyCode = "USD"): string {
  return `${(cents / 100).toFixed(2)} ${currencyCode}`;
}
