// Message size limits shared by the kit's servers (serve.ts) and clients (grpc-transport.ts).

/**
 * Message size limits, explicit rather than left to each engine's default (grpc-js: 4 MiB in, unlimited out;
 * connect-node: unlimited both ways). The largest legitimate request is a PlaceOrder of 50 lines, a few KiB;
 * 1 MiB in leaves ample room while bounding the memory one call can pin before validation runs. Responses
 * are ours and can be bigger (a ListOrders page: 100 orders × 50 lines ≈ 0.7 MB), so 4 MiB out — the gRPC
 * default receive limit of every client, so anything larger would fail at the caller anyway.
 */
export const MAX_RECEIVE_BYTES_DEFAULT = 1024 * 1024;
export const MAX_SEND_BYTES_DEFAULT = 4 * 1024 * 1024;
