import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { BadRequestSchema } from "#gen/google/rpc/error_details_pb.js";
import { checkPasswordPolicy, dummyHash, hashPassword, verifyPassword } from "../src/passwords.js";

function policyViolation(password: string): string | undefined {
  try {
    checkPasswordPolicy(password);
    return undefined;
  } catch (err) {
    const e = ConnectError.from(err);
    expect(e.code).to.equal(Code.InvalidArgument);
    const [v] = e.findDetails(BadRequestSchema)[0]?.fieldViolations ?? [];
    expect(v?.field).to.equal("password");
    return v?.description;
  }
}

describe("password policy", () => {
  it("accepts 8 to 128 characters with a letter and a digit", () => {
    expect(policyViolation("abcdefg1")).to.equal(undefined);
    expect(policyViolation(`${"a".repeat(127)}1`)).to.equal(undefined);
    expect(policyViolation("pässwörd7")).to.equal(undefined);
  });

  it("refuses fewer than 8 or more than 128 characters", () => {
    expect(policyViolation("abcdef1")).to.contain("8 to 128");
    expect(policyViolation(`${"a".repeat(128)}1`)).to.contain("8 to 128");
  });

  it("counts characters, not UTF-16 units", () => {
    expect(policyViolation("😀😀😀1")).to.contain("got 4"); // 7 UTF-16 units, 4 characters
  });

  it("refuses a password without a letter or without a digit", () => {
    expect(policyViolation("12345678")).to.contain("letter");
    expect(policyViolation("abcdefgh")).to.contain("digit");
  });
});

describe("password hashing", () => {
  it("verifies the right password and refuses a wrong one", async () => {
    const hash = await hashPassword("correct horse 1");
    expect(await verifyPassword("correct horse 1", hash)).to.equal(true);
    expect(await verifyPassword("correct horse 2", hash)).to.equal(false);
  });

  it("salts every hash, so one password never hashes the same twice", async () => {
    const [a, b] = await Promise.all([hashPassword("same-password1"), hashPassword("same-password1")]);
    expect(a).to.not.equal(b);
    expect(a).to.match(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  });

  it("never matches a malformed or out-of-bounds hash", async () => {
    const hash = await hashPassword("secret123");
    expect(await verifyPassword("secret123", "")).to.equal(false);
    expect(await verifyPassword("secret123", "secret123")).to.equal(false);
    expect(await verifyPassword("secret123", hash.replace("ln=15", "ln=30"))).to.equal(false);
  });

  it("keeps one dummy hash with the current cost for unknown e-mails", async () => {
    expect(await dummyHash()).to.equal(await dummyHash());
    expect(await dummyHash()).to.match(/^\$scrypt\$ln=15,/);
  });
});
