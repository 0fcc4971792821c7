// orders: places orders through the saga over catalog and payment, and shows users their orders.
import { main } from "#kit";
import { ordersConfig, startOrders } from "./server.js";

main(() => startOrders(ordersConfig(), { signals: true }));
