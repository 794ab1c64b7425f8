import { createHmac } from 'node:crypto';
import { getCookie } from 'hono/cookie';
import { serialize } from 'hono/utils/cookie';
import type { CookieOptions } from 'hono/utils/cookie';
import { SignetError } from '../errors.js';
import { constantTimeEqual } from '../core/crypto.js';
import { DEVICE_COOKIE_TTL } from '../core/devices.js';
import type { Grant } from '../core/sessions.js';
import { toPublicUser } from '../core/users.js';
import type { AppContext } from './context.js';
import { addHeader } from './context.js';

/**
 * Cookie mode (contract "Cookie mode"): tokens in `__Host-` cookies —
 * HttpOnly, Secure, SameSite=Lax, Path=/ — plus a script-readable CSRF cookie.
 * Only SIGNET_DEV=1 on plain HTTP drops the prefix and Secure.
 */
export function cookieNames(c: AppContext): { access: string; refresh: string; csrf: string; device: string; secure: boolean } {
  const secure = !(c.var.services.config.dev && new URL(c.var.services.config.publicUrl).protocol === 'http:');
  const prefix = secure ? '__Host-signet-' : 'signet-';
  return { access: `${prefix}access`, refresh: `${prefix}refresh`, csrf: `${prefix}csrf`, device: `${prefix}device`, secure };
}

export function wantsCookies(c: AppContext): boolean {
  return c.req.header('x-session-mode')?.toLowerCase() === 'cookie';
}

/**
 * The CSRF token of a session: an HMAC of its id, so it needs no storage, stays
 * the same across refreshes, and is worthless for any other session.
 */
export function csrfToken(c: AppContext, sessionId: string): string {
  return createHmac('sha256', c.var.services.serverKeys.csrf).update(`csrf:${sessionId}`).digest('base64url');
}

function options(c: AppContext, maxAge: number, httpOnly = true): CookieOptions {
  const { secure } = cookieNames(c);
  return { path: '/', httpOnly, secure, sameSite: 'Lax', maxAge };
}

/** Sets the session cookies and returns the cookie-mode body. */
export function cookieSession(c: AppContext, grant: Grant) {
  const names = cookieNames(c);
  const csrf = csrfToken(c, grant.sessionId);
  setCookie(c, names.access, grant.accessToken, options(c, grant.expiresIn));
  setCookie(c, names.refresh, grant.refreshToken, options(c, grant.refreshExpiresIn));
  setCookie(c, names.csrf, csrf, options(c, grant.refreshExpiresIn, false));
  return { tokenType: 'cookie' as const, expiresIn: grant.expiresIn, csrfToken: csrf, user: toPublicUser(grant.user) };
}

export function clearSessionCookies(c: AppContext): void {
  const names = cookieNames(c);
  for (const name of [names.access, names.refresh, names.csrf]) setCookie(c, name, '', options(c, 0, name !== names.csrf));
}

export function setDeviceCookie(c: AppContext, value: string): void {
  setCookie(c, cookieNames(c).device, value, { ...options(c, DEVICE_COOKIE_TTL), sameSite: 'Strict' });
}

/** Sets a cookie on this request's answer (see addHeader). */
export function setCookie(c: AppContext, name: string, value: string, options: CookieOptions): void {
  addHeader(c, 'set-cookie', serialize(name, value, { path: '/', ...options }));
}

export function readCookie(c: AppContext, which: 'access' | 'refresh' | 'device'): string | undefined {
  return getCookie(c, cookieNames(c)[which]) || undefined;
}

/** Origins allowed to send state-changing requests: the public URL's and CORS_ORIGINS. */
export function allowedOrigin(c: AppContext, origin: string): boolean {
  const { config } = c.var.services;
  return origin === new URL(config.publicUrl).origin || config.corsOrigins.includes(origin);
}

/** Refuses a request sent from another site (Origin not allowed, or Sec-Fetch-Site: cross-site). */
export function assertSameSite(c: AppContext): void {
  const origin = c.req.header('origin');
  if (origin !== undefined && !allowedOrigin(c, origin)) throw new SignetError('csrf_failed');
  if (c.req.header('sec-fetch-site')?.toLowerCase() === 'cross-site') throw new SignetError('csrf_failed');
}

/** A cookie-authenticated request that changes state: same-site and with the session's CSRF token. */
export function assertCsrf(c: AppContext, sessionId: string): void {
  assertSameSite(c);
  const sent = c.req.header('x-csrf-token');
  if (sent === undefined || !constantTimeEqual(sent, csrfToken(c, sessionId))) throw new SignetError('csrf_failed');
}
