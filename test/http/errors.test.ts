import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { routeTable } from '../../src/http/app.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * The contract's "Errors", "Bearer routes" and "Response headers" sections, plus
 * the operational routes: every error has the contract body (or RFC 9457 problem
 * details on request), every response carries the security headers, and nothing
 * ever leaks a stack trace.
 */

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
};

const STACK_TRACE = /(?:\n|\\n)\s+at\s|\bat\s+[\w$.<>]+\s+\(|\.[cm]?[jt]s:\d+:\d+|node:internal/;
const MISSING_TOKEN_CHALLENGE = 'Bearer realm="signet"';
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="signet", error="invalid_token"';

/** Every route of the contract's table, as `METHOD path`. */
const CONTRACT_ROUTES = [
  'POST /auth/signup',
  'POST /auth/signin',
  'POST /auth/token/refresh',
  'POST /auth/token',
  'POST /auth/signout',
  'POST /auth/signout-all',
  'GET /auth/sessions',
  'DELETE /auth/sessions/:id',
  'GET /auth/me',
  'PATCH /auth/me',
  'POST /auth/password/change',
  'POST /auth/password/forgot',
  'POST /auth/password/reset',
  'POST /auth/email/verify',
  'POST /auth/email/resend',
  'POST /auth/mfa/totp/setup',
  'POST /auth/mfa/totp/enable',
  'POST /auth/mfa/totp/disable',
  'POST /auth/mfa/verify',
  'GET /.well-known/jwks.json',
  'GET /.well-known/openid-configuration',
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /openapi.json',
];

interface Reply {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

async function send(
  server: TestServer,
  method: string,
  path: string,
  init: { body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const response = await fetch(server.url + path, { method, headers: init.headers ?? {}, body: init.body });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: the assertions will say so */
  }
  return { status: response.status, body, text, headers: response.headers };
}

/** A GET through node:http, which sends header values byte for byte (fetch trims them). */
function rawGet(server: TestServer, path: string, headers: Record<string, string>): Promise<Reply> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'GET', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out.set(k, v);
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), text, headers: out });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function expectNoStackTrace(reply: Reply): void {
  expect(reply.text).not.toMatch(STACK_TRACE);
}

/** The contract's error body, exactly. */
function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
  expect(reply.body).toEqual({ statusCode: status, error: REASON[status], message: expect.any(String), code });
  expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  expectNoStackTrace(reply);
}

function allowed(reply: Reply): string[] {
  return (reply.headers.get('allow') ?? '')
    .split(',')
    .map((m) => m.trim().toUpperCase())
    .filter(Boolean);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe.each(DIALECTS)('errors, headers and operational routes on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  async function session() {
    const account = newAccount();
    const response = await server.call('POST', '/auth/signup', { body: account });
    expect(response.status).toBe(201);
    return { account, token: response.body.token as string, refreshToken: response.body.refreshToken as string, user: response.body.user };
  }

  describe('unknown routes and wrong methods', () => {
    it.each([
      ['GET', '/nope'],
      ['GET', '/auth'],
      ['GET', '/auth/nope'],
      ['POST', '/auth/nope'],
      ['POST', '/auth/signup/extra'],
      ['DELETE', '/.well-known/nope'],
      ['GET', '/auth/sessions/a/b'],
    ])('answers %s %s with 404 not_found and the contract body', async (method, path) => {
      const reply = await send(server, method, path);
      expectError(reply, 404, 'not_found');
      expect(reply.headers.get('allow')).toBeNull();
    });

    it.each([
      ['PUT', '/auth/me', 'GET'],
      ['DELETE', '/auth/me', 'GET'],
      ['GET', '/auth/signin', 'POST'],
      ['PATCH', '/auth/signin', 'POST'],
      ['GET', '/auth/signup', 'POST'],
      ['GET', '/auth/token/refresh', 'POST'],
      ['POST', '/healthz', 'GET'],
      ['DELETE', '/openapi.json', 'GET'],
      ['GET', '/auth/sessions/0192f0c4-0000-7000-8000-000000000000', 'DELETE'],
      ['POST', '/auth/sessions', 'GET'],
    ])('answers %s %s with 405 method_not_allowed and an Allow header listing %s', async (method, path, expected) => {
      const reply = await send(server, method, path, { headers: { authorization: 'Bearer not-checked-before-routing' } });
      expectError(reply, 405, 'method_not_allowed');
      const allow = allowed(reply);
      expect(allow).toContain(expected);
      expect(allow).not.toContain(method);
    });
  });

  describe('RFC 9457 problem details', () => {
    const PROBLEM = { accept: 'application/problem+json' };

    it('gives a validation error as problem details with code and details when asked', async () => {
      const reply = await send(server, 'POST', '/auth/signin', {
        body: JSON.stringify({ password: 7 }),
        headers: { ...PROBLEM, 'content-type': 'application/json' },
      });
      expect(reply.status).toBe(400);
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.body).toEqual({
        type: 'urn:signet:error:validation_failed',
        title: 'Bad Request',
        status: 400,
        detail: expect.any(String),
        code: 'validation_failed',
        details: expect.arrayContaining([{ field: 'password', message: expect.any(String) }]),
      });
      expectNoStackTrace(reply);
    });

    it.each([
      ['GET', '/nope', {}, 404, 'not_found'],
      ['PUT', '/auth/me', {}, 405, 'method_not_allowed'],
      ['GET', '/auth/me', {}, 401, 'missing_token'],
      ['GET', '/auth/me', { authorization: 'Bearer garbage' }, 401, 'invalid_token'],
      ['POST', '/auth/signin', { 'content-type': 'text/plain', body: '{}' }, 415, 'unsupported_media_type'],
      ['POST', '/auth/signin', { 'content-type': 'application/json', body: '{' }, 400, 'invalid_json'],
      ['POST', '/auth/signin', { 'content-type': 'application/json', body: `{"pad":"${'x'.repeat(17000)}"}` }, 413, 'payload_too_large'],
    ] as const)('gives %s %s (%#) as problem details: type urn:signet:error:<code>, title, status, detail, code', async (method, path, extra, status, code) => {
      const { body, ...headers } = extra as Record<string, string>;
      const reply = await send(server, method, path, { body, headers: { ...headers, ...PROBLEM } });
      expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.body).toMatchObject({ type: `urn:signet:error:${code}`, title: REASON[status], status, detail: expect.any(String), code });
      expect(Object.keys(reply.body).every((k) => ['type', 'title', 'status', 'detail', 'code', 'details', 'instance'].includes(k))).toBe(true);
      expect(reply.body).not.toHaveProperty('statusCode');
      expectNoStackTrace(reply);
      if (status === 405) expect(allowed(reply)).toContain('GET');
      if (code === 'missing_token') expect(reply.headers.get('www-authenticate')).toBe(MISSING_TOKEN_CHALLENGE);
      if (code === 'invalid_token') expect(reply.headers.get('www-authenticate')).toBe(INVALID_TOKEN_CHALLENGE);
    });

    it('keeps the contract body for clients that accept application/json or anything', async () => {
      for (const accept of ['application/json', '*/*']) {
        expectError(await send(server, 'GET', '/nope', { headers: { accept } }), 404, 'not_found');
      }
    });
  });

  describe('X-Request-Id', () => {
    it.each(['abc', 'A', 'req-123_4.5:6', '0192f0c4-7e3a-7b1c-8d2e-3f4a5b6c7d8e', 'x'.repeat(128)])(
      'echoes a valid incoming id (%s) on success and on error',
      async (id) => {
        expect((await send(server, 'GET', '/healthz', { headers: { 'x-request-id': id } })).headers.get('x-request-id')).toBe(id);
        expect((await send(server, 'GET', '/nope', { headers: { 'x-request-id': id } })).headers.get('x-request-id')).toBe(id);
        expect(
          (await send(server, 'POST', '/auth/signin', { body: '{', headers: { 'x-request-id': id, 'content-type': 'application/json' } })).headers.get(
            'x-request-id',
          ),
        ).toBe(id);
      },
    );

    it.each([
      ['129 characters', 'x'.repeat(129)],
      ['a space', 'abc def'],
      ['a slash', 'abc/def'],
      ['a semicolon', 'abc;def'],
      ['a comma', 'abc,def'],
      ['angle brackets', '<script>'],
      ['a quote', 'abc"def'],
      ['a Latin-1 letter', 'caf\u00e9'],
      ['an empty value', ''],
    ])('replaces an id with %s by a generated one', async (_what, id) => {
      for (const [method, path] of [
        ['GET', '/healthz'],
        ['GET', '/nope'],
      ]) {
        const reply = await send(server, method, path, { headers: { 'x-request-id': id } });
        const generated = reply.headers.get('x-request-id');
        expect(generated).toBeTruthy();
        expect(generated).not.toBe(id);
        expect(generated!.length).toBeLessThanOrEqual(128);
      }
    });

    it('generates a fresh id for every request that brings none', async () => {
      const ids = await Promise.all(Array.from({ length: 5 }, async () => (await send(server, 'GET', '/healthz')).headers.get('x-request-id')));
      expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
      expect(new Set(ids).size).toBe(5);
    });
  });

  describe('response headers', () => {
    it('sends nosniff, no-referrer and a request id on every response, and no-store on every /auth/* response', async () => {
      const { account, token, refreshToken } = await session();
      const second = await session();
      const json = { 'content-type': 'application/json' };
      const bearer = { authorization: `Bearer ${token}` };
      const requests: [string, string, { body?: string; headers?: Record<string, string> }, number][] = [
        ['GET', '/healthz', {}, 200],
        ['GET', '/readyz', {}, 200],
        ['GET', '/openapi.json', {}, 200],
        ['GET', '/.well-known/jwks.json', {}, 200],
        ['GET', '/.well-known/openid-configuration', {}, 200],
        ['GET', '/nope', {}, 404],
        ['POST', '/auth/signup', { body: JSON.stringify(newAccount()), headers: json }, 201],
        ['POST', '/auth/signin', { body: JSON.stringify({ email: account.email, password: account.password }), headers: json }, 200],
        ['POST', '/auth/signin', { body: JSON.stringify({ email: account.email, password: 'not the password' }), headers: json }, 401],
        ['POST', '/auth/token/refresh', { body: JSON.stringify({ refreshToken }), headers: json }, 200],
        ['POST', '/auth/token/refresh', { body: JSON.stringify({ refreshToken: 'x'.repeat(43) }), headers: json }, 401],
        ['GET', '/auth/me', { headers: bearer }, 200],
        ['GET', '/auth/sessions', { headers: bearer }, 200],
        ['GET', '/auth/me', {}, 401],
        ['GET', '/auth/me', { headers: { authorization: 'Bearer garbage' } }, 401],
        ['PUT', '/auth/me', {}, 405],
        ['GET', '/auth/nope', {}, 404],
        ['POST', '/auth/signup', { body: '{', headers: json }, 400],
        ['POST', '/auth/signup', { body: '{}', headers: json }, 400],
        ['POST', '/auth/signup', { body: '{}', headers: { 'content-type': 'text/plain' } }, 415],
        ['POST', '/auth/signup', { body: `{"pad":"${'x'.repeat(17000)}"}`, headers: json }, 413],
        ['GET', '/nope', { headers: { accept: 'application/problem+json' } }, 404],
        ['POST', '/auth/signout', { headers: { authorization: `Bearer ${second.token}` } }, 204],
      ];
      for (const [method, path, init, status] of requests) {
        const reply = await send(server, method, path, init);
        const what = `${method} ${path} → ${reply.status}`;
        expect(reply.status, what).toBe(status);
        expect(reply.headers.get('x-content-type-options'), what).toBe('nosniff');
        expect(reply.headers.get('referrer-policy'), what).toBe('no-referrer');
        expect(reply.headers.get('x-request-id'), what).toMatch(/^.{1,128}$/);
        if (path.startsWith('/auth/')) expect(reply.headers.get('cache-control'), what).toBe('no-store');
        expectNoStackTrace(reply);
      }
    });
  });

  describe('Bearer routes', () => {
    const BEARER_ROUTES: [string, string][] = [
      ['GET', '/auth/me'],
      ['GET', '/auth/sessions'],
      ['POST', '/auth/signout-all'],
      ['DELETE', '/auth/sessions/0192f0c4-0000-7000-8000-000000000000'],
    ];

    it.each(BEARER_ROUTES)('answers %s %s without Authorization with 401 missing_token and a bare challenge', async (method, path) => {
      const reply = await send(server, method, path);
      expectError(reply, 401, 'missing_token');
      expect(reply.headers.get('www-authenticate')).toBe(MISSING_TOKEN_CHALLENGE);
    });

    it('answers another scheme or an empty Bearer value with 401 missing_token, no error parameter', async () => {
      const { token } = await session();
      for (const authorization of [
        `Basic ${Buffer.from('user:pass').toString('base64')}`,
        'Basic xxx',
        `Token ${token}`,
        `Digest ${token}`,
        `${token}`,
        'Bearer',
        'Bearer ',
        'Bearer    ',
        'Bearer\t',
        '',
      ]) {
        const reply = await rawGet(server, '/auth/me', { authorization });
        expect(reply.status, JSON.stringify(authorization)).toBe(401);
        expectError(reply, 401, 'missing_token');
        expect(reply.headers.get('www-authenticate')).toBe(MISSING_TOKEN_CHALLENGE);
      }
    });

    it('answers POST /auth/signout with neither a token nor a refresh token with 401 missing_token', async () => {
      const reply = await send(server, 'POST', '/auth/signout');
      expectError(reply, 401, 'missing_token');
      expect(reply.headers.get('www-authenticate')).toBe(MISSING_TOKEN_CHALLENGE);
    });

    it('answers a garbage or forged bearer token with 401 invalid_token and error="invalid_token"', async () => {
      const { token, user } = await session();
      const [header, payload, signature] = token.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      const flipped = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1);
      const tokens: [string, string][] = [
        ['garbage', 'garbage'],
        ['three dots', 'a.b.c'],
        ['a tampered signature', `${header}.${payload}.${flipped}`],
        ['no signature', `${header}.${payload}.`],
        ['alg none', `${b64url({ alg: 'none', typ: 'at+jwt' })}.${payload}.`],
        ['claims of another user', `${header}.${b64url({ ...claims, sub: '0192f0c4-0000-7000-8000-000000000000' })}.${signature}`],
        ['a very long value', 'x'.repeat(8000)],
        ['a refresh token in its place', (await session()).refreshToken],
      ];
      for (const [what, value] of tokens) {
        for (const [method, path] of BEARER_ROUTES) {
          const reply = await send(server, method, path, { headers: { authorization: `Bearer ${value}` } });
          expect(reply.status, `${what} on ${method} ${path}`).toBe(401);
          expectError(reply, 401, 'invalid_token');
          expect(reply.headers.get('www-authenticate')).toBe(INVALID_TOKEN_CHALLENGE);
          expect(reply.text).not.toContain(value.slice(0, 40));
        }
      }
      // The real token still works: the refusals were about the tokens, not the routes.
      const me = await send(server, 'GET', '/auth/me', { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect(me.body.user.id).toBe(user.id);
    });

    it('answers a valid token whose session has ended with 401 invalid_token', async () => {
      const { token } = await session();
      expect((await send(server, 'POST', '/auth/signout-all', { headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
      const reply = await send(server, 'GET', '/auth/me', { headers: { authorization: `Bearer ${token}` } });
      expectError(reply, 401, 'invalid_token');
      expect(reply.headers.get('www-authenticate')).toBe(INVALID_TOKEN_CHALLENGE);
    });
  });

  describe('operational routes', () => {
    it.each(['/healthz', '/readyz'])('answers GET %s with 200 {status: "ok"}', async (path) => {
      const reply = await send(server, 'GET', path);
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
      expect(reply.body).toEqual({ status: 'ok' });
    });

    it('serves an OpenAPI 3.1 document with every implemented contract route and only served operations', async () => {
      const reply = await send(server, 'GET', '/openapi.json');
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
      const document = reply.body;
      expect(document.openapi).toMatch(/^3\.1\.\d+$/);
      expect(document.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });

      const served = new Set(routeTable(server.signet.services).map((r) => `${r.method} ${r.path}`));
      const implemented = CONTRACT_ROUTES.filter((r) => served.has(r));
      // The routes this suite itself exercises are implemented; the list only grows.
      expect(implemented).toEqual(
        expect.arrayContaining([
          'POST /auth/signup',
          'POST /auth/signin',
          'POST /auth/token/refresh',
          'GET /auth/me',
          'GET /healthz',
          'GET /readyz',
          'GET /openapi.json',
        ]),
      );
      for (const entry of implemented) {
        const [method, path] = entry.split(' ');
        const operation = document.paths?.[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
        expect(operation, `${entry} in /openapi.json`).toBeDefined();
        expect(Object.keys(operation.responses ?? {}).length, `${entry} responses`).toBeGreaterThan(0);
      }

      // And nothing is documented that the server does not route.
      const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
      for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
        // The admin API answers 404 by design until an admin key exists (test/admin/api.test.ts).
        if (path.startsWith('/admin/')) continue;
        for (const method of Object.keys(item).filter((k) => methods.includes(k))) {
          const concrete = path.replace(/\{\w+\}/g, '0192f0c4-0000-7000-8000-000000000000');
          const probe = await send(
            server,
            method.toUpperCase(),
            concrete,
            method === 'get' || method === 'head' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } },
          );
          expect(probe.body?.code, `${method.toUpperCase()} ${path} is documented but not routed`).not.toBe('not_found');
          expect(probe.body?.code, `${method.toUpperCase()} ${path} is documented but not routed`).not.toBe('method_not_allowed');
        }
      }
    });
  });

  describe('no stack traces, no 500s on odd requests', () => {
    it('answers odd requests without a 500, with a clean error body and no stack trace', async () => {
      const { token } = await session();
      const json = { 'content-type': 'application/json' };
      const requests: [string, string, { body?: string; headers?: Record<string, string> }][] = [
        ['GET', '/auth/%E0%A4%A', {}],
        ['GET', '/auth/sessions/..%2F..%2Fetc%2Fpasswd', {}],
        ['GET', `/${'a'.repeat(4000)}`, {}],
        ['POST', '/auth/signin?__proto__[polluted]=1&constructor[prototype][x]=1', { body: '{}', headers: json }],
        ['POST', '/auth/signup', { body: `${'['.repeat(8000)}${']'.repeat(8000)}`, headers: json }],
        ['POST', '/auth/signup', { body: `${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}`, headers: json }],
        ['POST', '/auth/signin', { body: '{"email": "a@example.com", "password": "\\ud800"}', headers: json }],
        ['POST', '/auth/signup', { body: JSON.stringify({ email: 'a@example.com', password: '\ud83e'.repeat(10) }), headers: json }],
        ['POST', '/auth/signin', { body: '{}', headers: { 'content-type': 'application/json; charset=utf-8; charset=latin1' } }],
        ['POST', '/auth/signin', { body: '{}', headers: { 'content-type': '' } }],
        ['POST', '/auth/token/refresh', { body: JSON.stringify({ refreshToken: '\u{1F600}'.repeat(100) }), headers: json }],
        ['DELETE', '/auth/sessions/not-a-uuid', { headers: { authorization: `Bearer ${token}` } }],
        ['DELETE', "/auth/sessions/1'%20OR%20'1'='1", { headers: { authorization: `Bearer ${token}` } }],
        ['DELETE', `/auth/sessions/${'9'.repeat(300)}`, { headers: { authorization: `Bearer ${token}` } }],
        ['OPTIONS', '/auth/signin', {}],
        ['GET', '/auth/me', { headers: { authorization: `Bearer ${'.'.repeat(200)}` } }],
      ];
      for (const [method, path, init] of requests) {
        const reply = await send(server, method, path, init);
        const what = `${method} ${path.slice(0, 60)} → ${reply.status} ${reply.text.slice(0, 200)}`;
        expect(reply.status, what).toBeLessThan(500);
        if (reply.status >= 400)
          expect(reply.body, what).toMatchObject({
            statusCode: reply.status,
            error: REASON[reply.status],
            code: expect.stringMatching(/^[a-z]+(?:_[a-z]+)*$/),
            message: expect.any(String),
          });
        expectNoStackTrace(reply);
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('answers an unexpected failure with 500 internal_error and nothing of the failure but the request id', async () => {
      const { account } = await session();
      const secret = 'boom password=hunter2';
      const failure = new Error(`${secret} at /srv/signet/src/core/users.ts:42:7`);
      const spy = vi.spyOn(server.signet.services.accounts, 'signIn').mockRejectedValue(failure);
      try {
        const body = JSON.stringify({ email: account.email, password: account.password });
        for (const accept of ['application/json', 'application/problem+json']) {
          const reply = await send(server, 'POST', '/auth/signin', {
            body,
            headers: { 'content-type': 'application/json', accept, 'x-request-id': 'req-500' },
          });
          expect(reply.status).toBe(500);
          expect(reply.body.code).toBe('internal_error');
          if (accept === 'application/json') {
            expect(reply.body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: expect.any(String), code: 'internal_error' });
          } else {
            expect(reply.body).toEqual({
              type: 'urn:signet:error:internal_error',
              title: 'Internal Server Error',
              status: 500,
              detail: expect.any(String),
              code: 'internal_error',
            });
          }
          expect(reply.headers.get('x-request-id')).toBe('req-500');
          expect(reply.text).not.toContain('boom');
          expect(reply.text).not.toContain('hunter2');
          expect(reply.text).not.toContain(account.password);
          expect(reply.text).not.toContain('users.ts');
          expectNoStackTrace(reply);
        }
        expect(spy).toHaveBeenCalled();
      } finally {
        spy.mockRestore();
      }
      expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
    });

    it('answers DELETE /auth/sessions/:id with a malformed id as 404 session_not_found', async () => {
      const { token } = await session();
      for (const id of ['not-a-uuid', '123', "1'%20OR%20'1'='1", '0192F0C4-0000-7000-8000-00000000000Z']) {
        const reply = await send(server, 'DELETE', `/auth/sessions/${id}`, { headers: { authorization: `Bearer ${token}` } });
        expect(reply.status, id).toBe(404);
        expectError(reply, 404, 'session_not_found');
      }
    });
  });
});
