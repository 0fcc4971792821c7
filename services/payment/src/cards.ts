// The simulated card processor: pure functions, no I/O. Sandbox numbers decide the outcome, as at a real
// processor; the number itself never leaves this module except as its last four digits.
import { invalidArgument } from "#kit";

export type DeclineReasonName = "CARD_DECLINED" | "INSUFFICIENT_FUNDS" | "EXPIRED_CARD";

/** Sandbox numbers with a fixed outcome; any other number that passes the Luhn check approves. */
export const TEST_CARDS = {
  approves: "4242424242424242",
  declines: "4000000000000002",
  insufficientFunds: "4000000000009995",
} as const;

const FIXED_DECLINES: Record<string, DeclineReasonName> = {
  [TEST_CARDS.declines]: "CARD_DECLINED",
  [TEST_CARDS.insufficientFunds]: "INSUFFICIENT_FUNDS",
};

export interface CardDetails {
  number: string;
  expMonth: number;
  expYear: number;
}

export interface Authorization {
  /** Why the card was refused; undefined when approved. */
  decline?: DeclineReasonName;
  last4: string;
}

/** The Luhn checksum every card number carries: catches typos before anything is charged. */
export function luhnValid(number: string): boolean {
  if (!/^[0-9]+$/.test(number)) return false;
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let digit = number.charCodeAt(number.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** A card is good through the last day of its expiry month (UTC). */
export function isExpired(expMonth: number, expYear: number, now: Date): boolean {
  return expYear * 12 + (expMonth - 1) < now.getUTCFullYear() * 12 + now.getUTCMonth();
}

/**
 * Decides a charge. A number failing the Luhn check is INVALID_ARGUMENT naming card.number (a typo, not a
 * refusal); an expired card or a declining test card comes back as a decline reason.
 */
export function authorize(card: CardDetails, now: Date = new Date()): Authorization {
  if (!luhnValid(card.number)) throw invalidArgument([{ field: "card.number", description: "is not a valid card number (Luhn check failed)" }]);
  const decline: DeclineReasonName | undefined = isExpired(card.expMonth, card.expYear, now) ? "EXPIRED_CARD" : FIXED_DECLINES[card.number];
  const result = { last4: card.number.slice(-4) };
  return decline ? { ...result, decline } : result;
}
