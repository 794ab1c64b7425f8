/**
 * The domain objects core hands to the layers above (HTTP, CLI, admin API):
 * camelCase, booleans, `Date`s. The store maps its rows to these, once, and
 * nothing above it ever sees a row.
 */

/** An account. Never carries a secret: see `UserRecord` for what only core may read. */
export interface User {
  id: string;
  email: string;
  emailVerified: boolean;
  username: string | null;
  name: string | null;
  mfaEnabled: boolean;
  /** Set while an operator has disabled the account: it cannot sign in and its sessions stop. */
  disabledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A user with the password hash, which only core's password checks read. */
export interface UserRecord extends User {
  passwordHash: string;
}

/** A signed-in device: what the access and refresh tokens of one sign-in belong to. */
export interface Session {
  id: string;
  userId: string;
  createdAt: Date;
  /** The last sign-in or refresh (not every request). */
  lastUsedAt: Date;
  /** The absolute end; rotation never moves it. */
  expiresAt: Date;
  endedAt: Date | null;
  endReason: string | null;
  userAgent: string | null;
  ip: string | null;
  /** The OAuth client the session was started for, if any. */
  clientId: string | null;
}
