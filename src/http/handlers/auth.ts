import { SignetError } from '../../errors.js';
import type { FieldError } from '../../errors.js';
import type { Grant } from '../../core/sessions.js';
import type { SignInResult } from '../../core/users.js';
import { toPublicUser } from '../../core/users.js';
import type { AppContext } from '../context.js';
import { json } from '../context.js';
import { clearSessionCookies, cookieSession, readCookie, setDeviceCookie, wantsCookies } from '../cookies.js';
import { route } from '../route.js';
import { SessionResponse, mfaVerifyBody, refreshBody, signInBody, signOutBody, signUpBody } from '../schemas.js';

export function sessionBody(grant: Grant) {
  return {
    token: grant.accessToken,
    tokenType: 'Bearer' as const,
    expiresIn: grant.expiresIn,
    refreshToken: grant.refreshToken,
    refreshExpiresIn: grant.refreshExpiresIn,
    user: toPublicUser(grant.user),
  };
}

/** The session response, as JSON tokens or (cookie mode) as cookies. */
function respondWithSession(c: AppContext, grant: Grant, status = 200, cookies = wantsCookies(c)): Response {
  return json(cookies ? cookieSession(c, grant) : sessionBody(grant), status);
}

/** A session (cookies or tokens, and the device cookie), or the second-factor challenge. */
export function respondToSignIn(c: AppContext, result: SignInResult): Response {
  if (result.kind === 'mfa') return json({ mfaRequired: true, mfaToken: result.mfaToken, methods: result.methods });
  setDeviceCookie(c, result.deviceCookie);
  return respondWithSession(c, result.grant);
}

/** Exactly one identifier at sign-in; reported with the other field errors. */
function identifierErrors(body: Record<string, unknown>): FieldError[] {
  const has = (k: string) => body[k] !== undefined;
  if (has('email') && has('username')) return [{ field: 'email', message: 'give either email or username, not both' }];
  if (!has('email') && !has('username')) return [{ field: 'email', message: 'is required (or give username)' }];
  return [];
}

export function signUpRoute(minPasswordLength: number) {
  return route({
    method: 'POST',
    path: '/auth/signup',
    tag: 'Sign-in',
    summary: 'Create an account and start a session',
    auth: 'none',
    body: signUpBody(minPasswordLength),
    success: {
      status: 201,
      description: 'Account created; session started (or `{user, verificationRequired: true}` when EMAIL_VERIFICATION=required)',
      schema: SessionResponse,
    },
    errors: ['email_taken', 'username_taken', 'weak_password', 'rate_limited', 'csrf_failed'],
    csrf: 'cookie-mode',
    limit: 'signup.ip',
    handle: async (c, body) => {
      const { user, grant } = await c.var.services.accounts.signUp(
        { email: body.email, password: body.password, username: body.username, name: body.name || undefined },
        c.var.client,
      );
      return grant ? respondWithSession(c, grant, 201) : json({ user: toPublicUser(user), verificationRequired: true }, 201);
    },
  });
}

export const signInRoute = route({
  method: 'POST',
  path: '/auth/signin',
  tag: 'Sign-in',
  summary: 'Sign in with email or username and password',
  auth: 'none',
  body: signInBody,
  crossCheck: identifierErrors,
  success: { status: 200, description: 'Session started, or `{mfaRequired: true, mfaToken, methods}` for two-factor accounts', schema: SessionResponse },
  errors: ['invalid_credentials', 'email_not_verified', 'rate_limited', 'csrf_failed', 'unavailable'],
  csrf: 'cookie-mode',
  handle: async (c, body) => {
    const login = body.email !== undefined ? { email: body.email, password: body.password } : { username: body.username!, password: body.password };
    return respondToSignIn(c, await c.var.services.accounts.signIn(login, c.var.client));
  },
});

export const mfaVerifyRoute = route({
  method: 'POST',
  path: '/auth/mfa/verify',
  tag: 'Two-factor',
  summary: 'Second sign-in step: a TOTP code, a recovery code or a passkey assertion for the mfaToken',
  auth: 'none',
  body: mfaVerifyBody,
  crossCheck: (raw) =>
    [raw.code, raw.recoveryCode, raw.webauthn].filter((v) => v !== undefined).length !== 1
      ? [{ field: 'code', message: 'give exactly one of code, recoveryCode and webauthn' }]
      : [],
  success: { status: 200, description: 'Session started', schema: SessionResponse },
  errors: ['invalid_code', 'invalid_mfa_token', 'invalid_passkey', 'unknown_passkey', 'challenge_expired', 'rate_limited'],
  csrf: 'cookie-mode',
  limit: 'mfa.ip',
  handle: async (c, body) => {
    const proof =
      body.code !== undefined ? { code: body.code } : body.webauthn !== undefined ? { webauthn: body.webauthn } : { recoveryCode: body.recoveryCode! };
    return respondToSignIn(c, await c.var.services.accounts.completeMfa(body.mfaToken, proof, c.var.client));
  },
});

export const refreshRoute = route({
  method: 'POST',
  path: '/auth/token/refresh',
  tag: 'Sessions',
  summary: 'Rotate a refresh token (from the body, or the refresh cookie): new access and refresh tokens',
  auth: 'none',
  body: refreshBody,
  bodyOptional: true,
  csrf: 'refresh-cookie',
  limit: 'refresh.ip',
  success: { status: 200, description: 'Tokens rotated', schema: SessionResponse },
  errors: ['invalid_refresh_token', 'csrf_failed', 'rate_limited'],
  handle: async (c, body) => {
    const fromCookie = body?.refreshToken === undefined;
    const token = body?.refreshToken ?? readCookie(c, 'refresh');
    // Neither a body nor a refresh cookie: the contract's answer to an empty body.
    if (token === undefined) {
      throw new SignetError(body === undefined ? 'invalid_json' : 'invalid_refresh_token', body === undefined ? { message: 'The request body is empty' } : {});
    }
    // A token that came from a cookie goes back into cookies, never into a body scripts can read.
    return respondWithSession(c, await c.var.services.sessions.refresh(token), 200, fromCookie || wantsCookies(c));
  },
});

export const signOutRoute = route({
  method: 'POST',
  path: '/auth/signout',
  tag: 'Sessions',
  summary: 'End the session of the access token and/or the refresh token given (or the refresh cookie); clears the session cookies',
  auth: 'bearer-or-body',
  body: signOutBody,
  bodyOptional: true,
  csrf: 'refresh-cookie',
  success: { status: 204, description: 'Session ended' },
  errors: ['missing_token', 'invalid_token', 'invalid_refresh_token', 'csrf_failed'],
  handle: async (c, body) => {
    const { sessions } = c.var.services;
    const auth = c.get('auth') as AppContext['var']['auth'] | undefined;
    if (!auth && body?.refreshToken === undefined) {
      // Cookie mode after the access cookie expired: the refresh cookie names the session (its CSRF token was checked).
      const cookie = readCookie(c, 'refresh');
      if (cookie === undefined || !(await sessions.endByRefreshToken(cookie, 'signout'))) throw new SignetError('missing_token');
      clearSessionCookies(c);
      return c.body(null, 204);
    }
    if (auth) await sessions.end(auth.session.id, 'signout');
    if (body?.refreshToken !== undefined && !(await sessions.endByRefreshToken(body.refreshToken, 'signout')) && !auth) {
      throw new SignetError('invalid_refresh_token');
    }
    clearSessionCookies(c);
    return c.body(null, 204);
  },
});

export const signOutAllRoute = route({
  method: 'POST',
  path: '/auth/signout-all',
  tag: 'Sessions',
  summary: "End every session of the token's user; clears the session cookies",
  auth: 'bearer',
  success: { status: 204, description: 'All sessions ended' },
  handle: async (c) => {
    await c.var.services.sessions.endAll(c.var.auth.user.id, 'signout_all');
    clearSessionCookies(c);
    return c.body(null, 204);
  },
});
