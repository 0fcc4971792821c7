// Awaits a call that must fail and returns its error as a ConnectError (code, message, details).
import { ConnectError } from "@connectrpc/connect";

export async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
