// Orders and where each one's saga stands, in orders' own database. Every step is written before the
// remote call it leads to, so after a crash the recovery loop knows what may have happened.
import { createHash } from "node:crypto";
import { type Connection, Schema } from "mongoose";

export type OrderStateName = "PENDING" | "CONFIRMED" | "FAILED";
/** Saga progress: the step being attempted (…ING) or the last one that succeeded (…ED). */
export type SagaStep = "CREATED" | "RESERVING" | "RESERVED" | "CHARGING" | "CHARGED" | "COMMITTING" | "COMPENSATING" | "DONE";
export type FailureReasonName = "OUT_OF_STOCK" | "PRODUCT_NOT_FOUND" | "PAYMENT_DECLINED" | "INSUFFICIENT_FUNDS" | "DEPENDENCY_UNAVAILABLE" | "ABANDONED";

export interface OrderLine {
  sku: string;
  name: string;
  quantity: number;
  unitPriceCents: number;
}

export interface OrderRecord {
  _id: string;
  userId: string;
  idempotencyKey: string;
  requestHash: string;
  state: OrderStateName;
  step: SagaStep;
  items: OrderLine[];
  totalCents: number;
  currency: string;
  paymentId: string;
  cardLast4: string;
  failureReason?: FailureReasonName;
  failureMessage: string;
  /** FAILED orders: the sweep for charges that landed after compensation has run (see recovery.ts). */
  lateChargesChecked?: boolean;
  /**
   * While the PlaceOrder that created the order runs its saga: until when that run counts as alive (it renews
   * this while it works, and clears it when it ends with the order still PENDING). Repeats and recovery leave
   * the order alone until then. The order's insert is that run's claim, so it takes no lock.
   */
  leaseUntil?: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const orderRecord = new Schema<OrderRecord>(
  {
    _id: String,
    userId: { type: String, required: true },
    idempotencyKey: { type: String, required: true },
    requestHash: { type: String, required: true },
    state: { type: String, required: true, enum: ["PENDING", "CONFIRMED", "FAILED"] },
    step: { type: String, required: true },
    items: { type: [{ _id: false, sku: String, name: String, quantity: Number, unitPriceCents: Number }], default: [] },
    totalCents: { type: Number, default: 0 },
    currency: { type: String, default: "USD" },
    paymentId: { type: String, default: "" },
    cardLast4: { type: String, default: "" },
    failureReason: { type: String },
    failureMessage: { type: String, default: "" },
    lateChargesChecked: { type: Boolean },
    leaseUntil: { type: Date },
  },
  { versionKey: false, timestamps: true },
);
// One index per query shape, with its sort: ListOrders (a user's orders, newest first) and recovery (PENDING
// orders untouched the longest). MongoDB serves both from these; FerretDB v1 (devdb) pushes only a lone _id
// filter down to SQLite and scans for anything else whatever the indexes (its explain says SCAN).
orderRecord.index({ userId: 1, createdAt: -1, _id: -1 });
orderRecord.index({ state: 1, updatedAt: 1 });

/** The order id follows from the caller and their idempotency key, so a repeat cannot create a second order. */
export function orderIdFor(userId: string, idempotencyKey: string): string {
  return `ord_${createHash("sha256").update(`${userId}\n${idempotencyKey}`).digest("hex").slice(0, 24)}`;
}

export function requestHashOf(items: { sku: string; quantity: number }[], cardLast4: string): string {
  const canonical = [...items].sort((a, b) => a.sku.localeCompare(b.sku)).map((i) => `${i.sku}:${i.quantity}`);
  return createHash("sha256")
    .update(`${canonical.join(",")}|${cardLast4}`)
    .digest("hex")
    .slice(0, 32);
}

export type OrderStore = ReturnType<typeof orderStore>;

type OrderFields = Partial<Omit<OrderRecord, "_id" | "createdAt" | "updatedAt">>;

/** The fields that are set: an undefined value would be stored as null. */
const defined = (fields: OrderFields) => Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));

export function orderStore(db: Connection) {
  const Order = db.model<OrderRecord>("Order", orderRecord);
  // The saga's writes go through the driver's collection: a mongoose document per insert (build, cast,
  // validate, save) and a cast of every $set cost more CPU than the database command itself, and these run
  // for every order. They write complete, typed records, with the timestamps mongoose would add.
  const raw = db.collection<OrderRecord>(Order.collection.collectionName);

  return {
    get: (id: string) => Order.findById(id).lean<OrderRecord>(),

    /**
     * Creates the PENDING order, leased to the caller's run for `leaseMs` (none: no run claims it), and returns it;
     * "exists" when one was already made with this id (a repeat).
     */
    open: async (
      init: Pick<OrderRecord, "_id" | "userId" | "idempotencyKey" | "requestHash" | "items" | "cardLast4">,
      leaseMs = 0,
    ): Promise<OrderRecord | "exists"> => {
      const now = new Date();
      const record: OrderRecord = {
        ...init,
        state: "PENDING",
        step: "CREATED",
        totalCents: 0,
        currency: "USD",
        paymentId: "",
        failureMessage: "",
        ...(leaseMs > 0 ? { leaseUntil: new Date(now.getTime() + leaseMs) } : {}),
        createdAt: now,
        updatedAt: now,
      };
      try {
        await raw.insertOne(record);
        return record;
      } catch (err) {
        if ((err as { code?: number }).code === 11000) return "exists";
        throw err;
      }
    },

    /** Records saga progress (one run per order at a time: see order-service.ts) and returns the order as stored. */
    update: async (id: string, fields: OrderFields) =>
      (await raw.findOneAndUpdate({ _id: id }, { $set: { ...defined(fields), updatedAt: new Date() } }, { returnDocument: "after" })) as OrderRecord,

    /** Extends the running saga's lease on the order; a filter of the lone _id, so devdb finds it by index. */
    renewLease: (id: string, until: Date) => raw.updateOne({ _id: id }, { $set: { leaseUntil: until, updatedAt: new Date() } }),

    /** The user's orders, newest first, after the (createdAt, id) position of the previous page. */
    page: (userId: string, limit: number, after?: { t: number; id: string }) =>
      Order.find({
        userId,
        ...(after ? { $or: [{ createdAt: { $lt: new Date(after.t) } }, { createdAt: new Date(after.t), _id: { $lt: after.id } }] } : {}),
      })
        .sort({ createdAt: -1, _id: -1 })
        .limit(limit + 1)
        .lean<OrderRecord[]>(),

    /** FAILED orders finished before `before` whose payments have not been checked again since. */
    failedUnchecked: (before: Date, limit = 50) =>
      Order.find({ state: "FAILED", lateChargesChecked: { $ne: true }, updatedAt: { $lt: before } })
        .sort({ updatedAt: 1 })
        .limit(limit)
        .lean<OrderRecord[]>(),

    /** PENDING orders untouched since `before`: interrupted sagas for the recovery loop. */
    stuck: (before: Date, limit = 50) =>
      Order.find({ state: "PENDING", updatedAt: { $lt: before } })
        .sort({ updatedAt: 1 })
        .limit(limit)
        .lean<OrderRecord[]>(),
  };
}
