import { SignetError, isSignetError } from '../../errors.js';
import { OAuthError, oauthText } from '../../core/oidc/errors.js';
import { PASSWORD_AMR } from '../../core/amr.js';
import { decodeUtf8, hasBody, isFormContentType, isJsonContentType, readBody } from '../body.js';
import type { AppContext } from '../context.js';
import { json } from '../context.js';
import { toSignetError } from '../errors.js';
import { limitClient } from '../limit.js';
import { route } from '../route.js';
import { TokenRequest, TokenResponse } from '../schemas.js';
import { currentPassword } from '../schemas.js';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * POST /auth/token. For registered clients, the authorization code grant
 * (OpenID Connect) and their refresh tokens, each client authenticated the
 * one way it was registered for (RFC 6749 §2.3). For first-party clients, the
 * password and refresh_token grants: RFC 9700 §2.4 discourages the password
 * grant; it stays for clients that hold the user's password anyway, shares
 * every sign-in defence (it goes through the same AccountService.verifyLogin)
 * and never issues tokens to a user with two-factor authentication.
 */
export const tokenRoute = route({
  method: 'POST',
  path: '/auth/token',
  tag: 'OAuth 2.0',
  summary: 'OAuth 2.0 token endpoint (RFC 6749): authorization_code, refresh_token and password grants',
  auth: 'none',
  body: TokenRequest,
  bodyMode: 'custom',
  bodyContentTypes: ['application/x-www-form-urlencoded', 'application/json'],
  success: { status: 200, description: 'Tokens issued (RFC 6749 §5.1; with an ID token for the authorization code grant)', schema: TokenResponse },
  handle: async (c) => {
    try {
      return await grant(c);
    } catch (thrown) {
      const error = thrown instanceof OAuthError ? thrown : toOAuthError(thrown, c);
      const headers: Record<string, string> = { ...NO_STORE };
      if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter);
      // RFC 6749 §5.2: a failed client authentication is answered with the Basic challenge.
      if (error.error === 'invalid_client') headers['www-authenticate'] = 'Basic realm="signet"';
      return json({ error: error.error, error_description: oauthText(error.description) }, error.status, headers);
    }
  },
});

async function grant(c: AppContext): Promise<Response> {
  const params = await readParams(c);
  const grantType = required(params, 'grant_type');
  const { accounts, sessions, oidc } = c.var.services;
  const basic = basicCredentials(c.req.header('authorization'));
  const bodySecret = optional(params, 'client_secret');
  const client = await oidc.clients.authenticate(
    { basic, bodyId: optional(params, 'client_id'), bodySecret },
    // Before clients were registered, client_id was a free label: on the first-party grants an
    // unregistered one still means Signet's own client (tokens then say client_id "signet").
    { unregisteredIsFirstParty: grantType !== 'authorization_code' && basic === undefined && bodySecret === undefined },
  );

  if (grantType === 'authorization_code') {
    if (!client) throw new OAuthError('invalid_request', 'client_id is required');
    const tokens = await oidc.grants.exchangeCode(
      client,
      { code: required(params, 'code'), redirectUri: optional(params, 'redirect_uri'), codeVerifier: optional(params, 'code_verifier') },
      c.var.client,
    );
    return json(tokens, 200, NO_STORE);
  }
  let issued;
  if (grantType === 'password') {
    const binding = oidc.grants.assertPasswordGrant(client);
    const identifier = required(params, 'username').trim();
    const parsed = currentPassword.safeParse(required(params, 'password'));
    if (!parsed.success) throw new OAuthError('invalid_request', 'password is malformed');
    const login = identifier.includes('@') ? { email: identifier, password: parsed.data } : { username: identifier, password: parsed.data };
    const { user, secondFactors } = await accounts.verifyLogin(login, c.var.client);
    // RFC 9700 §2.4: the password grant never bypasses a second factor (TOTP or a passkey).
    if (secondFactors.length > 0) throw new OAuthError('invalid_grant', 'two-factor authentication required');
    issued = await sessions.start(user, c.var.client, { amr: PASSWORD_AMR, client: binding });
  } else if (grantType === 'refresh_token') {
    await limitClient(c, 'refresh.ip');
    const refreshToken = required(params, 'refresh_token');
    if (client) return json(await oidc.grants.refresh(client, refreshToken, optional(params, 'scope')), 200, NO_STORE);
    issued = await sessions.refresh(refreshToken);
  } else {
    throw new OAuthError('unsupported_grant_type', `grant_type ${grantType.slice(0, 40)} is not supported`);
  }
  const body: Record<string, unknown> = {
    access_token: issued.accessToken,
    token_type: 'Bearer',
    expires_in: issued.expiresIn,
    refresh_token: issued.refreshToken,
  };
  // RFC 6749 §5.1: scope is required in the answer when it differs from the request; first-party sessions hold none.
  if (params.has('scope')) body.scope = '';
  return json(body, 200, NO_STORE);
}

/**
 * `Authorization: Basic` (RFC 6749 §2.3.1): base64 of the form-encoded id, a
 * colon, the form-encoded secret. Another scheme, or anything malformed,
 * fails client authentication.
 */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (header === undefined) return undefined;
  const match = /^basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header.trim());
  const decoded = match ? Buffer.from(match[1], 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new OAuthError('invalid_client', 'client authentication failed');
  const formDecode = (text: string) => {
    try {
      return decodeURIComponent(text.replace(/\+/g, ' '));
    } catch {
      throw new OAuthError('invalid_client', 'client authentication failed');
    }
  };
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
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
