/**
 * Table shapes as both databases return them. Times are epoch milliseconds
 * (BIGINT) and flags are 0/1 integers, so SQLite and PostgreSQL read alike.
 */
export interface UserRow {
  id: string;
  email: string;
  /** Lower-cased email: the unique key that makes matching case-insensitive. */
  email_key: string;
  username: string | null;
  username_key: string | null;
  name: string | null;
  password_hash: string;
  email_verified: number;
  mfa_enabled: number;
  disabled_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface SessionRow {
  id: string;
  user_id: string;
  created_at: number;
  last_used_at: number;
  /** Absolute end; rotation never moves it. */
  expires_at: number;
  ended_at: number | null;
  end_reason: string | null;
  user_agent: string | null;
  ip: string | null;
  client_id: string | null;
  /** A client grant (OpenID Connect): the browser session it was authorized in. */
  parent_session_id: string | null;
  /** Space-separated scopes granted (client grants). */
  scope: string | null;
  /** The access tokens' `aud` (client grants; null: the configured audience). */
  audience: string | null;
  /** 1 when granted with offline_access: it outlives its browser session. */
  offline: number;
  /** When the user signed in for this grant (client grants; null: created_at). */
  auth_time: number | null;
  /** RFC 8176 authentication methods of the sign-in, space-separated; null before migration 007. */
  amr: string | null;
}

export interface RefreshTokenRow {
  id: string;
  session_id: string;
  token_hash: string;
  parent_id: string | null;
  created_at: number;
  expires_at: number;
  rotated_at: number | null;
  /** The successor's raw value sealed under a key derived from this token: see core/sessions.ts. */
  successor_sealed: string | null;
}

export interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk: string;
  created_at: number;
  /**
   * When the key starts signing. Every other state is derived from this: a key
   * whose time has not come is published but idle ("next"); the latest key
   * whose time has come signs; an older one verifies until its successor has
   * been signing for longer than an access token lives, then it is dropped.
   */
  activates_at: number;
}

export type AccountTokenKind = 'email_verify' | 'password_reset';

export interface AccountTokenRow {
  id: string;
  user_id: string;
  kind: AccountTokenKind;
  token_hash: string;
  /** The address the token was mailed to: a verification token dies if the email changes. */
  email: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface MailRow {
  id: string;
  template: string;
  recipient: string;
  subject: string;
  /** Bodies are cleared once sent or given up on: they may hold single-use links. */
  text_body: string | null;
  html_body: string | null;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  locked_until: number | null;
  sent_at: number | null;
  failed_at: number | null;
  last_error: string | null;
}

export interface TotpRow {
  user_id: string;
  /** Base32 secret, sealed at rest (core/secrets.ts). */
  secret: string;
  created_at: number;
  /** Null while setup awaits its first valid code. */
  enabled_at: number | null;
  last_step: number;
  /** 1 if the account's email was verified when TOTP was enabled; a password reset removes TOTP set up without it. */
  email_proven: number;
}

export interface RecoveryCodeRow {
  id: string;
  user_id: string;
  code_hash: string;
  used_at: number | null;
}

export interface MfaChallengeRow {
  id: string;
  user_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  /** Codes checked so far, counted before each check (at most 5). */
  attempts: number;
  used_at: number | null;
  client_id: string | null;
  /** The sign-in's first factor (RFC 8176 values, space-separated); null: a password (before migration 009, always). */
  first_amr?: string | null;
}

export interface OAuthClientRow {
  id: string;
  name: string;
  auth_method: string;
  secret_hash: string | null;
  /** JSON arrays of strings. */
  redirect_uris: string;
  post_logout_redirect_uris: string;
  backchannel_logout_uri: string | null;
  first_party: number;
  scopes: string;
  grant_types: string;
  resources: string;
  access_token_ttl: number | null;
  refresh_token_ttl: number | null;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
}

export interface OAuthRequestRow {
  id: string;
  client_id: string;
  /** JSON of the validated authorization request. */
  params: string;
  created_at: number;
  expires_at: number;
}

export interface WebauthnCredentialRow {
  /** The credential ID, base64url. */
  id: string;
  user_id: string;
  /** COSE public key, base64url. */
  public_key: string;
  counter: number;
  /** JSON array of transport hints. */
  transports: string;
  device_type: 'singleDevice' | 'multiDevice';
  backed_up: number;
  aaguid: string;
  name: string | null;
  email_proven: number;
  created_at: number;
  last_used_at: number | null;
}

export interface WebauthnUserRow {
  user_id: string;
  /** The WebAuthn user handle: 32 random bytes, base64url. */
  handle: string;
  created_at: number;
}

export type WebauthnPurpose = 'register' | 'authenticate' | 'second_factor';

export interface WebauthnChallengeRow {
  /** SHA-256 of the challenge (base64url): the challenge itself is never stored. */
  challenge_hash: string;
  purpose: WebauthnPurpose;
  user_id: string | null;
  mfa_challenge_id: string | null;
  created_at: number;
  expires_at: number;
}

export interface OAuthCodeRow {
  code_hash: string;
  client_id: string;
  user_id: string;
  parent_session_id: string;
  redirect_uri: string;
  scope: string;
  nonce: string | null;
  code_challenge: string | null;
  resource: string | null;
  auth_time: number;
  /** JSON array (RFC 8176 values). */
  amr: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  issued_session_id: string | null;
}

export interface OAuthConsentRow {
  user_id: string;
  client_id: string;
  scope: string;
  created_at: number;
  updated_at: number;
}

export interface Database {
  users: UserRow;
  sessions: SessionRow;
  oauth_clients: OAuthClientRow;
  oauth_requests: OAuthRequestRow;
  oauth_codes: OAuthCodeRow;
  oauth_consents: OAuthConsentRow;
  refresh_tokens: RefreshTokenRow;
  signing_keys: SigningKeyRow;
  account_tokens: AccountTokenRow;
  mail_outbox: MailRow;
  mfa_totp: TotpRow;
  mfa_recovery_codes: RecoveryCodeRow;
  mfa_challenges: MfaChallengeRow;
  webauthn_credentials: WebauthnCredentialRow;
  webauthn_users: WebauthnUserRow;
  webauthn_challenges: WebauthnChallengeRow;
  federated_identities: FederatedIdentityRow;
  federation_states: FederationStateRow;
  email_signin_codes: EmailSigninCodeRow;
  email_signin_budgets: EmailSigninBudgetRow;
}

export interface FederatedIdentityRow {
  id: string;
  provider: string;
  subject: string;
  user_id: string;
  email: string | null;
  created_at: number;
  last_used_at: number | null;
}

export type FederationPurpose = 'signin' | 'link';

export interface FederationStateRow {
  state_hash: string;
  provider: string;
  binding_hash: string;
  /** The PKCE verifier and nonce, sealed. */
  secrets: string;
  purpose: FederationPurpose;
  user_id: string | null;
  return_to: string | null;
  created_at: number;
  expires_at: number;
}

export interface EmailSigninCodeRow {
  id: string;
  user_id: string;
  code_hash: string | null;
  link_hash: string | null;
  attempts: number;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
}

export interface EmailSigninBudgetRow {
  user_id: string;
  window_started_at: number;
  attempts: number;
}
