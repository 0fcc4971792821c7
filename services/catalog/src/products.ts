// The product catalog and its stock, in catalog's own database.
import { type Connection, Schema } from "mongoose";
// Compiled into the service (npm run build bundles it), so the image needs no data directory.
import seedProducts from "../data/products.json" with { type: "json" };

export interface ProductRecord {
  _id: string; // the SKU
  name: string;
  description: string;
  priceCents: number; // integer minor units, never floats
  currency: string;
  stock: number; // available now, reservations already taken out
  categories: string[];
  imageUrl: string;
  rating: number;
  reviewCount: number;
  badges: string[];
  holds: string[]; // ids of the open reservations holding some of this stock: makes take/give idempotent
}

const productRecord = new Schema<ProductRecord>(
  {
    _id: String,
    name: { type: String, required: true },
    description: { type: String, default: "" },
    priceCents: { type: Number, required: true, min: 0 },
    currency: { type: String, default: "USD" },
    stock: { type: Number, required: true, min: 0 },
    categories: { type: [String], default: [], index: true },
    imageUrl: { type: String, default: "" },
    rating: { type: Number, default: 0 },
    reviewCount: { type: Number, default: 0 },
    badges: { type: [String], default: [] },
    holds: { type: [String], default: [] },
  },
  { versionKey: false, timestamps: true },
);

export interface SeedProduct {
  sku: string;
  name: string;
  description: string;
  priceCents: number;
  currency: string;
  stock: number;
  categories: string[];
  imageUrl: string;
  rating: number;
  reviewCount: number;
  badges: string[];
}

export type ProductStore = ReturnType<typeof productStore>;

export function productStore(db: Connection) {
  const Product = db.model<ProductRecord>("Product", productRecord);
  // The stock moves of every order go through the driver's collection (with the update time mongoose would
  // set): mongoose's cast of each filter and update costs more CPU than the command.
  const raw = db.collection<ProductRecord & { updatedAt: Date }>(Product.collection.collectionName);
  // A BSON regex is a C string: a NUL in the pattern cannot be sent (was INTERNAL), so it is written as \x00.
  const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("\0", "\\x00");

  return {
    get: (sku: string) => Product.findById(sku).lean<ProductRecord>(),
    // One SKU (most orders) as a plain _id filter: FerretDB v1 pushes that down to SQLite, while $in decodes every product.
    getMany: (skus: string[]) => Product.find({ _id: skus.length === 1 ? skus[0] : { $in: skus } }).lean<ProductRecord[]>(),

    /** One page ordered by SKU, starting after `after`. Asks for one extra to know whether there is more. */
    page: (limit: number, after?: string, category?: string) =>
      Product.find({ ...(after ? { _id: { $gt: after } } : {}), ...(category ? { categories: category } : {}) })
        .sort({ _id: 1 })
        .limit(limit + 1)
        .lean<ProductRecord[]>(),

    /** Products whose name, description or a category contains every word, case-insensitive. */
    search: (query: string, limit: number, after?: string) => {
      const words = query.toLowerCase().split(/\s+/).filter(Boolean).slice(0, 10);
      const all = words.map((w) => {
        const re = new RegExp(escapeRegExp(w), "i");
        return { $or: [{ name: re }, { description: re }, { categories: re }] };
      });
      return Product.find({ $and: [...all, ...(after ? [{ _id: { $gt: after } }] : [])] })
        .sort({ _id: 1 })
        .limit(limit + 1)
        .lean<ProductRecord[]>();
    },

    /**
     * Takes `qty` for reservation `holder` in one atomic update, only if that many are left and it was not taken
     * already; answers the product as it is after the take (its name and price go on the reservation), or
     * "short" / "missing". One document, one update: the database applies it atomically (devdb too), so no lock.
     */
    take: async (sku: string, qty: number, holder: string): Promise<{ taken: ProductRecord } | { short: number } | "missing"> => {
      const taken = await raw.findOneAndUpdate(
        { _id: sku, stock: { $gte: qty }, holds: { $ne: holder } },
        { $inc: { stock: -qty }, $push: { holds: holder }, $set: { updatedAt: new Date() } },
        { returnDocument: "after" },
      );
      if (taken) return { taken };
      const now = await Product.findById(sku).lean<ProductRecord>();
      if (!now) return "missing";
      return now.holds?.includes(holder) ? { taken: now } : { short: now.stock }; // taken by an earlier, interrupted call
    },

    /** Gives back what `holder` took; a no-op when it holds nothing here (never took, or gave back already). */
    give: async (sku: string, qty: number, holder: string) =>
      (await raw.updateOne({ _id: sku, holds: holder }, { $inc: { stock: qty }, $pull: { holds: holder }, $set: { updatedAt: new Date() } })).modifiedCount ===
      1,

    /**
     * The sale is final: `holder` stops holding, the stock stays taken. Filtered on _id alone (pulling a holder
     * that is not there changes nothing): FerretDB v1 pushes only a lone _id down to SQLite, and any other
     * filter field makes it decode every product to find this one.
     */
    settle: async (sku: string, holder: string) => (await raw.updateOne({ _id: sku }, { $pull: { holds: holder } })).modifiedCount === 1,

    /**
     * Inserts the seed products that are missing; existing ones are never written. Insert-only, because an
     * upsert that matches is a write: mongoose adds `$set: {updatedAt}` and FerretDB v1 writes the whole
     * document back, so a catalog starting up next to a serving one undid reservations made meanwhile.
     */
    seed: async (products: SeedProduct[]) => {
      const present = new Set((await Product.find({ _id: { $in: products.map((p) => p.sku) } }, { _id: 1 }).lean()).map((p) => p._id));
      let inserted = 0;
      for (const { sku, ...rest } of products) {
        if (present.has(sku)) continue;
        try {
          await Product.create({ _id: sku, ...rest, holds: [] });
          inserted++;
        } catch (err) {
          if ((err as { code?: number }).code !== 11000) throw err; // v1 and v2 seeding at once: the other one won
        }
      }
      return inserted;
    },

    /** Test and experiment hook: sets the stock of a product. */
    setStock: (sku: string, stock: number) => Product.updateOne({ _id: sku }, { $set: { stock } }),
  };
}

/** The seed products (services/catalog/data/products.json), a fresh copy per call. */
export async function loadSeed(): Promise<SeedProduct[]> {
  return structuredClone(seedProducts) as SeedProduct[];
}
