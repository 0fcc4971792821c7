// Test-only entry point of orders for the crash test: the real service, plus a saga hook that SIGKILLs the
// process right after the step named by CRASH_AFTER_STEP. It lives under test/ so that no production
// configuration or image carries the hook.
import { main } from "#kit";
import type { SagaStep } from "../src/orders.js";
import { ordersConfig, startOrders } from "../src/server.js";

const STEPS: readonly SagaStep[] = ["RESERVING", "RESERVED", "CHARGING", "CHARGED", "COMMITTING"];
const crashAfter = process.env.CRASH_AFTER_STEP as SagaStep;
if (!STEPS.includes(crashAfter)) {
  console.error(`CRASH_AFTER_STEP must be one of ${STEPS.join(", ")}, got "${crashAfter ?? ""}"`);
  process.exit(2);
}
console.error(`TEST HOOK: this process will kill itself after reaching saga step ${crashAfter}`);

main(() => startOrders(ordersConfig(), { signals: true, afterStep: (step) => void (step === crashAfter && process.kill(process.pid, "SIGKILL")) }));
