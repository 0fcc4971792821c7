// The descriptor-driven generators themselves: valid means valid to the kit's validator, random reaches
// the edges (unknown enum numbers, boundary lengths, missing required fields), damage stays decodable-or-not
// as intended. Pure: no server, no database.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import fc from "fast-check";
import { ReservationSchema, ReservationState } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { RegisterRequestSchema } from "#gen/meshmart/identity/v1/identity_pb.js";
import { PlaceOrderRequestSchema } from "#gen/meshmart/orders/v1/orders_pb.js";
import { ChargeRequestSchema } from "#gen/meshmart/payment/v1/payment_pb.js";
import { violations } from "#kit";
import { type Dictionary, nearValidMessageInit, randomMessageInit, validMessageInit } from "../../tools/traffic/fuzz/arbitraries.js";
import { applyDamage } from "../../tools/traffic/fuzz/wire.js";

const empty: Dictionary = new Map();

describe("fuzz generators", function () {
  this.timeout(60_000); // huge strings and over-long lists are generated on purpose
  it("makes valid messages the kit's validator accepts, for every request with rules", () => {
    for (const schema of [PlaceOrderRequestSchema, ChargeRequestSchema, RegisterRequestSchema]) {
      fc.assert(
        fc.property(validMessageInit(schema, empty), (init) => {
          const message = create(schema, init as never);
          expect(
            violations(schema, message),
            JSON.stringify(init, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
          ).to.deep.equal([]);
        }),
        { numRuns: 200, seed: 7 },
      );
    }
  });

  it("makes near-valid messages that break at most the one field they changed", () => {
    const top = (path: string) => path.split(/[.[]/)[0];
    fc.assert(
      fc.property(nearValidMessageInit(PlaceOrderRequestSchema, empty), (init) => {
        const broken = new Set(violations(PlaceOrderRequestSchema, create(PlaceOrderRequestSchema, init as never)).map((v) => top(v.field)));
        expect(broken.size).to.be.at.most(1);
      }),
      { numRuns: 200, seed: 8 },
    );
  });

  it("reaches unknown enum numbers, missing required fields and over-long strings, all still encodable", () => {
    const known = new Set(Object.values(ReservationState).filter((v) => typeof v === "number"));
    const reservations = fc.sample(randomMessageInit(ReservationSchema, empty), { numRuns: 500, seed: 9 });
    expect(reservations.some((r) => r.state !== undefined && !known.has(r.state as number))).to.equal(true);
    for (const r of reservations) fromBinary(ReservationSchema, toBinary(ReservationSchema, create(ReservationSchema, r as never)));
    const orders = fc.sample(randomMessageInit(PlaceOrderRequestSchema, empty), { numRuns: 500, seed: 10 });
    const found = orders.map((o) => violations(PlaceOrderRequestSchema, create(PlaceOrderRequestSchema, o as never)).map((v) => v.description));
    expect(found.some((d) => d.includes("value is required"))).to.equal(true);
    expect(found.some((d) => d.some((x) => x.startsWith("must be at most 128 characters")))).to.equal(true);
    expect(found.some((d) => d.some((x) => x.startsWith("must contain no more than 50 item")))).to.equal(true);
  });

  it("writes invalid UTF-8 into a string field, top-level or nested, that a strict decoder refuses", () => {
    const bytes = toBinary(ChargeRequestSchema, create(ChargeRequestSchema, { idempotencyKey: "k", orderId: "o", card: { number: "4242424242424242" } }));
    for (let pick = 0; pick < 6; pick++) {
      const damaged = applyDamage(ChargeRequestSchema, bytes, { kind: "invalid-utf8", pick, bytes: [0xc3, 0x28] });
      expect(() => fromBinary(ChargeRequestSchema, damaged), `pick ${pick}`).to.throw(/utf-8/i);
    }
  });
});
