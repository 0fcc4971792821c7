// identity's users, in its own database: register one, check a password, look one up.
import { randomUUID } from "node:crypto";
import { type Connection, Schema } from "mongoose";
import { EmailTakenError, InvalidCredentialsError } from "./errors.js";
import { checkPasswordPolicy, dummyHash, hashPassword, verifyPassword } from "./passwords.js";

export interface UserRecord {
  _id: string; // the user id: the `sub` of the user's tokens
  email: string; // trimmed and lower-cased, so the unique index is case-insensitive
  displayName: string;
  passwordHash: string; // scrypt; the password itself is never stored
  createdAt: Date;
  updatedAt: Date;
}

/** A user as it may leave the store: without the password hash. */
export type PublicUser = Omit<UserRecord, "passwordHash">;

const userRecord = new Schema<UserRecord>(
  {
    _id: { type: String, default: () => randomUUID() },
    email: { type: String, required: true, unique: true },
    displayName: { type: String, default: "" },
    passwordHash: { type: String, required: true },
  },
  { versionKey: false, timestamps: true },
);

const DUPLICATE_KEY = 11000;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export type UserStore = Awaited<ReturnType<typeof userStore>>;

export async function userStore(db: Connection, opts: { hashLn?: number } = {}) {
  const User = db.model<UserRecord>("User", userRecord);
  // The unique index is what turns away a second registration of an e-mail (FerretDB's conditional updates
  // are not atomic under concurrency; its unique inserts are), so it must exist before the first Register.
  await User.init();
  void dummyHash(opts.hashLn); // computed now, so the first login for an unknown e-mail is not slower than the rest

  return {
    /** Creates a user; EmailTakenError when the e-mail is registered, INVALID_ARGUMENT when the password is weak. */
    async register(email: string, password: string, displayName: string): Promise<PublicUser> {
      checkPasswordPolicy(password);
      const normalized = normalizeEmail(email);
      if (await User.exists({ email: normalized })) throw new EmailTakenError(normalized); // saves a hash; the index decides races
      const passwordHash = await hashPassword(password, opts.hashLn);
      try {
        const { passwordHash: _, ...user } = (await User.create({ email: normalized, displayName: displayName.trim(), passwordHash })).toObject();
        return user;
      } catch (err) {
        if ((err as { code?: number }).code === DUPLICATE_KEY) throw new EmailTakenError(normalized);
        throw err;
      }
    },

    /** The user with this e-mail and password; InvalidCredentialsError otherwise, equally slow either way. */
    async login(email: string, password: string): Promise<PublicUser> {
      const found = await User.findOne({ email: normalizeEmail(email) }).lean<UserRecord>();
      if (!found) {
        await verifyPassword(password, await dummyHash(opts.hashLn));
        throw new InvalidCredentialsError();
      }
      if (!(await verifyPassword(password, found.passwordHash))) throw new InvalidCredentialsError();
      const { passwordHash: _, ...user } = found;
      return user;
    },

    get: (id: string) => User.findById(id).select("-passwordHash").lean<PublicUser>(),
  };
}
