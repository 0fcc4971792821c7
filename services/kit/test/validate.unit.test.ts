import { create } from "@bufbuild/protobuf";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { expect } from "chai";
import { file_meshmart_catalog_v1_catalog, ReserveStockRequestSchema, SearchProductsRequestSchema } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { RegisterRequestSchema } from "#gen/meshmart/identity/v1/identity_pb.js";
import { ChargeRequestSchema } from "#gen/meshmart/payment/v1/payment_pb.js";
import { decodePageToken, encodePageToken, money, toCents, violations } from "#kit";

describe("input rules from the contracts (protovalidate)", () => {
  it("reads them with @bufbuild/protovalidate's own buf.validate descriptors, not a generated copy", () => {
    expect(file_meshmart_catalog_v1_catalog.dependencies).to.include(file_buf_validate_validate);
  });

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
      { field: "items", description: "must contain at least 1 item(s)" },
    ]);
    const many = Array.from({ length: 51 }, (_, i) => ({ sku: `s${i}`, quantity: 1 }));
    expect(violations(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { reservationId: "r", items: many }))[0].field).to.equal("items");
  });

  it("checks e-mail format and string lengths", () => {
    const found = violations(RegisterRequestSchema, create(RegisterRequestSchema, { email: "not-an-email", password: "short" }));
    expect(found).to.deep.equal([
      { field: "email", description: "must be a valid email address" },
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

  it("checks an optional pattern only when the field is given (the card's cvc)", () => {
    const charge = (cvc: string) =>
      create(ChargeRequestSchema, {
        idempotencyKey: "k",
        orderId: "o",
        amount: { currencyCode: "USD", units: 1n },
        card: { number: "4242424242424242", expMonth: 1, expYear: 2030, cvc },
      });
    expect(violations(ChargeRequestSchema, charge(""))).to.deep.equal([]);
    expect(violations(ChargeRequestSchema, charge("123"))).to.deep.equal([]);
    expect(violations(ChargeRequestSchema, charge("12")).map((v) => v.field)).to.deep.equal(["card.cvc"]);
  });

  it("refuses a blank search query with the contract's own rule (a CEL expression)", () => {
    const search = (query: string) => violations(SearchProductsRequestSchema, create(SearchProductsRequestSchema, { query }));
    expect(search("")).to.deep.equal([{ field: "query", description: "value is required" }]);
    expect(search(" \t")).to.deep.equal([{ field: "query", description: "must contain a word" }]);
    expect(search("green tea")).to.deep.equal([]);
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
