// payment: a simulated card processor with a ledger.
import { initTracing, main } from "#kit";
import { paymentConfig, startPayment } from "./server.js";

// Tracing first: the database connection and the clients are made with it on or off.
main(async () => {
  const config = paymentConfig();
  await initTracing("payment");
  return startPayment(config, { signals: true });
});
