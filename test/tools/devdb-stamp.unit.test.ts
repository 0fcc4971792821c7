// devdb's staleness check (tools/stack/devdb.ts) and tools/setup/setup.sh must hash devdb's source the same way: setup.sh
// writes the stamp when it builds, startDevDb refuses a binary whose stamp differs from the source's.
import { execFileSync } from "node:child_process";
import { expect } from "chai";
import { ROOT } from "../../tools/root.js";
import { devDbSourceStamp } from "../../tools/stack/devdb.js";

describe("devdb source stamp", () => {
  it("is the hash tools/setup/setup.sh writes next to the binary", () => {
    const shell = execFileSync("bash", ["-c", "cat tools/setup/devdb/go.mod tools/setup/devdb/go.sum tools/setup/devdb/*.go | sha256sum | cut -c1-16"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(devDbSourceStamp()).to.equal(shell.trim());
  });
});
