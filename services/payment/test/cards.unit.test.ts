import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { BadRequestSchema } from "#gen/google/rpc/error_details_pb.js";
import { authorize, isExpired, luhnValid, TEST_CARDS } from "../src/cards.js";

const NOW = new Date("2026-03-15T12:00:00Z");
const card = (number: string, expMonth = 12, expYear = 2030) => ({ number, expMonth, expYear });

describe("cards", () => {
  describe("luhnValid", () => {
    it("accepts the test cards and other well-formed numbers", () => {
      for (const n of [...Object.values(TEST_CARDS), "5555555555554444", "378282246310005"]) expect(luhnValid(n), n).to.equal(true);
    });

    it("rejects a number with one digit changed, and anything that is not digits", () => {
      for (const n of ["4242424242424241", "4000000000000003", "4242 4242 4242 4242", "", "abc"]) expect(luhnValid(n), n).to.equal(false);
    });
  });

  describe("isExpired", () => {
    it("keeps a card good through the last day of its expiry month", () => {
      expect(isExpired(3, 2026, new Date("2026-03-31T23:59:59Z"))).to.equal(false);
      expect(isExpired(3, 2026, new Date("2026-04-01T00:00:00Z"))).to.equal(true);
    });

    it("compares years before months", () => {
      expect(isExpired(1, 2027, NOW)).to.equal(false);
      expect(isExpired(12, 2025, NOW)).to.equal(true);
    });
  });

  describe("authorize", () => {
    it("approves 4242 4242 4242 4242 and any other Luhn-valid number", () => {
      expect(authorize(card(TEST_CARDS.approves), NOW).decline).to.equal(undefined);
      expect(authorize(card("5555555555554444"), NOW))
        .to.include({ last4: "4444" })
        .and.not.have.property("decline");
    });

    it("declines the declining and insufficient-funds test cards with their reasons", () => {
      expect(authorize(card(TEST_CARDS.declines), NOW).decline).to.equal("CARD_DECLINED");
      expect(authorize(card(TEST_CARDS.insufficientFunds), NOW).decline).to.equal("INSUFFICIENT_FUNDS");
    });

    it("declines an expired card as EXPIRED_CARD, even a card that would otherwise approve", () => {
      expect(authorize(card(TEST_CARDS.approves, 2, 2026), NOW).decline).to.equal("EXPIRED_CARD");
    });

    it("answers INVALID_ARGUMENT naming card.number for a Luhn failure, without echoing the number", () => {
      let err: ConnectError | undefined;
      try {
        authorize(card("4242424242424241"), NOW);
      } catch (e) {
        err = ConnectError.from(e);
      }
      expect(err?.code).to.equal(Code.InvalidArgument);
      expect(err?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).to.equal("card.number");
      expect(err?.message).not.to.contain("4242424242424241");
    });

    it("returns only the last four digits of the number", () => {
      const a = authorize(card(TEST_CARDS.approves), NOW);
      expect(a).to.deep.equal({ last4: "4242" });
    });
  });
});
