import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Bad input at the HTTP edge (contract: "Requests" and "Errors"). Every refusal is
 * a clean 4xx with the contract's error body and a stable `code`, never a 500, and
 * a refused sign-up writes nothing: the same email signs up afterwards.
 */

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
};

const LIMIT = 16 * 1024;
const STACK_TRACE = /(?:\n|\\n)\s+at\s|\bat\s+[\w$.<>]+\s+\(|\.[cm]?[jt]s:\d+:\d+|node:internal/;

interface Reply {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

/** Exactly the bytes and headers given: no JSON encoding, no default content type. */
async function send(
  server: TestServer,
  path: string,
  init: { body?: string | Uint8Array | URLSearchParams; headers?: Record<string, string>; method?: string } = {},
): Promise<Reply> {
  const response = await fetch(server.url + path, { method: init.method ?? 'POST', headers: init.headers ?? {}, body: init.body });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: the assertions will say so */
  }
  return { status: response.status, body, text, headers: response.headers };
}

const json = (body: string | Uint8Array, headers: Record<string, string> = {}) => ({ body, headers: { 'content-type': 'application/json', ...headers } });

/** A request through node:http, for what fetch cannot send: chunked bodies, a Content-Length that is never honoured. */
function rawRequest(
  server: TestServer,
  path: string,
  options: { headers: Record<string, string>; chunks: (string | Buffer)[]; end: boolean; timeoutMs?: number },
): Promise<Reply> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'POST', headers: options.headers }, (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        const text = Buffer.concat(parts).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve({ status: res.statusCode ?? 0, body, text, headers });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    // Once the server has answered it may close the connection under an unread body.
    req.on('error', (error) => {
      if (!answered) {
        clearTimeout(timer);
        reject(error);
      }
    });
    for (const chunk of options.chunks) req.write(chunk);
    if (options.end) req.end();
  });
}

function expectNoStackTrace(reply: Reply): void {
  expect(reply.text).not.toMatch(STACK_TRACE);
}

/** The contract's error body, exactly: no extra members, `error` is the reason phrase. */
function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
  expect(reply.body).toEqual({ statusCode: status, error: REASON[status], message: expect.any(String), code });
  expect(reply.body.message.length).toBeGreaterThan(0);
  expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  expectNoStackTrace(reply);
}

/**
 * `400 validation_failed` with `details` of `{field, message}`; when `fields` is
 * given, exactly those fields are reported (every bad one, no good one).
 */
function expectValidationFailed(reply: Reply, fields?: string[]): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status: 400, code: 'validation_failed' });
  expect(reply.body).toEqual({ statusCode: 400, error: 'Bad Request', message: expect.any(String), code: 'validation_failed', details: expect.any(Array) });
  expect(reply.body.details.length).toBeGreaterThan(0);
  for (const detail of reply.body.details) expect(detail).toEqual({ field: expect.any(String), message: expect.any(String) });
  if (fields) expect([...new Set(reply.body.details.map((d: { field: string }) => d.field))].sort()).toEqual([...fields].sort());
  expectNoStackTrace(reply);
}

describe.each(DIALECTS)('bad input on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  /** A JSON request through the shared helper, with the raw text kept for the stack-trace check. */
  const post = async (path: string, body: unknown, headers?: Record<string, string>): Promise<Reply> => {
    const reply = await server.call('POST', path, { body, headers });
    return { ...reply, text: typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? null) };
  };
  const signUp = (body: unknown) => post('/auth/signup', body);
  const signIn = (body: unknown) => post('/auth/signin', body);
  const refresh = (body: unknown) => post('/auth/token/refresh', body);

  /** No partial write: the rejected attempt left the email (and username) free. */
  async function expectStillFree(account: Record<string, unknown>): Promise<void> {
    const again = await signUp(account);
    expect(again.status, `sign-up of ${String(account.email)} after a refusal: ${JSON.stringify(again.body)}`).toBe(201);
  }

  async function signedUp(overrides: Record<string, unknown> = {}) {
    const account = newAccount(overrides);
    const response = await signUp(account);
    expect(response.status).toBe(201);
    return { account, session: response.body };
  }

  describe('missing fields', () => {
    it('refuses a sign-up without email or password, listing both fields at once', async () => {
      const account = newAccount();
      expectValidationFailed(await signUp({}), ['email', 'password']);
      expectValidationFailed(await signUp({ email: account.email }), ['password']);
      expectValidationFailed(await signUp({ password: account.password, username: account.username }), ['email']);
      await expectStillFree(account);
    });

    it('refuses a sign-in without a password or without any identifier', async () => {
      const { account } = await signedUp();
      expectValidationFailed(await signIn({ email: account.email }), ['password']);
      expectValidationFailed(await signIn({ username: account.username }), ['password']);
      expectValidationFailed(await signIn({ password: account.password }));
      const none = await signIn({});
      expectValidationFailed(none);
      expect(none.body.details.map((d: { field: string }) => d.field)).toContain('password');
    });

    it('refuses a refresh without a refreshToken', async () => {
      expectValidationFailed(await refresh({}), ['refreshToken']);
    });

    it('lists every bad field of a sign-up at once', async () => {
      const account = newAccount();
      const reply = await signUp({ email: 'not-an-email', password: 'short', username: 'x', name: 'n'.repeat(101) });
      expectValidationFailed(reply, ['email', 'name', 'password', 'username']);
      await expectStillFree(account);
    });
  });

  describe('unknown fields', () => {
    it('ignores unknown fields at sign-up and never applies them (no mass assignment)', async () => {
      const account = newAccount();
      const response = await signUp({
        ...account,
        id: '00000000-0000-7000-8000-000000000000',
        emailVerified: true,
        email_verified: 1,
        mfaEnabled: true,
        role: 'admin',
        isAdmin: true,
        disabledAt: null,
        createdAt: '2000-01-01T00:00:00.000Z',
        passwordHash: '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA',
        password_hash: 'x',
      });
      expect(response.status).toBe(201);
      const { user } = response.body;
      expect(Object.keys(user).sort()).toEqual(['createdAt', 'email', 'emailVerified', 'id', 'mfaEnabled', 'name', 'updatedAt', 'username']);
      expect(user).toMatchObject({ email: account.email, username: account.username, emailVerified: false, mfaEnabled: false, name: null });
      expect(user.id).not.toBe('00000000-0000-7000-8000-000000000000');
      expect(user.createdAt).not.toBe('2000-01-01T00:00:00.000Z');
      // The password given is the one that works: the hash fields were not stored.
      expect((await signIn({ email: account.email, password: account.password })).status).toBe(200);
      const me = await server.call('GET', '/auth/me', { token: response.body.token });
      expect(me.body.user).toEqual(user);
    });

    it('ignores unknown fields at sign-in and refresh', async () => {
      const { account, session } = await signedUp();
      const signin = await signIn({ email: account.email, password: account.password, userId: 'someone-else', mfa: false, remember: true });
      expect(signin.status).toBe(200);
      expect(signin.body.user.id).toBe(session.user.id);
      const rotated = await refresh({ refreshToken: session.refreshToken, userId: 'someone-else', sessionId: 'x' });
      expect(rotated.status).toBe(200);
      expect(rotated.body.user.id).toBe(session.user.id);
    });
  });

  describe('wrong types', () => {
    const WRONG: [string, unknown][] = [
      ['an operator object', { $ne: null }],
      ['an object with a regex operator', { $regex: '.*' }],
      ['an array', ['a@example.com']],
      ['an empty array', []],
      ['a number', 42],
      ['a boolean', true],
      ['null', null],
    ];

    it('refuses every wrong type in every sign-up field with validation_failed naming that field', async () => {
      const account = newAccount({ name: 'Ada' });
      for (const field of ['email', 'password', 'username', 'name']) {
        for (const [what, value] of WRONG) {
          const reply = await signUp({ ...account, [field]: value });
          expect(reply.status, `${field} as ${what}`).toBe(400);
          expectValidationFailed(reply, [field]);
        }
      }
      await expectStillFree(account);
    });

    it('refuses wrong types at sign-in with validation_failed, never as credentials (no operator injection)', async () => {
      const { account } = await signedUp();
      for (const [what, value] of WRONG) {
        const byEmail = await signIn({ email: value, password: account.password });
        expect(byEmail.status, `email as ${what}`).toBe(400);
        expectValidationFailed(byEmail, ['email']);
        const byUsername = await signIn({ username: value, password: account.password });
        expect(byUsername.status, `username as ${what}`).toBe(400);
        expectValidationFailed(byUsername, ['username']);
        const password = await signIn({ email: account.email, password: value });
        expect(password.status, `password as ${what}`).toBe(400);
        expectValidationFailed(password, ['password']);
      }
    });

    it('refuses a refreshToken of the wrong type with validation_failed', async () => {
      const { session } = await signedUp();
      for (const [what, value] of WRONG) {
        const reply = await refresh({ refreshToken: value });
        expect(reply.status, `refreshToken as ${what}`).toBe(400);
        expectValidationFailed(reply, ['refreshToken']);
      }
      expect((await refresh({ refreshToken: [session.refreshToken] })).status).toBe(400);
      // The session was not touched by any of that.
      expect((await refresh({ refreshToken: session.refreshToken })).status).toBe(200);
    });
  });

  describe('__proto__ and constructor keys', () => {
    const isPolluted = () => {
      const probe: Record<string, unknown> = {};
      return ['emailVerified', 'isAdmin', 'polluted', 'email', 'password'].some((k) => k in probe) || Object.getPrototypeOf(probe) !== Object.prototype;
    };

    it('ignores (or cleanly refuses) __proto__ and constructor at sign-up, without polluting any prototype', async () => {
      const account = newAccount();
      const body = `{"__proto__": {"emailVerified": true, "isAdmin": true, "polluted": "yes"}, "constructor": {"prototype": {"polluted": "yes"}}, "email": ${JSON.stringify(account.email)}, "password": ${JSON.stringify(account.password)}, "username": ${JSON.stringify(account.username)}}`;
      const reply = await send(server, '/auth/signup', json(body));
      expect([201, 400]).toContain(reply.status);
      if (reply.status === 201) {
        expect(reply.body.user).toMatchObject({ email: account.email, emailVerified: false });
        expect(reply.body.user).not.toHaveProperty('isAdmin');
      } else {
        expectValidationFailed(reply);
        await expectStillFree(account);
      }
      expectNoStackTrace(reply);
      expect(isPolluted()).toBe(false);
    });

    it('does not read fields through a __proto__ key: a sign-up whose only fields sit under __proto__ is missing them', async () => {
      const account = newAccount();
      const body = `{"__proto__": {"email": ${JSON.stringify(account.email)}, "password": ${JSON.stringify(account.password)}}}`;
      expectValidationFailed(await send(server, '/auth/signup', json(body)), ['email', 'password']);
      const nested = `{"email": {"__proto__": {"toString": 1}}, "password": ${JSON.stringify(account.password)}}`;
      expectValidationFailed(await send(server, '/auth/signup', json(nested)), ['email']);
      const ctor = `{"email": ${JSON.stringify(account.email)}, "password": {"constructor": {"name": "String"}}}`;
      expectValidationFailed(await send(server, '/auth/signup', json(ctor)), ['password']);
      expect(isPolluted()).toBe(false);
      await expectStillFree(account);
    });

    it('does not sign in with credentials smuggled under __proto__ or constructor', async () => {
      const { account } = await signedUp();
      const viaProto = `{"__proto__": {"email": ${JSON.stringify(account.email)}}, "password": ${JSON.stringify(account.password)}}`;
      expectValidationFailed(await send(server, '/auth/signin', json(viaProto)));
      const viaConstructor = `{"constructor": {"prototype": {"email": ${JSON.stringify(account.email)}}}, "password": ${JSON.stringify(account.password)}}`;
      expectValidationFailed(await send(server, '/auth/signin', json(viaConstructor)));
      const nullProto = `{"__proto__": null, "email": ${JSON.stringify(account.email)}, "password": ${JSON.stringify(account.password)}}`;
      const withNullProto = await send(server, '/auth/signin', json(nullProto));
      expect([200, 400]).toContain(withNullProto.status);
      if (withNullProto.status === 400) expectValidationFailed(withNullProto);
      expectNoStackTrace(withNullProto);
      const refreshProto = `{"__proto__": {"refreshToken": "x"}, "constructor": "y"}`;
      expectValidationFailed(await send(server, '/auth/token/refresh', json(refreshProto)), ['refreshToken']);
      expect(isPolluted()).toBe(false);
    });
  });

  describe('malformed JSON, empty bodies, bodies that are not an object', () => {
    const MALFORMED = [
      '{"email": "a@example.com",',
      "{'email': 'a@example.com'}",
      '{"email": "a@example.com"}}',
      '{email: 1}',
      'undefined',
      'NaN',
      '{"a": 01}',
      '{"a": "\\x41"}',
      '\u0000',
      '{"a":1}{"b":2}',
    ];

    it.each(['/auth/signup', '/auth/signin', '/auth/token/refresh'])('refuses malformed JSON on %s with invalid_json', async (path) => {
      for (const body of MALFORMED) {
        const reply = await send(server, path, json(body));
        expect(reply.status, `body ${JSON.stringify(body)}`).toBe(400);
        expectError(reply, 400, 'invalid_json');
      }
    });

    it('refuses a sign-up whose JSON is cut off with invalid_json and writes nothing', async () => {
      const account = newAccount();
      const full = JSON.stringify(account);
      expectError(await send(server, '/auth/signup', json(full.slice(0, -1))), 400, 'invalid_json');
      await expectStillFree(account);
    });

    it.each(['/auth/signup', '/auth/signin', '/auth/token/refresh'])('refuses an empty or blank body on %s with invalid_json', async (path) => {
      expectError(await send(server, path, json('')), 400, 'invalid_json');
      expectError(await send(server, path, json('   \r\n\t ')), 400, 'invalid_json');
      // No body at all, no content type: still not a JSON object.
      expectError(await send(server, path, {}), 400, 'invalid_json');
    });

    it.each(['/auth/signup', '/auth/signin', '/auth/token/refresh'])('refuses JSON that is not an object on %s with validation_failed', async (path) => {
      const account = newAccount();
      for (const body of ['null', 'true', 'false', '42', '-1.5e3', '"a string"', '[]', `[${JSON.stringify(account)}]`, ' [1, 2] ']) {
        const reply = await send(server, path, json(body));
        expect(reply.status, `body ${body}`).toBe(400);
        expectValidationFailed(reply);
      }
      if (path === '/auth/signup') await expectStillFree(account);
    });

    it('refuses invalid UTF-8 with invalid_json and writes nothing', async () => {
      const account = newAccount();
      const [local, domain] = account.email.split('@');
      const enc = (s: string) => Buffer.from(s, 'utf8');
      const bodies: [string, Buffer][] = [
        ['a lone 0xFF byte', Buffer.concat([enc(`{"email":"${local}`), Buffer.from([0xff]), enc(`@${domain}","password":"${account.password}"}`)])],
        [
          'an overlong "/" (0xC0 0xAF)',
          Buffer.concat([enc(`{"email":"${account.email}","password":"${account.password}`), Buffer.from([0xc0, 0xaf]), enc('"}')]),
        ],
        [
          'an encoded surrogate (0xED 0xA0 0x80)',
          Buffer.concat([enc(`{"email":"${account.email}","password":"${account.password}`), Buffer.from([0xed, 0xa0, 0x80]), enc('"}')]),
        ],
        [
          'a truncated sequence (0xE2 0x82)',
          Buffer.concat([enc(`{"email":"${account.email}","password":"${account.password}`), Buffer.from([0xe2, 0x82]), enc('"}')]),
        ],
        ['Latin-1 text', Buffer.from(`{"email":"${account.email}","password":"${account.password}\u00e9"}`, 'latin1')],
      ];
      for (const [what, bytes] of bodies) {
        const reply = await send(server, '/auth/signup', json(new Uint8Array(bytes)));
        expect(reply.status, what).toBe(400);
        expectError(reply, 400, 'invalid_json');
        const signin = await send(server, '/auth/signin', json(new Uint8Array(bytes)));
        expect(signin.status, `sign-in with ${what}`).toBe(400);
        expectError(signin, 400, 'invalid_json');
      }
      await expectStillFree(account);
    });
  });

  describe('content type', () => {
    it.each(['/auth/signup', '/auth/signin', '/auth/token/refresh'])(
      'refuses another or a missing content type on %s with 415 unsupported_media_type',
      async (path) => {
        const account = newAccount();
        const body = JSON.stringify(account);
        const cases: [string, { body: string | Uint8Array | URLSearchParams; headers?: Record<string, string> }][] = [
          ['text/plain', { body, headers: { 'content-type': 'text/plain' } }],
          ['text/plain; charset=utf-8', { body, headers: { 'content-type': 'text/plain; charset=utf-8' } }],
          ['a form post', { body: new URLSearchParams({ email: account.email, password: account.password }) }],
          ['multipart/form-data', { body, headers: { 'content-type': 'multipart/form-data; boundary=x' } }],
          ['application/xml', { body, headers: { 'content-type': 'application/xml' } }],
          ['application/json-patch+json', { body, headers: { 'content-type': 'application/json-patch+json' } }],
          ['application/jsonx', { body, headers: { 'content-type': 'application/jsonx' } }],
          ['no content type', { body: new TextEncoder().encode(body) }],
        ];
        for (const [what, init] of cases) {
          const reply = await send(server, path, init);
          expect(reply.status, what).toBe(415);
          expectError(reply, 415, 'unsupported_media_type');
        }
        if (path === '/auth/signup') await expectStillFree(account);
      },
    );

    it('refuses a non-JSON body on a body-less /auth/* route (POST /auth/signout-all) with 415, and ends no session', async () => {
      const { session } = await signedUp();
      const bearer = { authorization: `Bearer ${session.token}` };
      expectError(
        await send(server, '/auth/signout-all', { body: 'sign me out', headers: { ...bearer, 'content-type': 'text/plain' } }),
        415,
        'unsupported_media_type',
      );
      expectError(await send(server, '/auth/signout-all', { body: new URLSearchParams({ all: '1' }), headers: bearer }), 415, 'unsupported_media_type');
      expectError(await send(server, '/auth/signout-all', { body: new TextEncoder().encode('{}'), headers: bearer }), 415, 'unsupported_media_type');
      expect((await server.call('GET', '/auth/me', { token: session.token })).status).toBe(200);
    });

    it('accepts application/json with charset=utf-8 and in any case', async () => {
      for (const type of ['application/json; charset=utf-8', 'APPLICATION/JSON', 'Application/Json; Charset=UTF-8', 'application/json;charset="utf-8"']) {
        const account = newAccount();
        const signup = await send(server, '/auth/signup', { body: JSON.stringify(account), headers: { 'content-type': type } });
        expect(signup.status, type).toBe(201);
        const signin = await send(server, '/auth/signin', {
          body: JSON.stringify({ email: account.email, password: account.password }),
          headers: { 'content-type': type },
        });
        expect(signin.status, type).toBe(200);
        const rotated = await send(server, '/auth/token/refresh', {
          body: JSON.stringify({ refreshToken: signin.body.refreshToken }),
          headers: { 'content-type': type },
        });
        expect(rotated.status, type).toBe(200);
      }
    });
  });

  describe('body size', () => {
    /** A sign-up body padded with an ignored field to exactly `size` bytes. */
    const padded = (account: Record<string, unknown>, size: number) => {
      const base = JSON.stringify({ ...account, pad: '' });
      const body = `${base.slice(0, -2)}${'x'.repeat(size - base.length)}"}`;
      expect(Buffer.byteLength(body)).toBe(size);
      return body;
    };

    it('accepts a body of exactly 16 KiB and refuses one byte more with 413 payload_too_large', async () => {
      const account = newAccount();
      const over = await send(server, '/auth/signup', json(padded(account, LIMIT + 1)));
      expectError(over, 413, 'payload_too_large');
      expectError(await send(server, '/auth/signin', json(padded({ email: account.email, password: account.password }, LIMIT + 1))), 413, 'payload_too_large');
      expectError(await send(server, '/auth/token/refresh', json(padded({ refreshToken: 'x' }, LIMIT + 1))), 413, 'payload_too_large');
      const exact = await send(server, '/auth/signup', json(padded(account, LIMIT)));
      expect(exact.status).toBe(201);
    });

    it('refuses a declared Content-Length over the limit before reading the body', async () => {
      const account = newAccount();
      // 1 MiB is promised but only a few bytes are sent: only a decision from the header can answer.
      const reply = await rawRequest(server, '/auth/signup', {
        headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) },
        chunks: ['{"email":'],
        end: false,
        timeoutMs: 3000,
      });
      expectError(reply, 413, 'payload_too_large');
      const justOver = await rawRequest(server, '/auth/signin', {
        headers: { 'content-type': 'application/json', 'content-length': String(LIMIT + 1) },
        chunks: ['{'],
        end: false,
        timeoutMs: 3000,
      });
      expectError(justOver, 413, 'payload_too_large');
      await expectStillFree(account);
    });

    it('refuses a declared Content-Length over the limit on a body-less /auth/* route (POST /auth/signout-all), and ends no session', async () => {
      const { session } = await signedUp();
      const reply = await rawRequest(server, '/auth/signout-all', {
        headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/json', 'content-length': String(1024 * 1024) },
        chunks: ['{'],
        end: false,
        timeoutMs: 3000,
      });
      expectError(reply, 413, 'payload_too_large');
      expect((await server.call('GET', '/auth/me', { token: session.token })).status).toBe(200);
    });

    it('refuses a chunked body (no Content-Length) once it passes the limit, and accepts a small chunked one', async () => {
      const account = newAccount();
      const body = padded(account, LIMIT + 4096);
      const chunks = body.match(/[\s\S]{1,1024}/g) ?? [];
      const reply = await rawRequest(server, '/auth/signup', {
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        chunks,
        end: true,
      });
      expectError(reply, 413, 'payload_too_large');
      await expectStillFree(account);

      const small = newAccount();
      const text = JSON.stringify(small);
      const ok = await rawRequest(server, '/auth/signup', {
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        chunks: [text.slice(0, 10), text.slice(10, 30), text.slice(30)],
        end: true,
      });
      expect(ok.status).toBe(201);
      expect(ok.body.user.email).toBe(small.email);
    });
  });

  describe('string contents', () => {
    it('refuses empty strings in sign-up fields with validation_failed', async () => {
      const account = newAccount();
      expectValidationFailed(await signUp({ ...account, email: '' }), ['email']);
      expectValidationFailed(await signUp({ ...account, email: '   ' }), ['email']);
      expectValidationFailed(await signUp({ ...account, password: '' }), ['password']);
      expectValidationFailed(await signUp({ ...account, username: '' }), ['username']);
      expectValidationFailed(await signUp({ ...account, username: '   ' }), ['username']);
      await expectStillFree(account);
    });

    it('refuses empty strings at sign-in with validation_failed', async () => {
      const { account } = await signedUp();
      expectValidationFailed(await signIn({ email: '', password: account.password }), ['email']);
      expectValidationFailed(await signIn({ username: '', password: account.password }), ['username']);
      expectValidationFailed(await signIn({ email: account.email, password: '' }), ['password']);
    });

    it('refuses an empty refreshToken cleanly (validation_failed or invalid_refresh_token)', async () => {
      const reply = await refresh({ refreshToken: '' });
      expect(['400 validation_failed', '401 invalid_refresh_token']).toContain(`${reply.status} ${reply.body?.code}`);
      expectNoStackTrace(reply);
    });

    it('enforces the maximum lengths: email 254, username 32, name 100, password 256 code points', async () => {
      const account = newAccount();
      const emailOf = (length: number) => {
        const suffix = `.${account.username}@example.com`;
        return `${'e'.repeat(length - suffix.length)}${suffix}`;
      };
      const longEmail = emailOf(255);
      expect(longEmail).toHaveLength(255);
      expectValidationFailed(await signUp({ ...account, email: longEmail }), ['email']);
      expectValidationFailed(await signUp({ ...account, username: 'u'.repeat(33) }), ['username']);
      expectValidationFailed(await signUp({ ...account, username: 'ab' }), ['username']);
      expectValidationFailed(await signUp({ ...account, name: '🦊'.repeat(101) }), ['name']);
      expectValidationFailed(await signUp({ ...account, name: 'n'.repeat(101) }), ['name']);
      const tooLong = `${'🦊'.repeat(257)}`;
      const passwordReply = await signUp({ ...account, password: tooLong });
      expectValidationFailed(passwordReply, ['password']);
      expect(passwordReply.text).not.toContain('🦊🦊🦊');
      await expectStillFree(account);

      // Each limit itself is accepted.
      const atLimit = newAccount({ username: `u${'9'.repeat(25)}${account.username.slice(-6)}`, name: 'n'.repeat(100), password: '🦉'.repeat(256) });
      atLimit.email = `${'e'.repeat(254 - `.${atLimit.username}@example.com`.length)}.${atLimit.username}@example.com`;
      expect(atLimit.email).toHaveLength(254);
      expect(atLimit.username).toHaveLength(32);
      const accepted = await signUp(atLimit);
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(201);
      expect(accepted.body.user).toMatchObject({ email: atLimit.email, username: atLimit.username, name: atLimit.name });
      expect((await signIn({ email: atLimit.email, password: atLimit.password })).status).toBe(200);
      // Characters are code points: 100 emoji (200 UTF-16 units) is a 100-character name.
      const emojiName = await signUp(newAccount({ name: '🦊'.repeat(100) }));
      expect(emojiName.status, JSON.stringify(emojiName.body)).toBe(201);
      expect(emojiName.body.user.name).toBe('🦊'.repeat(100));
    });

    it('refuses over-long identifiers and passwords at sign-in with validation_failed', async () => {
      const { account } = await signedUp();
      expectValidationFailed(await signIn({ email: `${'e'.repeat(250)}@example.com`, password: account.password }), ['email']);
      expectValidationFailed(await signIn({ username: 'u'.repeat(33), password: account.password }), ['username']);
      expectValidationFailed(await signIn({ email: account.email, password: 'p'.repeat(257) }), ['password']);
    });

    it('refuses control characters and NUL bytes in every sign-up field', async () => {
      const account = newAccount({ name: 'Ada Lovelace' });
      const [local, domain] = account.email.split('@');
      const cases: [string, string][] = [
        ['email', `${local}\u0000@${domain}`],
        ['email', `${local}@${domain}\u0000`],
        ['email', `${local}\u0007@${domain}`],
        ['username', `${account.username.slice(0, 4)}\u0000${account.username.slice(4)}`],
        ['username', `${account.username}\u001b`],
        ['name', 'Ada\u0000Lovelace'],
        ['name', '\u001b[31mAda\u001b[0m'],
        ['name', 'Ada\nLovelace'],
        ['name', 'Ada\u007f'],
        ['password', `${account.password}\u0000`],
        ['password', `\u0000${account.password}`],
        ['password', `${account.password.slice(0, 5)}\u0001${account.password.slice(5)}`],
        ['password', `${account.password}\u007f`],
        ['password', `${account.password}\n`],
        ['password', `\t${account.password}`],
      ];
      for (const [field, value] of cases) {
        const reply = await signUp({ ...account, [field]: value });
        expect(reply.status, `${field} ${JSON.stringify(value)}`).toBe(400);
        expectValidationFailed(reply, [field]);
      }
      await expectStillFree(account);
    });

    it('refuses control characters and NUL bytes at sign-in with validation_failed, not as wrong credentials', async () => {
      const { account } = await signedUp();
      const [local, domain] = account.email.split('@');
      expectValidationFailed(await signIn({ email: `${local}\u0000@${domain}`, password: account.password }), ['email']);
      expectValidationFailed(await signIn({ username: `${account.username}\u0000`, password: account.password }), ['username']);
      expectValidationFailed(await signIn({ email: account.email, password: `${account.password}\u0000` }), ['password']);
      expectValidationFailed(await refresh({ refreshToken: 'abc\u0000def' }), ['refreshToken']);
    });

    it('trims white space around email, username and name, and stores the trimmed values', async () => {
      const account = newAccount();
      const response = await signUp({
        email: ` \t${account.email}\r\n `,
        username: `\n${account.username}  `,
        name: '\t  Ada Lovelace \n',
        password: account.password,
      });
      expect(response.status).toBe(201);
      expect(response.body.user).toMatchObject({ email: account.email, username: account.username, name: 'Ada Lovelace' });
      expect((await signIn({ email: `  ${account.email}\t`, password: account.password })).status).toBe(200);
      expect((await signIn({ username: `\t${account.username}\n`, password: account.password })).status).toBe(200);
      const again = await signUp({ ...newAccount(), email: `  ${account.email}  ` });
      expect({ status: again.status, code: again.body.code }).toEqual({ status: 409, code: 'email_taken' });
    });

    it('never trims a password: the spaces are part of it', async () => {
      const account = newAccount();
      const spaced = `  ${account.password}  `;
      expect((await signUp({ ...account, password: spaced })).status).toBe(201);
      const trimmed = await signIn({ email: account.email, password: account.password });
      expectError(trimmed, 401, 'invalid_credentials');
      expect((await signIn({ email: account.email, password: spaced })).status).toBe(200);
      expectError(await signIn({ email: account.email, password: ` ${account.password} ` }), 401, 'invalid_credentials');
    });

    it('refuses email addresses a browser would refuse (WHATWG rule)', async () => {
      const account = newAccount();
      const [local, domain] = account.email.split('@');
      const bad = [
        local,
        `${local}@`,
        `@${domain}`,
        `${local} x@${domain}`,
        `${local}@exa mple.com`,
        `a@b@c`,
        `${local}@${local}@${domain}`,
        `a@-b.com`,
        `${local}@-${domain}`,
        `${local}@${domain.replace('.com', '-.com')}`,
        `${local}@.${domain}`,
        `${local}@${domain.replace('.', '..')}`,
        `${local}@${domain}.`,
        `"${local}"@${domain}`,
        `${local}@[127.0.0.1]`,
        `${local}(comment)@${domain}`,
        `${local}@${'l'.repeat(64)}.com`,
        `ädä.${local}@${domain}`,
      ];
      for (const email of bad) {
        const reply = await signUp({ ...account, email });
        expect(reply.status, email).toBe(400);
        expectValidationFailed(reply, ['email']);
        const signin = await signIn({ email, password: account.password });
        expect(signin.status, `sign-in as ${email}`).toBe(400);
        expectValidationFailed(signin, ['email']);
      }
      await expectStillFree(account);
    });

    it('accepts email addresses a browser would accept (WHATWG rule), stored as given', async () => {
      const id = newAccount().username.slice(2);
      for (const email of [
        `O'Brien+tag.${id}@Mail.Example.COM`,
        `${id}@localhost`,
        `x!#$%&*=?^_\`{|}~-${id}@sub-domain.example`,
        `${id}@${'l'.repeat(63)}.example`,
      ]) {
        const response = await signUp({ ...newAccount(), email });
        expect(response.status, email).toBe(201);
        expect(response.body.user.email).toBe(email);
      }
    });

    it('refuses a sign-in that gives both email and username, or neither, even with the right password', async () => {
      const { account } = await signedUp();
      expectValidationFailed(await signIn({ email: account.email, username: account.username, password: account.password }));
      expectValidationFailed(await signIn({ password: account.password }));
      expectValidationFailed(await signIn({ email: account.email, username: `other_${account.username}`.slice(0, 32), password: account.password }));
    });
  });

  describe('passwords in code points after NFKC', () => {
    it('counts a password of 8 emoji as 8 characters, and 7 emoji as too short', async () => {
      const account = newAccount();
      const seven = '🦊🐙🦉🐢🦋🐝🦀';
      const short = await signUp({ ...account, password: seven });
      expectValidationFailed(short, ['password']);
      await expectStillFree({ ...account, password: `${seven}🐳` });
      expect((await signIn({ email: account.email, password: `${seven}🐳` })).status).toBe(200);
    });

    it('counts the length after NFKC: a ligature that expands passes, combining marks that compose do not', async () => {
      // "ﬁ" + 6 = 7 code points as sent, "fi" + 6 = 8 after NFKC.
      const expands = newAccount({ password: '\ufb01ord-q9' });
      expect(Array.from(expands.password)).toHaveLength(7);
      expect((await signUp(expands)).status).toBe(201);
      expect((await signIn({ email: expands.email, password: 'fiord-q9' })).status).toBe(200);
      // Four "e" + U+0301 = 8 code points as sent, four "é" = 4 after NFKC.
      const composes = newAccount({ password: 'e\u0301'.repeat(4) });
      expect(Array.from(composes.password)).toHaveLength(8);
      expectValidationFailed(await signUp(composes), ['password']);
    });

    it('hashes the NFKC form: a ligature password signs in with its plain form and vice versa', async () => {
      const ligature = newAccount();
      ligature.password = `\ufb01sh-otter-${ligature.username}`;
      expect((await signUp(ligature)).status).toBe(201);
      expect((await signIn({ email: ligature.email, password: ligature.password })).status).toBe(200);
      expect((await signIn({ email: ligature.email, password: ligature.password.replace('\ufb01', 'fi') })).status).toBe(200);
      expectError(await signIn({ email: ligature.email, password: ligature.password.replace('\ufb01', 'fl') }), 401, 'invalid_credentials');

      const plain = newAccount();
      plain.password = `Ｆullwidth-${plain.username}-fi`;
      expect((await signUp(plain)).status).toBe(201);
      expect((await signIn({ email: plain.email, password: `Fullwidth-${plain.username}-\ufb01` })).status).toBe(200);
      expect((await signIn({ email: plain.email, password: `Fullwidth-${plain.username}-fi` })).status).toBe(200);
    });
  });
});
