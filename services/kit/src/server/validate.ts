// Input rules declared in the contracts ((buf.validate.field) options, protovalidate), checked before handlers.
// This module only adapts @bufbuild/protovalidate's answer to ours: one Violation per broken rule, named by the
// field's path in proto names (`items[0].quantity`), described by protovalidate's message.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import type { Violation } from "../shared/errors.js";

// One validator per process: it plans each message type's checks on first use and reuses the plan.
const validator = createValidator();

/** Returns every rule the message breaks; field paths use proto names, e.g. `items[0].quantity`. */
export function violations<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Violation[] {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return [];
  // A rule that cannot be compiled or evaluated is a bug in the contract, not the caller's input.
  if (result.kind === "error") throw result.error;
  return result.violations.map((v) => ({ field: pathToString(v.field), description: v.message }));
}
