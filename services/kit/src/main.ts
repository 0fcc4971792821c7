// Entry-point wrapper: a bad configuration exits 2 with the variable named, any other startup failure exits 1.
import { ConfigError } from "./env.js";

export function main(start: () => Promise<unknown>): void {
  start().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error("startup failed:", err);
    process.exit(1);
  });
}
