import { SignetError, isSignetError } from '../../errors.js';
import { PASSWORD_AMR } from '../../core/amr.js';
import type { ClientContext } from '../../core/sessions.js';
import { decodeUtf8, hasBody, isFormContentType, isJsonContentType, readBody } from '../body.js';
import type { AppContext } from '../context.js';
import { json } from '../context.js';
import { toSignetError } from '../errors.js';
import { limitClient } from '../limit.js';
import { route } from '../route.js';
import { TokenRequest, TokenResponse } from '../schemas.js';
import { currentPassword } from '../schemas.js';

type OAuthErrorCode = 'invalid_request' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_client' | 'temporarily_unavailable' | 'server_error';

/** An RFC 6749 §5.2 error: this route's only error shape. */
class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = 400,
    readonly retryAfter?: number,
  ) {
    super(description);
  }
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * POST /auth/token: the password and refresh_token grants for first-party
 * clients. RFC 9700 §2.4 discourages the password grant; it stays for clients
 * that hold the user's password anyway, shares every sign-in defence (it goes
 * through the same AccountService.verifyLogin) and never issues tokens to a
 * user with two-factor authentication.
 */
export const tokenRoute = route({
  method: 'POST',
  path: '/auth/token',
  tag: 'OAuth 2.0',
  summary: 'OAuth 2.0 token endpoint (RFC 6749): password and refresh_token grants',
  auth: 'none',
  body: TokenRequest,
  bodyMode: 'custom',
  bodyContentTypes: ['application/x-www-form-urlencoded', 'application/json'],
  success: { status: 200, description: 'Tokens issued (RFC 6749 §5.1)', schema: TokenResponse },
  handle: async (c) => {
    try {
      return await grant(c);
    } catch (thrown) {
      const error = thrown instanceof OAuthError ? thrown : toOAuthError(thrown, c);
      const headers: Record<string, string> = { ...NO_STORE };
      if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter);
      if (error.error === 'invalid_client') headers['www-authenticate'] = 'Basic realm="signet"';
      return json({ error: error.error, error_description: oauthText(error.description) }, error.status, headers);
    }
  },
});

async function grant(c: AppContext): Promise<Response> {
  const params = await readParams(c);
  // Signet has no confidential clients: an attempt to authenticate one cannot succeed (RFC 6749 §5.2).
  if (c.req.header('authorization') !== undefined || params.has('client_secret')) {
    throw new OAuthError('invalid_client', 'client authentication is not supported; public clients send client_id only', 401);
  }
  const clientId = optional(params, 'client_id');
  if (clientId !== undefined && !CLIENT_ID.test(clientId)) throw new OAuthError('invalid_request', 'client_id is malformed');
  const context: ClientContext = { ...c.var.client, clientId };
  const grantType = required(params, 'grant_type');
  const { accounts, sessions } = c.var.services;

  let issued;
  if (grantType === 'password') {
    const identifier = required(params, 'username').trim();
    const parsed = currentPassword.safeParse(required(params, 'password'));
    if (!parsed.success) throw new OAuthError('invalid_request', 'password is malformed');
    const login = identifier.includes('@') ? { email: identifier, password: parsed.data } : { username: identifier, password: parsed.data };
    const { user, secondFactors } = await accounts.verifyLogin(login, context);
    // RFC 9700 §2.4: the password grant never bypasses a second factor (TOTP or a passkey).
    if (secondFactors.length > 0) throw new OAuthError('invalid_grant', 'two-factor authentication required');
    issued = await sessions.start(user, context, { amr: PASSWORD_AMR });
  } else if (grantType === 'refresh_token') {
    await limitClient(c, 'refresh.ip');
    issued = await sessions.refresh(required(params, 'refresh_token'), context);
  } else {
    throw new OAuthError('unsupported_grant_type', `grant_type ${grantType.slice(0, 40)} is not supported`);
  }
  const body: Record<string, unknown> = {
    access_token: issued.accessToken,
    token_type: 'Bearer',
    expires_in: issued.expiresIn,
    refresh_token: issued.refreshToken,
  };
  // RFC 6749 §5.1: scope is required in the answer when it differs from the request; Signet grants none.
  if (params.has('scope')) body.scope = '';
  return json(body, 200, NO_STORE);
}

async function readParams(c: AppContext): Promise<URLSearchParams> {
  const request = c.req.raw;
  const type = request.headers.get('content-type');
  const form = isFormContentType(type);
  if (hasBody(request) && !form && !isJsonContentType(type))
    throw new SignetError('unsupported_media_type', { message: 'use application/x-www-form-urlencoded or application/json' });
  const text = decodeUtf8(await readBody(request, c.var.services.config.bodyLimit));
  if (form || text.trim() === '') {
    const params = new URLSearchParams(text);
    // RFC 6749 §3.2: parameters must not repeat.
    const seen = new Set<string>();
    for (const key of params.keys()) {
      if (seen.has(key)) throw new OAuthError('invalid_request', `parameter ${key.slice(0, 40)} is repeated`);
      seen.add(key);
    }
    return params;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new OAuthError('invalid_request', 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new OAuthError('invalid_request', 'the body must be a JSON object');
  const params = new URLSearchParams();
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new OAuthError('invalid_request', `parameter ${key.slice(0, 40)} must be a string`);
    params.set(key, v);
  }
  return params;
}

function optional(params: URLSearchParams, name: string): string | undefined {
  const value = params.get(name);
  return value === null || value === '' ? undefined : value;
}

function required(params: URLSearchParams, name: string): string {
  const value = optional(params, name);
  if (value === undefined) throw new OAuthError('invalid_request', `${name} is required`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name === 'password' ? '' : value)) throw new OAuthError('invalid_request', `${name} contains control characters`);
  return value;
}

function toOAuthError(thrown: unknown, c: AppContext): OAuthError {
  if (isSignetError(thrown, 'invalid_credentials')) return new OAuthError('invalid_grant', 'invalid username or password');
  if (isSignetError(thrown, 'invalid_refresh_token')) return new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
  if (isSignetError(thrown, 'rate_limited')) return new OAuthError('invalid_request', 'too many requests; retry later', 429, thrown.retryAfter);
  if (isSignetError(thrown, 'email_not_verified')) return new OAuthError('invalid_grant', 'the email address has not been verified');
  const error = toSignetError(thrown);
  if (error.code === 'unavailable') return new OAuthError('temporarily_unavailable', 'try again later', 503, error.retryAfter);
  if (error.status >= 500) {
    c.var.services.logger.error(
      { reqId: c.var.requestId, err: thrown instanceof Error ? { message: thrown.message, stack: thrown.stack } : String(thrown) },
      'token endpoint failed',
    );
    return new OAuthError('server_error', `internal error (request ${c.var.requestId})`, 500);
  }
  // Transport-level refusals keep their status (413, 415, 429) with error=invalid_request.
  return new OAuthError('invalid_request', error.message, error.status, error.retryAfter);
}

/**
 * RFC 6749 §5.2: error_description holds only %x20-21 / %x23-5B / %x5D-7E (no
 * quote, no backslash, nothing outside printable ASCII); strict clients refuse
 * anything else. Whatever a message echoes is cut down to that set here.
 */
export function oauthText(text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
}
