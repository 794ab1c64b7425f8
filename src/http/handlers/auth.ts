import { SignetError } from '../../errors.js';
import type { FieldError } from '../../errors.js';
import type { Grant } from '../../core/sessions.js';
import { toPublicUser } from '../../core/users.js';
import type { AppContext } from '../context.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { SessionResponse, refreshBody, signInBody, signOutBody, signUpBody } from '../schemas.js';

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
    success: { status: 201, description: 'Account created; session started (or `{user, verificationRequired: true}` when EMAIL_VERIFICATION=required)', schema: SessionResponse },
    errors: ['email_taken', 'username_taken', 'weak_password'],
    handle: async (c, body) => {
      const { accounts } = c.var.services;
      const { user, grant } = await accounts.signUp({ email: body.email, password: body.password, username: body.username, name: body.name || undefined }, c.var.client);
      return json(grant ? sessionBody(grant) : { user: toPublicUser(user), verificationRequired: true }, 201);
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
  success: { status: 200, description: 'Session started', schema: SessionResponse },
  errors: ['invalid_credentials', 'email_not_verified'],
  handle: async (c, body) => {
    const login = body.email !== undefined ? { email: body.email, password: body.password } : { username: body.username!, password: body.password };
    const grant = await c.var.services.accounts.signIn(login, c.var.client);
    return json(sessionBody(grant));
  },
});

export const refreshRoute = route({
  method: 'POST',
  path: '/auth/token/refresh',
  tag: 'Sessions',
  summary: 'Rotate a refresh token: new access and refresh tokens',
  auth: 'none',
  body: refreshBody,
  success: { status: 200, description: 'Tokens rotated', schema: SessionResponse },
  errors: ['invalid_refresh_token'],
  handle: async (c, body) => json(sessionBody(await c.var.services.sessions.refresh(body.refreshToken, c.var.client))),
});

export const signOutRoute = route({
  method: 'POST',
  path: '/auth/signout',
  tag: 'Sessions',
  summary: 'End the session of the access token and/or the refresh token given',
  auth: 'bearer-or-body',
  body: signOutBody,
  bodyOptional: true,
  success: { status: 204, description: 'Session ended' },
  errors: ['missing_token', 'invalid_token'],
  handle: async (c, body) => {
    const { sessions } = c.var.services;
    const auth = c.get('auth') as AppContext['var']['auth'] | undefined;
    if (!auth && body?.refreshToken === undefined) throw new SignetError('missing_token');
    if (auth) await sessions.end(auth.session.id, 'signout');
    if (body?.refreshToken !== undefined && !(await sessions.endByRefreshToken(body.refreshToken, 'signout')) && !auth) {
      throw new SignetError('invalid_refresh_token');
    }
    return new Response(null, { status: 204 });
  },
});

export const signOutAllRoute = route({
  method: 'POST',
  path: '/auth/signout-all',
  tag: 'Sessions',
  summary: "End every session of the token's user",
  auth: 'bearer',
  success: { status: 204, description: 'All sessions ended' },
  handle: async (c) => {
    await c.var.services.sessions.endAll(c.var.auth.user.id, 'signout_all');
    return new Response(null, { status: 204 });
  },
});
