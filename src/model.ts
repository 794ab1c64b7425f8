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
  /** Operator-set role names, carried in access tokens as `roles` (see core/admin/claims.ts). */
  roles: string[];
  /** Operator-set app data, carried in access tokens under the app claim (see core/admin/claims.ts). */
  appMetadata: Record<string, unknown>;
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
  /**
   * A client's grant (OpenID Connect) is a session of its own under the browser
   * session it was authorized in: ending that one ends it, unless `offline`.
   */
  parentSessionId: string | null;
  /** Scopes granted to the client, space-separated (null: none). */
  scope: string | null;
  /** The `aud` of its access tokens (null: the configured JWT_AUDIENCE). */
  audience: string | null;
  /** Granted with offline_access: it outlives its browser session. */
  offline: boolean;
  /** When the user authenticated for it (the browser session's sign-in for a client grant). */
  authTime: Date;
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

/** A session that just ended, as told to whoever reacts to it (back-channel logout, caches). */
export interface EndedSession {
  id: string;
  userId: string;
  clientId: string | null;
  parentSessionId: string | null;
}

/** A relying party the operator registered (OpenID Connect): what the admin tools and pages show. */
export interface OAuthClient {
  id: string;
  name: string;
  /** `none`: a public client (PKCE, no secret); otherwise how the confidential client sends its secret. */
  authMethod: 'none' | 'client_secret_basic' | 'client_secret_post';
  /** Exact redirect URIs (compared as strings, RFC 9700 §4.1.3). */
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** Where back-channel logout tokens are posted, if anywhere. */
  backchannelLogoutUri: string | null;
  /** Trusted by the operator: no consent screen, may use the password grant if allowed. */
  firstParty: boolean;
  /** Scopes it may ask for. */
  scopes: string[];
  grantTypes: string[];
  /** Resource indicators (RFC 8707) it may ask access tokens for; each becomes an `aud`. */
  resources: string[];
  /** Shorter-lived access tokens than ACCESS_TOKEN_TTL, if set. */
  accessTokenTtl: number | null;
  /** How long an offline grant lives at most, if not SESSION_ABSOLUTE_TTL. */
  refreshTokenTtl: number | null;
  createdAt: Date;
  updatedAt: Date;
  disabledAt: Date | null;
}

/** A client with what only core's authentication reads. */
export interface OAuthClientRecord extends OAuthClient {
  /** SHA-256 of the secret (base64url); null for public clients. */
  secretHash: string | null;
}
