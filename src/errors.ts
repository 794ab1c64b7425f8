/**
 * Every error a client can see has a stable `code` from this catalog. The HTTP
 * layer maps codes to statuses. What a request did wrong, core throws as a
 * `SignetError`; an operator's mistake (a setting, a secret) is a `ConfigError`
 * (a `TypeError`); anything else is a bug or an outage, which the HTTP layer
 * turns into `500` or `503`. Compare errors by `code`, never by message.
 */
export const ERROR_CATALOG = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON' },
  validation_failed: { status: 400, message: 'The request is invalid' },
  weak_password: { status: 400, message: 'This password is too common; choose another one' },
  /** A passkey ceremony's challenge that is unknown, already used, expired, or issued for another ceremony or user. */
  challenge_expired: { status: 400, message: 'The passkey request has expired or was already used; start again' },
  /** A mailed token (verification, reset) that is unknown, used, expired or of another kind; clients see `invalid_token`. */
  invalid_account_token: { status: 400, message: 'The link is invalid or has expired', publicCode: 'invalid_token' },
  invalid_token: { status: 401, message: 'The access token is invalid' },
  missing_token: { status: 401, message: 'An access token is required' },
  invalid_code: { status: 401, message: 'The code is invalid' },
  invalid_mfa_token: { status: 401, message: 'The sign-in attempt has expired; sign in again' },
  invalid_credentials: { status: 401, message: 'Invalid credentials' },
  invalid_refresh_token: { status: 401, message: 'The refresh token is invalid' },
  invalid_passkey: { status: 401, message: 'The passkey could not be verified' },
  /** The response names a credential Signet does not have (removed, or never registered): a browser may forget it. */
  unknown_passkey: { status: 401, message: 'This passkey is not registered here; it may have been removed' },
  /** A sign-in with another identity provider that could not be completed (state, issuer, nonce, token or profile refused). */
  federation_failed: { status: 400, message: 'Signing in with the identity provider failed; start again' },
  email_not_verified: { status: 403, message: 'The email address has not been verified' },
  csrf_failed: { status: 403, message: 'Cross-site request refused: send the CSRF token from the same site' },
  reauthentication_required: { status: 403, message: 'Confirm your password, or sign in again, to change your passkeys' },
  not_found: { status: 404, message: 'Not found' },
  session_not_found: { status: 404, message: 'Session not found' },
  passkey_not_found: { status: 404, message: 'Passkey not found' },
  identity_not_found: { status: 404, message: 'Connected account not found' },
  email_signin_disabled: { status: 404, message: 'Sign-in by email is not enabled on this server (see EMAIL_SIGNIN)' },
  passkeys_disabled: { status: 404, message: 'Passkeys are not set up on this server (see WEBAUTHN_RP_ID)' },
  method_not_allowed: { status: 405, message: 'Method not allowed' },
  email_taken: { status: 409, message: 'An account with this email already exists' },
  username_taken: { status: 409, message: 'This username is taken' },
  /** The provider's address belongs to an account it may not link to on its own (docs/federation.md, linking rules). */
  federation_link_required: {
    status: 409,
    message: 'An account with this email already exists: sign in to it, then connect this provider from the account page',
  },
  identity_taken: { status: 409, message: 'This identity is already connected to another account' },
  last_sign_in_method: { status: 409, message: "This is the account's last way to sign in: set a password or add a passkey first" },
  mfa_already_enabled: { status: 409, message: 'Two-factor authentication is already enabled' },
  too_many_passkeys: { status: 409, message: 'This account has as many passkeys as allowed; remove one first' },
  payload_too_large: { status: 413, message: 'The request body is too large' },
  unsupported_media_type: { status: 415, message: 'The request body must be application/json' },
  rate_limited: { status: 429, message: 'Too many requests; retry later' },
  internal_error: { status: 500, message: 'Internal error' },
  unavailable: { status: 503, message: 'The service is temporarily unavailable; retry later' },
} as const satisfies Record<string, { status: number; message: string; publicCode?: string }>;

/** The `code` a client sees for an internal code (they differ only where the contract reuses a code with another status). */
export function publicCode(code: ErrorCode): string {
  const entry = ERROR_CATALOG[code];
  return 'publicCode' in entry ? entry.publicCode : code;
}

export type ErrorCode = keyof typeof ERROR_CATALOG;

export interface FieldError {
  field: string;
  message: string;
}

export interface SignetErrorOptions {
  /** Shown to the client in place of the catalog message. Never put a secret here. */
  message?: string;
  details?: FieldError[];
  /** Seconds, for `Retry-After`. */
  retryAfter?: number;
  /** The limit that refused the request, for the RateLimit-* headers. */
  rateLimit?: { limit: number; remaining: number; resetSeconds: number };
  cause?: unknown;
}

export class SignetError extends Error {
  override readonly name = 'SignetError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: FieldError[] | undefined;
  readonly retryAfter: number | undefined;
  readonly rateLimit: SignetErrorOptions['rateLimit'];

  constructor(code: ErrorCode, options: SignetErrorOptions = {}) {
    super(options.message ?? ERROR_CATALOG[code].message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
    this.rateLimit = options.rateLimit;
  }
}

/** The store could not be reached. Mapped to `503 unavailable`; the store recovers on its own. */
export class StoreUnavailableError extends SignetError {
  constructor(cause: unknown) {
    super('unavailable', { retryAfter: 5, cause });
  }
}

export function isSignetError(error: unknown, code?: ErrorCode): error is SignetError {
  return error instanceof SignetError && (code === undefined || error.code === code);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'SQLITE_BUSY',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_CANTOPEN',
]);

/**
 * True when an error means "the store cannot be reached right now" rather than
 * a bug: connection failures and PostgreSQL classes 08 (connection), 53
 * (resources) and 57 (operator intervention).
 */
export function isStoreUnavailable(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || /^(08|53|57)/.test(code))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connect ETIMEDOUT|Client has encountered a connection error|Cannot use a pool after calling end/i.test(
    error.message,
  );
}
