import { Hono } from 'hono';
import { SignetError, StoreUnavailableError } from '../errors.js';
import { HashAbortedError } from '../core/hash-pool.js';
import type { Services } from '../services.js';
import { assertNoForeignBody, readJsonObject, validate } from './body.js';
import { clientContext, isHttps } from './client.js';
import type { AppContext, AppEnv } from './context.js';
import { errorResponse, toSignetError } from './errors.js';
import { endSessionRoute, listSessionsRoute, meRoute } from './handlers/account.js';
import { mfaVerifyRoute, refreshRoute, signInRoute, signOutAllRoute, signOutRoute, signUpRoute } from './handlers/auth.js';
import { totpDisableRoute, totpEnableRoute, totpSetupRoute } from './handlers/mfa.js';
import {
  listPasskeysRoute,
  mfaPasskeyOptionsRoute,
  passkeyRegisterOptionsRoute,
  passkeyRegisterRoute,
  passkeySignInOptionsRoute,
  passkeySignInRoute,
  removePasskeyRoute,
  renamePasskeyRoute,
} from './handlers/passkeys.js';
import { assertCsrf, assertSameSite, allowedOrigin, readCookie, wantsCookies } from './cookies.js';
import { cors } from 'hono/cors';
import { healthRoute, jwksRoute, metricsRoute, readyRoute, revocationsRoute } from './handlers/meta.js';
import { discoveryRoute } from './oidc/discovery.js';
import { oidcRoutes } from './oidc/index.js';
import { OIDC_PATHS } from './oidc/paths.js';
import { tokenRoute } from './oidc/token.js';
import {
  changePasswordRoute,
  forgotPasswordRoute,
  resendVerificationRoute,
  resetPasswordRoute,
  updateProfileRoute,
  verifyEmailRoute,
} from './handlers/lifecycle.js';
import { pageRoutes } from './pages/index.js';
import { listIdentitiesRoute, listProvidersRoute, unlinkIdentityRoute } from './federation/api.js';
import { consumeEmailLinkRoute, requestEmailSigninRoute, verifyEmailCodeRoute } from './email-signin/api.js';
import { pageHandler } from './pages/dispatch.js';
import { pageAssets } from './pages/layout.js';
import type { PageAssets } from './pages/layout.js';
import { limitClient } from './limit.js';
import { auditRoute } from './handlers/audit.js';
import { withClientIp } from '../core/audit.js';
import { constantTimeEqual } from '../core/crypto.js';
import { openApiDocument } from './openapi.js';
import type { Route } from './route.js';
import { applyExtraHeaders, json } from './context.js';
import { route } from './route.js';

export const VERSION = '0.1.0';

/** Every route Signet serves, in one table. */
export function routeTable(services: Services, assets: PageAssets = pageAssets(services.config)): Route[] {
  const routes: Route[] = [
    ...pageRoutes(services.config, assets),
    ...oidcRoutes(services.config, assets),
    signUpRoute(services.config.passwordMinLength),
    signInRoute,
    passkeySignInOptionsRoute,
    passkeySignInRoute,
    mfaVerifyRoute,
    mfaPasskeyOptionsRoute,
    requestEmailSigninRoute,
    verifyEmailCodeRoute,
    consumeEmailLinkRoute,
    listProvidersRoute,
    listIdentitiesRoute,
    unlinkIdentityRoute,
    refreshRoute,
    tokenRoute,
    signOutRoute,
    signOutAllRoute,
    meRoute,
    updateProfileRoute,
    changePasswordRoute(services.config.passwordMinLength),
    forgotPasswordRoute,
    resetPasswordRoute(services.config.passwordMinLength),
    verifyEmailRoute,
    resendVerificationRoute,
    totpSetupRoute,
    totpEnableRoute,
    totpDisableRoute,
    passkeyRegisterOptionsRoute,
    passkeyRegisterRoute,
    listPasskeysRoute,
    renamePasskeyRoute,
    removePasskeyRoute,
    listSessionsRoute,
    endSessionRoute,
    auditRoute(services.audit),
    revocationsRoute,
    jwksRoute,
    discoveryRoute,
    healthRoute,
    readyRoute,
    metricsRoute,
  ];
  let document: Record<string, unknown> | undefined;
  routes.push(
    route({
      method: 'GET',
      path: '/openapi.json',
      tag: 'Discovery',
      summary: 'OpenAPI 3.1 document of every route',
      auth: 'none',
      success: { status: 200, description: 'OpenAPI 3.1' },
      handle: () =>
        json((document ??= openApiDocument(routes, { serverUrl: services.config.publicUrl, version: VERSION })), 200, {
          'cache-control': 'public, max-age=300',
        }),
    }),
  );
  return routes;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The web-standard handler (`app.fetch(request)`), and its route table. */
export function createApp(services: Services): { app: Hono<AppEnv>; routes: Route[] } {
  const app = new Hono<AppEnv>();
  const { config, logger } = services;
  const assets = pageAssets(config);
  const routes = routeTable(services, assets);

  const stamp = headerStamp(config.trustProxy);
  app.use(async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set('requestId', requestId);
    c.set('services', services);
    c.set('client', clientContext(c, config.trustProxy));
    const outgoing = (c.env as NodeBindings | undefined)?.outgoing;
    // On node:http the headers every response carries go straight onto the socket's response, before the
    // handler runs: they survive any error, and the handler's own headers (a page's CSP) still win.
    if (outgoing) stamp(c, outgoing, requestId);
    // Audit entries recorded anywhere in this request carry the client's address.
    await withClientIp(c.var.client.ip, next);
    applyExtraHeaders(c);
    if (!outgoing) stamp(c, c.res.headers, requestId);
    const ms = performance.now() - started;
    const route = c.req.routePath;
    const status = c.res.status;
    services.metrics.observe(c.req.method, route, status, ms / 1000);
    services.requestLog(requestId, c.req.method, route, status, ms);
  });

  // CORS only for the configured origins, with credentials (cookie mode); none otherwise.
  const credentialed = cors({
    origin: (origin, c) => (origin && allowedOrigin(c as AppContext, origin) && config.corsOrigins.includes(origin) ? origin : null),
    credentials: true,
    allowMethods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-CSRF-Token', 'X-Session-Mode', 'X-Request-Id'],
    exposeHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'WWW-Authenticate'],
    maxAge: 600,
  });
  // The OpenID endpoints a browser app calls itself (OpenID Connect Core §5.3.1): also from the origins of
  // registered clients' redirect URIs, never with cookies (these routes read none).
  const forClients = cors({
    origin: async (origin) => (origin && (config.corsOrigins.includes(origin) || (await services.oidc.clients.webOrigins()).has(origin)) ? origin : null),
    credentials: false,
    allowMethods: ['GET', 'POST'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
    exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  });
  const publicDocuments = cors({ origin: '*', allowMethods: ['GET'], maxAge: 600 });
  app.use((c, next) => {
    // Without an Origin header no CORS header applies (Vary: Origin is stamped on every answer).
    if (c.req.header('origin') === undefined) return next();
    const path = c.req.path;
    if (path.startsWith('/.well-known/')) return publicDocuments(c, next);
    if (path === '/auth/token' || path === OIDC_PATHS.userinfo) return forClients(c, next);
    return credentialed(c, next);
  });

  for (const r of routes) {
    app.on(r.method, r.path, r.kind === 'page' ? pageHandler(r, assets) : apiHandler(r, services));
  }

  const patterns = routes.map((r) => ({ method: r.method, regex: new RegExp(`^${r.path.replace(/:\w+/g, '[^/]+')}$`) }));
  app.notFound((c) => {
    const allowed: string[] = [...new Set(patterns.filter((p) => p.regex.test(c.req.path)).map((p) => p.method))];
    if (allowed.length === 0) return errorResponse(new SignetError('not_found'), c.req.header('accept') ?? null, c.var.requestId);
    if (allowed.includes('GET')) allowed.push('HEAD');
    if (c.req.path === '/auth/token') {
      // Every error of the token endpoint has the RFC 6749 §5.2 shape.
      return json({ error: 'invalid_request', error_description: 'use POST' }, 405, { allow: allowed.join(', '), 'cache-control': 'no-store' });
    }
    const response = errorResponse(new SignetError('method_not_allowed'), c.req.header('accept') ?? null, c.var.requestId);
    response.headers.set('allow', allowed.join(', '));
    return response;
  });

  app.onError((thrown, c) => {
    const error = toSignetError(thrown);
    if (thrown instanceof HashAbortedError || (error.status >= 500 && c.req.raw.signal.aborted)) {
      // The client went away before its answer: nothing failed that anyone waits for.
      logger.debug({ reqId: c.var.requestId }, 'client went away');
    } else if (error instanceof StoreUnavailableError) {
      // One line when the outage starts, then a count (services.outages): not a stack per request.
      services.outages.failed('database', error.cause ?? thrown);
    } else if (error.status >= 500 && error.code === 'internal_error') {
      const cause = error.cause instanceof Error ? error.cause : thrown;
      logger.error({ reqId: c.var.requestId, code: error.code, err: { type: cause.name, message: cause.message, stack: cause.stack } }, 'request failed');
    } else if (error.code === 'invalid_token' && error.cause instanceof Error) {
      logger.debug({ reqId: c.var.requestId, reason: error.cause.message }, 'token rejected');
    }
    return errorResponse(error, c.req.header('accept') ?? null, c.var.requestId);
  });

  return { app, routes };
}

/**
 * Runs a JSON row: what the row declares is applied here, in the documented
 * order (credentials and their CSRF, body rules, cookie-mode origin, the
 * refresh cookie's CSRF, the per-client limit, query rules), then the handler
 * does the route's own work.
 */
function apiHandler(r: Route, services: Services) {
  const { config } = services;
  return async (c: AppContext): Promise<Response> => {
    if (r.auth === 'operator') assertOperator(c, config.metricsToken);
    const credential = r.auth === 'bearer' || r.auth === 'bearer-or-body' ? accessCredential(c) : undefined;
    if (r.auth === 'bearer' || (r.auth === 'bearer-or-body' && credential !== undefined)) {
      if (credential === undefined) throw new SignetError('missing_token');
      // Reads may take a session checked moments ago (see session-cache.ts); changes always see the database.
      const auth = await services.sessions.authenticate(credential.token, { cached: r.method === 'GET' });
      // A cookie is sent by the browser on its own: state changes need proof the page is ours.
      if (credential.via === 'cookie' && r.method !== 'GET') assertCsrf(c, auth.session.id);
      c.set('auth', auth);
    }
    let body: unknown;
    if (!r.body) assertNoForeignBody(c.req.raw, config.bodyLimit);
    if (r.body && r.bodyMode !== 'custom') {
      const raw = await readJsonObject(c.req.raw, config.bodyLimit, { optional: r.bodyOptional ?? false });
      body = raw === undefined ? undefined : validate(r.body, raw, r.crossCheck?.(raw));
    }
    // Login CSRF: a cookie session may only be started from an allowed origin.
    if (r.csrf === 'cookie-mode' && wantsCookies(c)) assertSameSite(c);
    if (r.csrf === 'refresh-cookie' && (body as { refreshToken?: unknown } | undefined)?.refreshToken === undefined && c.get('auth') === undefined) {
      // A refresh token taken from its cookie changes state on the strength of a cookie: the session's CSRF token is needed.
      const cookie = readCookie(c, 'refresh');
      const sessionId = cookie === undefined ? undefined : await services.sessions.sessionOfRefreshToken(cookie);
      if (sessionId !== undefined) assertCsrf(c, sessionId);
    }
    if (r.limit) await limitClient(c, r.limit);
    const query = r.query ? validate(r.query, c.req.query()) : {};
    return r.handle(c, body, query);
  };
}

interface NodeOutgoing {
  setHeader(name: string, value: string): unknown;
}

interface NodeBindings {
  outgoing?: NodeOutgoing;
}

/**
 * The headers every response carries: the request id, no sniffing, no
 * referrer, framing protection (OWASP REST Security; pages set a stricter CSP
 * of their own), no caching of /auth/*, HSTS over HTTPS. Written to node's
 * response before the handler runs (a handler's own value wins), or, outside
 * node:http, onto the finished response (where only a missing CSP is added).
 */
function headerStamp(trustProxy: readonly string[]) {
  const fixed: [string, string][] = [
    ['x-content-type-options', 'nosniff'],
    ['referrer-policy', 'no-referrer'],
    ['x-frame-options', 'DENY'],
    // Answers differ by Origin (CORS), also when a request carried none.
    ['vary', 'Origin'],
  ];
  const csp = "default-src 'none'; frame-ancestors 'none'";
  return (c: AppContext, target: NodeOutgoing | Headers, requestId: string): void => {
    const headers: [string, string][] = [['x-request-id', requestId], ...fixed];
    if (c.req.path.startsWith('/auth/')) headers.push(['cache-control', 'no-store']);
    if (isHttps(c, trustProxy)) headers.push(['strict-transport-security', 'max-age=31536000; includeSubDomains']);
    if (target instanceof Headers) {
      for (const [name, value] of headers) target.set(name, value);
      if (!target.has('content-security-policy')) target.set('content-security-policy', csp);
    } else {
      for (const [name, value] of headers) target.setHeader(name, value);
      target.setHeader('content-security-policy', csp);
    }
  };
}

/** Whether a request path is one of the route table's (for mounting next to another app). */
export function pathMatcher(routes: readonly Route[]): (path: string) => boolean {
  const exact = new Set(routes.filter((r) => !r.path.includes(':')).map((r) => r.path));
  const patterns = routes.filter((r) => r.path.includes(':')).map((r) => new RegExp(`^${r.path.replace(/:\w+/g, '[^/]+')}$`));
  return (path) => exact.has(path) || patterns.some((p) => p.test(path));
}

/**
 * The access token: RFC 6750 §2.1 `Authorization: Bearer <token>`, or else the
 * access cookie. A header with another scheme or no value is a missing token.
 */
function accessCredential(c: AppContext): { token: string; via: 'header' | 'cookie' } | undefined {
  const header = c.req.header('authorization');
  if (header === undefined) {
    const cookie = readCookie(c, 'access');
    return cookie ? { token: cookie, via: 'cookie' } : undefined;
  }
  const match = /^(\S+)(?:\s+(.*))?$/.exec(header.trim());
  const token = match?.[2]?.trim();
  if (!match || match[1].toLowerCase() !== 'bearer' || !token) throw new SignetError('missing_token');
  return { token, via: 'header' };
}

/**
 * Operator routes (/metrics) take the configured token as a Bearer token,
 * compared in constant time. Without a configured token they do not exist on
 * this listener: nothing an unauthenticated caller can read moves with
 * account existence.
 */
function assertOperator(c: AppContext, token: string | undefined): void {
  if (token === undefined) throw new SignetError('not_found');
  const sent = accessCredential(c);
  if (sent === undefined || sent.via !== 'header') throw new SignetError('missing_token');
  if (!constantTimeEqual(sent.token, token)) throw new SignetError('invalid_token');
}
