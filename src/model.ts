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
  /**
   * How the sign-in that started the session was proven (RFC 8176 values: `pwd`,
   * `otp`, `hwk`, `swk`, `user`, `mfa`); empty for sessions older than this record.
   */
  amr: string[];
}

/** A registered passkey (WebAuthn public-key credential), as the account owner sees it. */
export interface Passkey {
  /** The credential ID, base64url. */
  id: string;
  userId: string;
  /** The owner's label, if they gave one. */
  name: string | null;
  /** `multiDevice`: backup eligible, may be synced to other devices; `singleDevice`: bound to one authenticator. */
  deviceType: 'singleDevice' | 'multiDevice';
  /** Whether the authenticator last said the credential is backed up (synced). */
  backedUp: boolean;
  /** Transport hints the browser reported (`internal`, `hybrid`, `usb`, `nfc`, `ble`, …). */
  transports: string[];
  /** The authenticator model's AAGUID (all zeros when the authenticator does not say). */
  aaguid: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** A passkey with what only core's verification reads. */
export interface PasskeyRecord extends Passkey {
  /** COSE public key, base64url. */
  publicKey: string;
  /** The signature counter last seen. */
  counter: number;
  /** Whether the account's address was verified when the passkey was registered. */
  emailProven: boolean;
}
