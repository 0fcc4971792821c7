import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { ReserveStockRequestSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { RegisterRequestSchema } from "#gen/meshmart/identity/v1/identity_pb.js";
import { ChargeRequestSchema } from "#gen/meshmart/payment/v1/payment_pb.js";
import { decodePageToken, encodePageToken, money, toCents, violations } from "#kit";

describe("input rules from the contracts", () => {
  it("accepts a valid request", () => {
    const req = create(ReserveStockRequestSchema, { reservationId: "r1", items: [{ sku: "mug-blue", quantity: 2 }] });
    expect(violations(ReserveStockRequestSchema, req)).to.deep.equal([]);
  });

  it("names every broken field with its path", () => {
    const req = create(ReserveStockRequestSchema, {
      reservationId: "",
      items: [
        { sku: "mug-blue", quantity: 0 },
        { sku: "", quantity: 1001 },
      ],
    });
    expect(violations(ReserveStockRequestSchema, req).map((v) => v.field)).to.deep.equal([
      "reservation_id",
      "items[0].quantity",
      "items[1].sku",
      "items[1].quantity",
    ]);
  });

  it("requires a non-empty repeated field and caps its length", () => {
    expect(violations(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { reservationId: "r" }))).to.deep.equal([
      { field: "items", description: "needs at least one item" },
    ]);
    const many = Array.from({ length: 51 }, (_, i) => ({ sku: `s${i}`, quantity: 1 }));
    expect(violations(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { reservationId: "r", items: many }))[0].field).to.equal("items");
  });

  it("checks e-mail format and string lengths", () => {
    const found = violations(RegisterRequestSchema, create(RegisterRequestSchema, { email: "not-an-email", password: "short" }));
    expect(found).to.deep.equal([
      { field: "email", description: "must be an e-mail address" },
      { field: "password", description: "must be at least 8 characters" },
    ]);
  });

  it("follows nested messages and patterns (card number, currency)", () => {
    const req = create(ChargeRequestSchema, {
      idempotencyKey: "k",
      orderId: "o",
      amount: { currencyCode: "usd", units: 1n },
      card: { number: "4242 4242", expMonth: 13, expYear: 2030 },
    });
    expect(violations(ChargeRequestSchema, req).map((v) => v.field)).to.deep.equal(["amount.currency_code", "card.number", "card.exp_month"]);
  });

  it("reports a missing required message", () => {
    const req = create(ChargeRequestSchema, { idempotencyKey: "k", orderId: "o" });
    expect(violations(ChargeRequestSchema, req).map((v) => v.field)).to.deep.equal(["amount", "card"]);
  });
});

describe("money and page tokens", () => {
  it("round-trips cents through google.type.Money units and nanos", () => {
    const m = money(1250);
    expect(m).to.include({ currencyCode: "USD", units: 12n, nanos: 500_000_000 });
    expect(toCents(m)).to.equal(1250);
    expect(toCents({ units: 1n, nanos: 1 })).to.equal(undefined);
  });

  it("decodes its own page tokens and rejects others as INVALID_ARGUMENT", () => {
    expect(decodePageToken(encodePageToken({ after: "mug" }), { after: "string" })).to.deep.equal({ after: "mug" });
    expect(decodePageToken(encodePageToken({ t: 5, id: "a" }), { t: "number", id: "string" })).to.deep.equal({ t: 5, id: "a" });
    expect(decodePageToken("", { after: "string" })).to.equal(undefined);
    expect(() => decodePageToken("garbage!", { after: "string" })).to.throw(/page_token/);
    // well-formed JSON with the wrong types is tampering too, not a database error later
    expect(() => decodePageToken(encodePageToken({ t: "x", id: "a" }), { t: "number", id: "string" })).to.throw(/page_token/);
    expect(() => decodePageToken(encodePageToken({ after: 7 }), { after: "string" })).to.throw(/page_token/);
  });
});
