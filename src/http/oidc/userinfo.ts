import { z } from 'zod';
import { OAuthError, oauthText } from '../../core/oidc/errors.js';
import { toSignetError } from '../errors.js';
import { decodeUtf8, hasBody, isFormContentType, readBody } from '../body.js';
import type { AppContext } from '../context.js';
import { json } from '../context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { OIDC_PATHS } from './paths.js';

const UserInfo = z
  .object({
    sub: z.string(),
    name: z.string().optional(),
    preferred_username: z.string().optional(),
    updated_at: z.number().int().optional(),
    email: z.string().optional(),
    email_verified: z.boolean().optional(),
  })
  .meta({ id: 'UserInfo' });

const UserInfoForm = z.object({ access_token: z.string().optional().meta({ description: 'RFC 6750 §2.2; or send it as a Bearer header' }) });

/**
 * UserInfo (OpenID Connect Core §5.3): GET and POST, the access token as a
 * Bearer header (or, on POST, the RFC 6750 §2.2 form field). Errors are RFC
 * 6750 §3 challenges, not Signet's JSON error body: that is what OpenID
 * clients read.
 */
export function userinfoRoutes(): Route[] {
  const base = {
    path: OIDC_PATHS.userinfo,
    tag: 'OpenID Connect',
    auth: 'none' as const,
    bodyMode: 'custom' as const,
    success: { status: 200, description: 'Claims about the signed-in user, by the granted scopes', schema: UserInfo },
  };
  return [
    route({ ...base, method: 'GET', summary: 'UserInfo endpoint', handle: (c) => answer(c) }),
    route({
      ...base,
      method: 'POST',
      summary: 'UserInfo endpoint (form post)',
      body: UserInfoForm,
      bodyContentTypes: ['application/x-www-form-urlencoded'],
      handle: (c) => answer(c),
    }),
  ];
}

async function answer(c: AppContext): Promise<Response> {
  try {
    const token = await accessToken(c);
    if (token === undefined) {
      // RFC 6750 §3.1: a request without credentials gets the bare challenge.
      return json({ error: 'invalid_request', error_description: 'an access token is required' }, 401, {
        'www-authenticate': 'Bearer realm="signet"',
        'cache-control': 'no-store',
      });
    }
    return json(await c.var.services.oidc.grants.userinfo(token), 200, { 'cache-control': 'no-store', vary: 'Authorization' });
  } catch (thrown) {
    const error = thrown instanceof OAuthError ? thrown : fromSignetError(thrown);
    if (!(thrown instanceof OAuthError) && error.status >= 500) throw thrown;
    const description = oauthText(error.description);
    const challenge = `Bearer realm="signet", error="${error.error}", error_description="${description}"${error.error === 'insufficient_scope' ? ', scope="openid"' : ''}`;
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (error.status === 401 || error.status === 403) headers['www-authenticate'] = challenge;
    if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter);
    return json({ error: error.error, error_description: description }, error.status, headers);
  }
}

/** The Bearer header, or the form field of a POST; both at once is a malformed request (RFC 6750 §2). */
async function accessToken(c: AppContext): Promise<string | undefined> {
  const header = c.req.header('authorization');
  let fromHeader: string | undefined;
  if (header !== undefined) {
    const match = /^bearer\s+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header.trim());
    if (!match) throw new OAuthError('invalid_token', 'the Authorization header is not a Bearer token');
    fromHeader = match[1];
  }
  if (c.req.method !== 'POST' || !hasBody(c.req.raw)) return fromHeader;
  if (!isFormContentType(c.req.header('content-type') ?? null)) throw new OAuthError('invalid_request', 'send the token as a Bearer header or a form field');
  const form = new URLSearchParams(decodeUtf8(await readBody(c.req.raw, c.var.services.config.bodyLimit)));
  const fromBody = form.get('access_token') ?? undefined;
  if (fromHeader !== undefined && fromBody !== undefined) throw new OAuthError('invalid_request', 'send the token one way only');
  return fromHeader ?? fromBody;
}

/** Transport refusals (413, 415, 429, 503) in the same shape. */
function fromSignetError(thrown: unknown): OAuthError {
  const error = toSignetError(thrown);
  if (error.code === 'unavailable') return new OAuthError('temporarily_unavailable', 'try again later', 503, error.retryAfter);
  if (error.status >= 500) return new OAuthError('server_error', 'internal error', error.status);
  return new OAuthError('invalid_request', error.message, error.status, error.retryAfter);
}
