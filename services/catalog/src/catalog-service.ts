// The CatalogService RPCs: browse products, and reserve / release / commit stock for orders.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type CatalogService, type ProductSchema, type ReservationSchema, ReservationState } from "#gen/meshmart/catalog/v1/catalog_pb.js";
import { decodePageToken, encodePageToken, money, pageSize } from "#kit";
import { ProductNotFoundError } from "./errors.js";
import type { ProductRecord, ProductStore } from "./products.js";
import type { ReservationBook, ReservationRecord } from "./reservations.js";

export type CatalogVersion = "v1" | "v2";

export interface Deps {
  products: ProductStore;
  reservations: ReservationBook;
  version: CatalogVersion;
}

const LOW_STOCK = 5;

export function catalogService({ products, reservations, version }: Deps): ServiceImpl<typeof CatalogService> {
  /** v2 shows ratings and badges; v1 leaves them unset, so a canary split is visible in every response. */
  const toProto = (p: ProductRecord): MessageInitShape<typeof ProductSchema> => ({
    sku: p._id,
    name: p.name,
    description: p.description,
    price: money(p.priceCents, p.currency),
    stock: p.stock,
    categories: p.categories ?? [], // lean reads skip schema defaults
    imageUrl: p.imageUrl,
    ...(version === "v2"
      ? { rating: p.rating, reviewCount: p.reviewCount, badges: [...(p.badges ?? []), ...(p.stock > 0 && p.stock < LOW_STOCK ? ["low-stock"] : [])] }
      : {}),
  });

  const page = (rows: ProductRecord[], size: number) => ({
    products: rows.slice(0, size).map(toProto),
    nextPageToken: rows.length > size ? encodePageToken({ after: rows[size - 1]._id }) : "",
  });

  return {
    async listProducts({ pageSize: requested, pageToken, category }) {
      const size = pageSize(requested);
      const after = decodePageToken(pageToken, { after: "string" })?.after;
      return page(await products.page(size, after, category || undefined), size);
    },

    async getProduct({ sku }) {
      const p = await products.get(sku);
      if (!p) throw new ProductNotFoundError(sku);
      return { product: toProto(p) };
    },

    async searchProducts({ query, pageSize: requested, pageToken }) {
      const size = pageSize(requested);
      const after = decodePageToken(pageToken, { after: "string" })?.after;
      return page(await products.search(query, size, after), size);
    },

    async reserveStock({ reservationId, items }, ctx) {
      return { reservation: reservationToProto(await reservations.reserve(reservationId, items, { timeoutMs: ctx.timeoutMs(), signal: ctx.signal })) };
    },

    async releaseStock({ reservationId }) {
      return { reservation: reservationToProto(await reservations.release(reservationId)) };
    },

    async commitReservation({ reservationId }) {
      return { reservation: reservationToProto(await reservations.commit(reservationId)) };
    },
  };
}

const STATES = {
  RESERVING: ReservationState.UNSPECIFIED,
  RESERVED: ReservationState.RESERVED,
  RELEASED: ReservationState.RELEASED,
  COMMITTED: ReservationState.COMMITTED,
} as const;

export function reservationToProto(r: ReservationRecord): MessageInitShape<typeof ReservationSchema> {
  return {
    reservationId: r._id,
    state: STATES[r.state],
    items: (r.items ?? []).map((i) => ({ sku: i.sku, name: i.name, quantity: i.quantity, unitPrice: money(i.unitPriceCents, r.currency) })),
    total: money(r.totalCents, r.currency),
    createTime: timestampFromDate(r.createdAt),
    updateTime: timestampFromDate(r.updatedAt),
  };
}
