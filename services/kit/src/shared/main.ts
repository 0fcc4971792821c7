// Entry-point wrapper: a bad configuration exits 2 with the variable named, any other startup failure exits 1.
import { ConfigError } from "./env.js";

export function main(start: () => Promise<unknown>): void {
  // Through a promise, so a config error thrown before start's first await is handled the same way.
  Promise.resolve()
    .then(start)
    .catch((err: unknown) => {
      if (err instanceof ConfigError) {
        console.error(err.message);
        process.exit(2);
      }
      console.error("startup failed:", err);
      process.exit(1);
    });
}
