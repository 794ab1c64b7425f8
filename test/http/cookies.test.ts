import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { Secret, TOTP } from 'otpauth';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';

/**
 * Cookie mode, CSRF protection and HTTP hardening (issue 5 §5, §6 and "Bad input
 * and abuse"; contract: "Cookie mode", "Response headers"). Node's fetch keeps
 * no cookies: Set-Cookie headers are parsed here and sent back by hand.
 */

const ORIGIN = 'http://signet.test';
const EVIL = 'https://evil.example';
const APP = 'https://app.example.com';

interface Names {
  access: string;
  refresh: string;
  csrf: string;
  device: string;
}
const SECURE_NAMES: Names = { access: '__Host-signet-access', refresh: '__Host-signet-refresh', csrf: '__Host-signet-csrf', device: '__Host-signet-device' };
const DEV_NAMES: Names = { access: 'signet-access', refresh: 'signet-refresh', csrf: 'signet-csrf', device: 'signet-device' };

interface SetCookie {
  name: string;
  value: string;
  /** Attribute names lower-cased; flag attributes map to true. */
  attrs: Map<string, string | true>;
}

function parseSetCookies(headers: Headers): Map<string, SetCookie> {
  const out = new Map<string, SetCookie>();
  for (const line of headers.getSetCookie()) {
    const [pair, ...rest] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = decodeURIComponent(pair.slice(eq + 1).trim());
    const attrs = new Map<string, string | true>();
    for (const part of rest) {
      const i = part.indexOf('=');
      if (i === -1) attrs.set(part.trim().toLowerCase(), true);
      else attrs.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
    }
    out.set(name, { name, value, attrs });
  }
  return out;
}

function cookieHeader(jar: Record<string, string>): string {
  return Object.entries(jar)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
}

function expectError(response: { status: number; body: any }, status: number, code: string): void {
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.body).toEqual(expect.objectContaining({ statusCode: status, code, error: expect.any(String), message: expect.any(String) }));
}

function expectCookieBody(body: any, email?: string): void {
  expect(body).toEqual({
    tokenType: 'cookie',
    expiresIn: expect.any(Number),
    csrfToken: expect.any(String),
    user: email === undefined ? expect.any(Object) : expect.objectContaining({ email }),
  });
  expect(body.csrfToken.length).toBeGreaterThanOrEqual(16);
  expect(body.token).toBeUndefined();
  expect(body.refreshToken).toBeUndefined();
}

/** Changes one character in the middle of a string (never a no-op on base64url data). */
function tamper(value: string): string {
  const i = Math.floor(value.length / 2);
  return value.slice(0, i) + (value[i] === 'A' ? 'B' : 'A') + value.slice(i + 1);
}

interface CookieSession {
  email: string;
  password: string;
  userId: string;
  csrfToken: string;
  /** Every cookie the sign-in set, as a browser would send them back. */
  jar: Record<string, string>;
  access: string;
  refresh: string;
  sid: string;
}

async function signUp(server: TestServer): Promise<{ email: string; password: string; userId: string; token: string }> {
  const account = newAccount();
  const response = await server.call('POST', '/auth/signup', { body: account });
  expect(response.status).toBe(201);
  return { email: account.email, password: account.password, userId: response.body.user.id, token: response.body.token };
}

async function cookieSignIn(
  server: TestServer,
  account: { email: string; password: string },
  names: Names = SECURE_NAMES,
  headers: Record<string, string> = {},
): Promise<CookieSession> {
  const response = await server.call('POST', '/auth/signin', {
    body: { email: account.email, password: account.password },
    headers: { 'x-session-mode': 'cookie', ...headers },
  });
  expect(response.status).toBe(200);
  expectCookieBody(response.body, account.email);
  const cookies = parseSetCookies(response.headers);
  const jar: Record<string, string> = {};
  for (const c of cookies.values()) jar[c.name] = c.value;
  const access = cookies.get(names.access)?.value;
  const refresh = cookies.get(names.refresh)?.value;
  expect(access).toBeTruthy();
  expect(refresh).toBeTruthy();
  return {
    email: account.email,
    password: account.password,
    userId: response.body.user.id,
    csrfToken: response.body.csrfToken,
    jar,
    access: access!,
    refresh: refresh!,
    sid: decodeJwt(access!).sid as string,
  };
}

async function newCookieSession(server: TestServer): Promise<CookieSession> {
  return cookieSignIn(server, await signUp(server));
}

async function bearerSignIn(server: TestServer, account: { email: string; password: string }): Promise<string> {
  const response = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
  expect(response.status).toBe(200);
  return response.body.token;
}

/** GET /auth/me by the access cookie alone. */
async function meByCookie(server: TestServer, access: string, names: Names = SECURE_NAMES) {
  return server.call('GET', '/auth/me', { headers: { cookie: `${names.access}=${access}` } });
}

/** A state-changing route, its success status, and how to see whether it took effect. */
interface StateChange {
  title: string;
  /** A fresh cookie session (and whatever else the case needs). */
  prepare(server: TestServer): Promise<{
    session: CookieSession;
    send: (headers: Record<string, string>, auth?: 'cookie' | { bearer: string }) => Promise<{ status: number; body: any; headers: Headers }>;
    success: number;
    happened: () => Promise<boolean>;
  }>;
}

const STATE_CHANGES: StateChange[] = [
  {
    title: 'POST /auth/signout-all',
    async prepare(server) {
      const session = await newCookieSession(server);
      return {
        session,
        success: 204,
        send: (headers, auth = 'cookie') =>
          server.call(
            'POST',
            '/auth/signout-all',
            auth === 'cookie' ? { headers: { cookie: cookieHeader(session.jar), ...headers } } : { token: auth.bearer, headers },
          ),
        happened: async () => (await meByCookie(server, session.access)).status === 401,
      };
    },
  },
  {
    title: 'PATCH /auth/me',
    async prepare(server) {
      const session = await newCookieSession(server);
      const name = `Changed ${Math.random().toString(36).slice(2, 8)}`;
      return {
        session,
        success: 200,
        send: (headers, auth = 'cookie') =>
          server.call(
            'PATCH',
            '/auth/me',
            auth === 'cookie'
              ? { body: { name }, headers: { cookie: cookieHeader(session.jar), ...headers } }
              : { body: { name }, token: auth.bearer, headers },
          ),
        happened: async () => (await meByCookie(server, session.access)).body.user.name === name,
      };
    },
  },
  {
    title: 'DELETE /auth/sessions/:id',
    async prepare(server) {
      const session = await newCookieSession(server);
      const victim = await bearerSignIn(server, session);
      const victimSid = decodeJwt(victim).sid as string;
      return {
        session,
        success: 204,
        send: (headers, auth = 'cookie') =>
          server.call(
            'DELETE',
            `/auth/sessions/${victimSid}`,
            auth === 'cookie' ? { headers: { cookie: cookieHeader(session.jar), ...headers } } : { token: auth.bearer, headers },
          ),
        happened: async () => (await server.call('GET', '/auth/me', { token: victim })).status === 401,
      };
    },
  },
  {
    title: 'POST /auth/password/change',
    async prepare(server) {
      const session = await newCookieSession(server);
      const body = { currentPassword: session.password, newPassword: `${session.password}-renewed` };
      return {
        session,
        success: 204,
        send: (headers, auth = 'cookie') =>
          server.call(
            'POST',
            '/auth/password/change',
            auth === 'cookie' ? { body, headers: { cookie: cookieHeader(session.jar), ...headers } } : { body, token: auth.bearer, headers },
          ),
        happened: async () => {
          const old = await server.call('POST', '/auth/signin', { body: { email: session.email, password: session.password } });
          return old.status === 401;
        },
      };
    },
  },
];

describe.each(DIALECTS)('cookie mode and CSRF on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('sign-in with X-Session-Mode: cookie returns the cookie body and sets __Host- cookies (HttpOnly except csrf, Secure, SameSite=Lax, Path=/)', async () => {
    const account = await signUp(server);
    const response = await server.call('POST', '/auth/signin', {
      body: { email: account.email, password: account.password },
      headers: { 'x-session-mode': 'cookie' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expectCookieBody(response.body, account.email);
    expect(response.body.user).toEqual(expect.objectContaining({ id: account.userId, mfaEnabled: false }));

    const cookies = parseSetCookies(response.headers);
    for (const name of [SECURE_NAMES.access, SECURE_NAMES.refresh, SECURE_NAMES.csrf, SECURE_NAMES.device]) {
      const cookie = cookies.get(name);
      expect(cookie, `${name} is set`).toBeDefined();
      expect(cookie!.value).not.toBe('');
      expect(cookie!.attrs.get('secure'), `${name} Secure`).toBe(true);
      expect(cookie!.attrs.get('path'), `${name} Path`).toBe('/');
      // __Host- cookies must not carry a Domain attribute.
      expect(cookie!.attrs.has('domain'), `${name} has no Domain`).toBe(false);
      expect(Number(cookie!.attrs.get('max-age'))).toBeGreaterThan(0);
    }
    for (const name of [SECURE_NAMES.access, SECURE_NAMES.refresh, SECURE_NAMES.csrf]) {
      expect(String(cookies.get(name)!.attrs.get('samesite')).toLowerCase(), `${name} SameSite`).toBe('lax');
    }
    expect(cookies.get(SECURE_NAMES.access)!.attrs.get('httponly')).toBe(true);
    expect(cookies.get(SECURE_NAMES.refresh)!.attrs.get('httponly')).toBe(true);
    expect(cookies.get(SECURE_NAMES.device)!.attrs.get('httponly')).toBe(true);
    expect(cookies.get(SECURE_NAMES.csrf)!.attrs.has('httponly')).toBe(false);
    expect(cookies.get(SECURE_NAMES.csrf)!.value).toBe(response.body.csrfToken);
    expect(Number(cookies.get(SECURE_NAMES.access)!.attrs.get('max-age'))).toBe(response.body.expiresIn);

    // The access cookie is the session's access token.
    const claims = decodeJwt(cookies.get(SECURE_NAMES.access)!.value);
    expect(claims.sub).toBe(account.userId);
  });

  it('sign-up with X-Session-Mode: cookie answers 201 with the cookie body and session cookies', async () => {
    const account = newAccount();
    const response = await server.call('POST', '/auth/signup', { body: account, headers: { 'x-session-mode': 'cookie' } });
    expect(response.status).toBe(201);
    expectCookieBody(response.body, account.email);
    const cookies = parseSetCookies(response.headers);
    expect(cookies.get(SECURE_NAMES.csrf)?.value).toBe(response.body.csrfToken);
    expect((await meByCookie(server, cookies.get(SECURE_NAMES.access)!.value)).status).toBe(200);
  });

  it('GET /auth/me works with only the access cookie and needs no CSRF token', async () => {
    const session = await newCookieSession(server);
    const response = await meByCookie(server, session.access);
    expect(response.status).toBe(200);
    expect(response.body.user).toEqual(expect.objectContaining({ id: session.userId, email: session.email }));
    const sessions = await server.call('GET', '/auth/sessions', { headers: { cookie: cookieHeader(session.jar) } });
    expect(sessions.status).toBe(200);
    expect(sessions.body.sessions.find((s: any) => s.id === session.sid)?.current).toBe(true);
  });

  describe.each(STATE_CHANGES)('$title with cookie authentication', (change) => {
    it('is refused with 403 csrf_failed without the token, with a wrong one, another session’s, a foreign Origin, or Sec-Fetch-Site: cross-site — and nothing changes', async () => {
      const { session, send, happened } = await change.prepare(server);
      const other = await cookieSignIn(server, session);
      expect(other.csrfToken).not.toBe(session.csrfToken);
      const attempts: [string, Record<string, string>][] = [
        ['no token', {}],
        ['no token, same origin', { origin: ORIGIN }],
        ['empty token', { 'x-csrf-token': '' }],
        ['wrong token', { 'x-csrf-token': tamper(session.csrfToken) }],
        ['token of another session', { 'x-csrf-token': other.csrfToken }],
        ['right token, foreign Origin', { 'x-csrf-token': session.csrfToken, origin: EVIL }],
        ['right token, Origin null', { 'x-csrf-token': session.csrfToken, origin: 'null' }],
        ['right token, Sec-Fetch-Site: cross-site', { 'x-csrf-token': session.csrfToken, 'sec-fetch-site': 'cross-site' }],
        ['right token, same Origin but Sec-Fetch-Site: cross-site', { 'x-csrf-token': session.csrfToken, origin: ORIGIN, 'sec-fetch-site': 'cross-site' }],
      ];
      for (const [label, headers] of attempts) {
        const response = await send(headers);
        expect({ label, status: response.status, code: response.body?.code }).toEqual({ label, status: 403, code: 'csrf_failed' });
        expect(response.body).toEqual(expect.objectContaining({ statusCode: 403, error: 'Forbidden', code: 'csrf_failed' }));
      }
      expect(await happened()).toBe(false);
      expect((await meByCookie(server, session.access)).status).toBe(200);
    });

    it('succeeds with the right token from the same origin (Origin: http://signet.test, Sec-Fetch-Site: same-origin)', async () => {
      const { session, send, success, happened } = await change.prepare(server);
      const response = await send({ 'x-csrf-token': session.csrfToken, origin: ORIGIN, 'sec-fetch-site': 'same-origin' });
      expect(response.status).toBe(success);
      expect(await happened()).toBe(true);
    });

    it('succeeds with the right token and no Origin header', async () => {
      const { session, send, success, happened } = await change.prepare(server);
      const response = await send({ 'x-csrf-token': session.csrfToken });
      expect(response.status).toBe(success);
      expect(await happened()).toBe(true);
    });

    it('needs no CSRF token when Bearer-authenticated', async () => {
      const { session, send, success, happened } = await change.prepare(server);
      const bearer = await bearerSignIn(server, session);
      const response = await send({}, { bearer });
      expect(response.status).toBe(success);
      expect(await happened()).toBe(true);
    });
  });

  describe('refresh by cookie', () => {
    it('POST /auth/token/refresh with no body, the refresh cookie and X-CSRF-Token → 200 cookie body and new cookies, never tokens in the body', async () => {
      const session = await newCookieSession(server);
      server.clock.advance(1);
      const response = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken } });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      // No X-Session-Mode header was sent: a token from a cookie still never goes into the body.
      expectCookieBody(response.body, session.email);
      const cookies = parseSetCookies(response.headers);
      const access = cookies.get(SECURE_NAMES.access);
      const refresh = cookies.get(SECURE_NAMES.refresh);
      expect(access?.value).toBeTruthy();
      expect(refresh?.value).toBeTruthy();
      expect(access!.value).not.toBe(session.access);
      expect(refresh!.value).not.toBe(session.refresh);
      expect(access!.attrs.get('httponly')).toBe(true);
      expect(refresh!.attrs.get('httponly')).toBe(true);
      expect(access!.attrs.get('secure')).toBe(true);
      expect(cookies.get(SECURE_NAMES.csrf)?.value).toBe(response.body.csrfToken);
      expect(JSON.stringify(response.body)).not.toContain(refresh!.value);
      expect(JSON.stringify(response.body)).not.toContain(access!.value);
      const me = await meByCookie(server, access!.value);
      expect(me.status).toBe(200);
      expect(decodeJwt(access!.value).sid).toBe(session.sid);

      // With only the refresh cookie (the access cookie expired and is gone), too.
      const again = await server.call('POST', '/auth/token/refresh', {
        headers: { cookie: `${SECURE_NAMES.refresh}=${refresh!.value}`, 'x-csrf-token': response.body.csrfToken },
      });
      expect(again.status).toBe(200);
      expectCookieBody(again.body, session.email);
    });

    it('refresh by cookie without the CSRF token (or from a foreign origin) is 403 csrf_failed and rotates nothing', async () => {
      const session = await newCookieSession(server);
      const refused = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(session.jar) } });
      expectError(refused, 403, 'csrf_failed');
      expect(refused.headers.getSetCookie().filter((c) => c.startsWith(SECURE_NAMES.refresh))).toEqual([]);
      const wrong = await server.call('POST', '/auth/token/refresh', {
        headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': tamper(session.csrfToken) },
      });
      expectError(wrong, 403, 'csrf_failed');
      const foreign = await server.call('POST', '/auth/token/refresh', {
        headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken, origin: EVIL },
      });
      expectError(foreign, 403, 'csrf_failed');
      const crossSite = await server.call('POST', '/auth/token/refresh', {
        headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken, 'sec-fetch-site': 'cross-site' },
      });
      expectError(crossSite, 403, 'csrf_failed');

      // The refused attempts did not use the refresh token up.
      const ok = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken } });
      expect(ok.status).toBe(200);
      expectCookieBody(ok.body, session.email);
    });

    it('a tampered refresh cookie is 401 invalid_refresh_token (with or without a CSRF token)', async () => {
      const session = await newCookieSession(server);
      const jar = { ...session.jar, [SECURE_NAMES.refresh]: tamper(session.refresh) };
      const withToken = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(jar), 'x-csrf-token': session.csrfToken } });
      expectError(withToken, 401, 'invalid_refresh_token');
      expect(withToken.headers.getSetCookie().filter((c) => /signet-(access|refresh)=[^;]/.test(c))).toEqual([]);
      const withoutToken = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(jar) } });
      expectError(withoutToken, 401, 'invalid_refresh_token');
      // The genuine cookie still works.
      const ok = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken } });
      expect(ok.status).toBe(200);
    });
  });

  describe('sign-out and tampering', () => {
    it('sign-out by cookie with the CSRF token → 204, clears all three session cookies (Max-Age=0); the old cookies are refused afterwards', async () => {
      const session = await newCookieSession(server);
      const refused = await server.call('POST', '/auth/signout', { headers: { cookie: cookieHeader(session.jar) } });
      expectError(refused, 403, 'csrf_failed');
      expect((await meByCookie(server, session.access)).status).toBe(200);

      const response = await server.call('POST', '/auth/signout', {
        headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken, origin: ORIGIN },
      });
      expect(response.status).toBe(204);
      const cookies = parseSetCookies(response.headers);
      for (const name of [SECURE_NAMES.access, SECURE_NAMES.refresh, SECURE_NAMES.csrf]) {
        const cookie = cookies.get(name);
        expect(cookie, `${name} is cleared`).toBeDefined();
        expect(cookie!.value).toBe('');
        expect(cookie!.attrs.get('max-age')).toBe('0');
        // A browser only replaces a __Host- cookie with one set the same way.
        expect(cookie!.attrs.get('path')).toBe('/');
        expect(cookie!.attrs.get('secure')).toBe(true);
      }

      const me = await meByCookie(server, session.access);
      expectError(me, 401, 'invalid_token');
      const refresh = await server.call('POST', '/auth/token/refresh', { headers: { cookie: cookieHeader(session.jar), 'x-csrf-token': session.csrfToken } });
      expectError(refresh, 401, 'invalid_refresh_token');
    });

    it('a tampered access cookie is 401 invalid_token', async () => {
      const session = await newCookieSession(server);
      const [header, payload, signature] = session.access.split('.');
      for (const forged of [`${header}.${payload}.${tamper(signature)}`, `${header}.${tamper(payload)}.${signature}`, `${session.access}x`, 'garbage']) {
        const response = await meByCookie(server, forged);
        expectError(response, 401, 'invalid_token');
        expect(response.headers.get('www-authenticate')).toBe('Bearer realm="signet", error="invalid_token"');
      }
      const patch = await server.call('PATCH', '/auth/me', {
        body: { name: 'Forged' },
        headers: { cookie: `${SECURE_NAMES.access}=${header}.${payload}.${tamper(signature)}`, 'x-csrf-token': session.csrfToken },
      });
      expectError(patch, 401, 'invalid_token');
      expect((await meByCookie(server, session.access)).body.user.name).not.toBe('Forged');
    });

    it('no access cookie and no Authorization header is 401 missing_token', async () => {
      const response = await server.call('GET', '/auth/me', { headers: { cookie: `${SECURE_NAMES.csrf}=whatever` } });
      expectError(response, 401, 'missing_token');
    });
  });

  describe('login CSRF', () => {
    it('a cookie-mode sign-in from a foreign Origin or a cross-site request is 403 csrf_failed and sets no session cookie', async () => {
      const account = await signUp(server);
      for (const headers of [{ origin: EVIL }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
        const response = await server.call('POST', '/auth/signin', {
          body: { email: account.email, password: account.password },
          headers: { 'x-session-mode': 'cookie', ...headers },
        });
        expectError(response, 403, 'csrf_failed');
        expect(response.headers.getSetCookie().filter((c) => /signet-(access|refresh|csrf)=/.test(c))).toEqual([]);
      }
      const signup = await server.call('POST', '/auth/signup', { body: newAccount(), headers: { 'x-session-mode': 'cookie', origin: EVIL } });
      expectError(signup, 403, 'csrf_failed');
      // The same origin is fine.
      const ok = await cookieSignIn(server, account, SECURE_NAMES, { origin: ORIGIN, 'sec-fetch-site': 'same-origin' });
      expect(ok.csrfToken).toEqual(expect.any(String));
    });

    it('MFA verify in cookie mode sets the session cookies, and refuses a foreign Origin', async () => {
      const account = await signUp(server);
      const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: account.token, body: { password: account.password } });
      expect(setup.status).toBe(200);
      const totp = new TOTP({ secret: Secret.fromBase32(setup.body.secret), algorithm: 'SHA1', digits: 6, period: 30 });
      const enable = await server.call('POST', '/auth/mfa/totp/enable', {
        token: account.token,
        body: { code: totp.generate({ timestamp: server.clock.now() }) },
      });
      expect(enable.status).toBe(200);
      server.clock.advance(30);

      const signin = await server.call('POST', '/auth/signin', {
        body: { email: account.email, password: account.password },
        headers: { 'x-session-mode': 'cookie' },
      });
      expect(signin.status).toBe(200);
      expect(signin.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['totp'] });
      expect(signin.headers.getSetCookie().filter((c) => /signet-(access|refresh|csrf)=/.test(c))).toEqual([]);

      const code = totp.generate({ timestamp: server.clock.now() });
      const foreign = await server.call('POST', '/auth/mfa/verify', {
        body: { mfaToken: signin.body.mfaToken, code },
        headers: { 'x-session-mode': 'cookie', origin: EVIL },
      });
      expectError(foreign, 403, 'csrf_failed');

      const verify = await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: signin.body.mfaToken, code }, headers: { 'x-session-mode': 'cookie' } });
      expect(verify.status).toBe(200);
      expectCookieBody(verify.body, account.email);
      const cookies = parseSetCookies(verify.headers);
      expect(cookies.get(SECURE_NAMES.access)?.attrs.get('httponly')).toBe(true);
      expect(cookies.get(SECURE_NAMES.csrf)?.value).toBe(verify.body.csrfToken);
      expect((await meByCookie(server, cookies.get(SECURE_NAMES.access)!.value)).status).toBe(200);
    });
  });
});

describe.each(DIALECTS)('cookie names in explicit development mode on %s', (dialect: DialectName) => {
  let dev: TestServer;
  let devHttps: TestServer;
  beforeAll(async () => {
    dev = await startTestServer(dialect, { dev: true });
    devHttps = await startTestServer(dialect, { dev: true, publicUrl: 'https://signet.test', audience: 'https://signet.test' });
  });
  afterAll(async () => {
    await dev?.close();
    await devHttps?.close();
  });

  it('SIGNET_DEV on plain HTTP drops the __Host- prefix and Secure (HttpOnly, SameSite=Lax and Path=/ stay)', async () => {
    const account = await signUp(dev);
    const response = await dev.call('POST', '/auth/signin', {
      body: { email: account.email, password: account.password },
      headers: { 'x-session-mode': 'cookie' },
    });
    expect(response.status).toBe(200);
    expectCookieBody(response.body, account.email);
    const cookies = parseSetCookies(response.headers);
    expect([...cookies.keys()].filter((n) => n.startsWith('__Host-'))).toEqual([]);
    for (const name of [DEV_NAMES.access, DEV_NAMES.refresh, DEV_NAMES.csrf]) {
      const cookie = cookies.get(name);
      expect(cookie, `${name} is set`).toBeDefined();
      expect(cookie!.attrs.has('secure'), `${name} has no Secure`).toBe(false);
      expect(cookie!.attrs.get('path')).toBe('/');
      expect(String(cookie!.attrs.get('samesite')).toLowerCase()).toBe('lax');
    }
    expect(cookies.get(DEV_NAMES.device)?.attrs.has('secure')).toBe(false);
    expect(cookies.get(DEV_NAMES.access)!.attrs.get('httponly')).toBe(true);
    expect(cookies.get(DEV_NAMES.refresh)!.attrs.get('httponly')).toBe(true);
    expect(cookies.get(DEV_NAMES.csrf)!.attrs.has('httponly')).toBe(false);
    expect(cookies.get(DEV_NAMES.csrf)!.value).toBe(response.body.csrfToken);

    const me = await meByCookie(dev, cookies.get(DEV_NAMES.access)!.value, DEV_NAMES);
    expect(me.status).toBe(200);
    // CSRF rules are the same in development mode.
    const jar = Object.fromEntries([...cookies.values()].map((c) => [c.name, c.value]));
    const refused = await dev.call('PATCH', '/auth/me', { body: { name: 'Dev' }, headers: { cookie: cookieHeader(jar) } });
    expectError(refused, 403, 'csrf_failed');
    const ok = await dev.call('PATCH', '/auth/me', { body: { name: 'Dev' }, headers: { cookie: cookieHeader(jar), 'x-csrf-token': response.body.csrfToken } });
    expect(ok.status).toBe(200);
  });

  it('SIGNET_DEV with an https public URL keeps the __Host- prefix and Secure', async () => {
    const account = await signUp(devHttps);
    const response = await devHttps.call('POST', '/auth/signin', {
      body: { email: account.email, password: account.password },
      headers: { 'x-session-mode': 'cookie' },
    });
    expect(response.status).toBe(200);
    const cookies = parseSetCookies(response.headers);
    for (const name of [SECURE_NAMES.access, SECURE_NAMES.refresh, SECURE_NAMES.csrf]) {
      expect(cookies.get(name)?.attrs.get('secure'), `${name} Secure`).toBe(true);
    }
  });
});

describe.each(DIALECTS)('CORS with an allow-list on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { corsOrigins: [APP] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a preflight from an allowed origin is answered with that origin, credentials and the CSRF header', async () => {
    const response = await server.call('OPTIONS', '/auth/signin', {
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-csrf-token, x-session-mode' },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    const allowed = (response.headers.get('access-control-allow-headers') ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim());
    expect(allowed).toEqual(expect.arrayContaining(['x-csrf-token', 'content-type', 'x-session-mode']));
    const methods = (response.headers.get('access-control-allow-methods') ?? '')
      .toUpperCase()
      .split(',')
      .map((s) => s.trim());
    expect(methods).toContain('POST');
    expect((response.headers.get('vary') ?? '').toLowerCase()).toContain('origin');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('an origin not on the list gets no Access-Control-Allow-Origin, on preflights and on requests', async () => {
    const preflight = await server.call('OPTIONS', '/auth/signin', {
      headers: { origin: EVIL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const get = await server.call('GET', '/healthz', { headers: { origin: EVIL } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
    // A look-alike of an allowed origin is not on the list either.
    const own = await server.call('GET', '/healthz', { headers: { origin: 'https://app.example.com.evil.example' } });
    expect(own.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a simple request from the allowed origin gets the echo and credentials', async () => {
    const response = await server.call('GET', '/healthz', { headers: { origin: APP } });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('a cookie-authenticated POST from the allowed origin with the CSRF token succeeds; without it or from another origin it is 403', async () => {
    const account = await signUp(server);
    const session = await cookieSignIn(server, account, SECURE_NAMES, { origin: APP });
    const refused = await server.call('PATCH', '/auth/me', { body: { name: 'From app' }, headers: { cookie: cookieHeader(session.jar), origin: APP } });
    expectError(refused, 403, 'csrf_failed');
    const foreign = await server.call('PATCH', '/auth/me', {
      body: { name: 'From evil' },
      headers: { cookie: cookieHeader(session.jar), origin: EVIL, 'x-csrf-token': session.csrfToken },
    });
    expectError(foreign, 403, 'csrf_failed');
    const ok = await server.call('PATCH', '/auth/me', {
      body: { name: 'From app' },
      headers: { cookie: cookieHeader(session.jar), origin: APP, 'x-csrf-token': session.csrfToken },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.user.name).toBe('From app');
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    const signout = await server.call('POST', '/auth/signout-all', {
      headers: { cookie: cookieHeader(session.jar), origin: APP, 'x-csrf-token': session.csrfToken },
    });
    expect(signout.status).toBe(204);
  });
});

/** A raw HTTP/1.1 request (for request targets fetch cannot send). */
function rawGet(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.each(DIALECTS)('security response headers on %s', (dialect: DialectName) => {
  let server: TestServer;
  let proxied: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
    proxied = await startTestServer(dialect, { trustProxy: ['127.0.0.1'] });
  });
  afterAll(async () => {
    await server?.close();
    await proxied?.close();
  });

  it('every response carries X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and X-Request-Id', async () => {
    const account = await signUp(server);
    const responses = {
      health: await server.call('GET', '/healthz'),
      ready: await server.call('GET', '/readyz'),
      jwks: await server.call('GET', '/.well-known/jwks.json'),
      openapi: await server.call('GET', '/openapi.json'),
      metrics: await server.call('GET', '/metrics'),
      notFound: await server.call('GET', '/no-such-route'),
      methodNotAllowed: await server.call('DELETE', '/healthz'),
      unauthorized: await server.call('GET', '/auth/me'),
      badJson: await server.call('POST', '/auth/signin', { body: '{' }),
      signin: await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } }),
      page: await server.call('GET', '/forgot-password'),
      preflight: await server.call('OPTIONS', '/auth/signin', { headers: { origin: EVIL, 'access-control-request-method': 'POST' } }),
      oauth: await server.call('POST', '/auth/token', { body: { grant_type: 'nope' } }),
    };
    for (const [label, response] of Object.entries(responses)) {
      expect({ label, value: response.headers.get('x-content-type-options') }).toEqual({ label, value: 'nosniff' });
      expect({ label, value: response.headers.get('referrer-policy') }).toEqual({ label, value: 'no-referrer' });
      expect({ label, value: response.headers.get('x-request-id') }).toEqual({ label, value: expect.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/) });
    }
  });

  it('every /auth/* response has Cache-Control: no-store (success and error)', async () => {
    const account = await signUp(server);
    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    const responses = {
      signup: await server.call('POST', '/auth/signup', { body: newAccount() }),
      signin,
      wrongPassword: await server.call('POST', '/auth/signin', { body: { email: account.email, password: `${account.password}x` } }),
      refresh: await server.call('POST', '/auth/token/refresh', { body: { refreshToken: signin.body.refreshToken } }),
      me: await server.call('GET', '/auth/me', { token: signin.body.token }),
      sessions: await server.call('GET', '/auth/sessions', { token: signin.body.token }),
      missingToken: await server.call('GET', '/auth/me'),
      unknown: await server.call('GET', '/auth/no-such-route'),
      oauth: await server.call('POST', '/auth/token', { body: { grant_type: 'password', username: account.email, password: account.password } }),
    };
    for (const [label, response] of Object.entries(responses)) {
      expect({ label, value: response.headers.get('cache-control') }).toEqual({ label, value: 'no-store' });
    }
    expect(responses.signin.status).toBe(200);
    expect(responses.oauth.status).toBe(200);
  });

  it("HTML pages have a strict Content-Security-Policy (default-src 'none') and X-Frame-Options: DENY", async () => {
    for (const path of ['/forgot-password', '/reset-password?token=nope', '/verify-email?token=nope']) {
      const response = await server.call('GET', path);
      expect(response.headers.get('content-type'), path).toMatch(/^text\/html/);
      const csp = response.headers.get('content-security-policy') ?? '';
      const directives = csp.split(';').map((d) => d.trim());
      expect(directives, path).toContain("default-src 'none'");
      expect(csp, path).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
      expect(response.headers.get('x-frame-options'), path).toBe('DENY');
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(response.headers.get('referrer-policy'), path).toBe('no-referrer');
    }
  });

  it('HSTS is sent when a trusted proxy says the request came over HTTPS, and not otherwise', async () => {
    const viaProxy = await proxied.call('GET', '/healthz', { headers: { 'x-forwarded-proto': 'https' } });
    expect(viaProxy.status).toBe(200);
    const hsts = viaProxy.headers.get('strict-transport-security') ?? '';
    const maxAge = /max-age=(\d+)/.exec(hsts);
    expect(maxAge, hsts).not.toBeNull();
    expect(Number(maxAge![1])).toBeGreaterThanOrEqual(15_552_000);
    const authViaProxy = await proxied.call('GET', '/auth/me', { headers: { 'x-forwarded-proto': 'https' } });
    expect(authViaProxy.headers.get('strict-transport-security')).toBe(hsts);

    // Plain HTTP through the trusted proxy, or no word from it: no HSTS.
    expect((await proxied.call('GET', '/healthz', { headers: { 'x-forwarded-proto': 'http' } })).headers.get('strict-transport-security')).toBeNull();
    expect((await proxied.call('GET', '/healthz')).headers.get('strict-transport-security')).toBeNull();
    // X-Forwarded-Proto from a peer that is not a trusted proxy is ignored.
    expect((await server.call('GET', '/healthz', { headers: { 'x-forwarded-proto': 'https' } })).headers.get('strict-transport-security')).toBeNull();
    expect((await server.call('GET', '/healthz')).headers.get('strict-transport-security')).toBeNull();
  });

  it('a plain-HTTP request with an absolute https:// request target is not "served over HTTPS" (no HSTS)', async () => {
    const response = await rawGet(server.url, 'https://signet.test/healthz', { host: 'signet.test' });
    expect(response.status).toBe(200);
    expect(response.headers['strict-transport-security']).toBeUndefined();
  });
});
