import { expect } from "chai";
import { ConfigError, commonDefaults, env, oneOf, serviceEnv } from "#kit";
import { faultsFromEnv } from "../src/server/faults.js";

describe("env", () => {
  const defaults = { PORT: 50052, NAME: "catalog", SEED: true, VERSION: oneOf(["v1", "v2"], "v1") };

  it("returns the defaults when nothing is set", () => {
    expect(env(defaults, {})).to.deep.equal({ PORT: 50052, NAME: "catalog", SEED: true, VERSION: "v1" });
  });

  it("parses integers, booleans and one-of values", () => {
    expect(env(defaults, { PORT: "7", SEED: "false", VERSION: "v2", NAME: "x" })).to.deep.equal({ PORT: 7, NAME: "x", SEED: false, VERSION: "v2" });
  });

  for (const [variable, value] of [
    ["PORT", "50o52"],
    ["SEED", "maybe"],
    ["VERSION", "v3"],
  ]) {
    it(`names ${variable} when it is "${value}"`, () => {
      expect(() => env(defaults, { [variable]: value }))
        .to.throw(ConfigError)
        .with.property("message")
        .that.contains(variable);
    });
  }
});

describe("serviceEnv", () => {
  const defaults = { ...commonDefaults, PORT: 50052, ADMIN_PORT: 9092 };

  it("listens on loopback unless HOST is set (the images set 0.0.0.0)", () => {
    expect(serviceEnv(defaults, {}).HOST).to.equal("127.0.0.1");
    expect(serviceEnv(defaults, { HOST: "0.0.0.0" }).HOST).to.equal("0.0.0.0");
  });
});

describe("faultsFromEnv", () => {
  it("is off by default", () => {
    expect(faultsFromEnv({})).to.include({ errorPercent: 0, delayMs: 0 });
  });

  it("reads the knobs and the method filter", () => {
    const f = faultsFromEnv({ FAULT_ERROR_PERCENT: "25", FAULT_DELAY_MS: "100", FAULT_METHODS: "Charge, meshmart.catalog.v1.CatalogService/GetProduct" });
    expect(f).to.deep.include({ errorPercent: 25, delayMs: 100, methods: ["Charge", "meshmart.catalog.v1.CatalogService/GetProduct"] });
  });

  it("names the variable of a bad value", () => {
    expect(() => faultsFromEnv({ FAULT_ERROR_PERCENT: "150" })).to.throw(/FAULT_ERROR_PERCENT/);
  });
});
