// orders: places orders through the saga over catalog and payment, and shows users their orders.
import { initTracing, main } from "#kit";
import { ordersConfig, startOrders } from "./server.js";

// Tracing first: the database connection and the clients are made with it on or off.
main(async () => {
  const config = ordersConfig();
  await initTracing("orders");
  return startOrders(config, { signals: true });
});
