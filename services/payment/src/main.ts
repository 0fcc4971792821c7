// payment: a simulated card processor with a ledger.
import { main } from "#kit";
import { paymentConfig, startPayment } from "./server.js";

main(() => startPayment(paymentConfig(), { signals: true }));
