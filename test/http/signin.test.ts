import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

describe.each(DIALECTS)('sign-up, sign-in and /auth/me on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  it('signs up, signs in by email or username, and answers /auth/me with the user', async () => {
    const account = newAccount({ name: '  Ada Lovelace ' });
    const signup = await server.call('POST', '/auth/signup', { body: account });
    expect(signup.status).toBe(201);
    expect(signup.headers.get('cache-control')).toBe('no-store');
    expect(signup.body).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 900,
      user: { email: account.email, username: account.username, name: 'Ada Lovelace', emailVerified: false, mfaEnabled: false },
    });
    expect(signup.body.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(signup.body)).not.toMatch(/argon2|password/i);

    const byEmail = await server.call('POST', '/auth/signin', { body: { email: account.email.toUpperCase(), password: account.password } });
    expect(byEmail.status).toBe(200);
    const byUsername = await server.call('POST', '/auth/signin', { body: { username: account.username.toUpperCase(), password: account.password } });
    expect(byUsername.status).toBe(200);

    const me = await server.call('GET', '/auth/me', { token: byUsername.body.token });
    expect(me.status).toBe(200);
    expect(me.body.user).toEqual(signup.body.user);
  });

  it('gives the same 401 body for an unknown user and a wrong password', async () => {
    const account = newAccount();
    await server.call('POST', '/auth/signup', { body: account });
    const wrong = await server.call('POST', '/auth/signin', { body: { email: account.email, password: 'not the password' } });
    const unknown = await server.call('POST', '/auth/signin', { body: { email: `nobody.${account.email}`, password: 'not the password' } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'Invalid credentials', code: 'invalid_credentials' });
    expect(unknown.body).toEqual(wrong.body);
    const headerNames = (h: Headers) => [...h.keys()].filter((k) => !['x-request-id', 'date'].includes(k)).sort();
    expect(headerNames(unknown.headers)).toEqual(headerNames(wrong.headers));
  });

  it('answers 409 to a second sign-up with the same email in another case, or the same username', async () => {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    const sameEmail = await server.call('POST', '/auth/signup', { body: { ...newAccount(), email: account.email.toUpperCase() } });
    expect(sameEmail.status).toBe(409);
    expect(sameEmail.body.code).toBe('email_taken');
    const sameUsername = await server.call('POST', '/auth/signup', { body: { ...newAccount(), username: account.username.toUpperCase() } });
    expect(sameUsername.status).toBe(409);
    expect(sameUsername.body.code).toBe('username_taken');
  });

  it('gives exactly one 201 and the rest 409 when the same email signs up concurrently', async () => {
    const email = newAccount().email;
    const results = await Promise.all(Array.from({ length: 8 }, () => server.call('POST', '/auth/signup', { body: { ...newAccount(), email } })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.code === 'email_taken')).toBe(true);
    const count = await server.signet.services.db.kysely
      .selectFrom('users')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('email_key', '=', email.toLowerCase())
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });

  it('refuses a common password with weak_password and a short one with validation_failed', async () => {
    const weak = await server.call('POST', '/auth/signup', { body: newAccount({ password: 'Password1' }) });
    expect(weak.status).toBe(400);
    expect(weak.body.code).toBe('weak_password');
    const short = await server.call('POST', '/auth/signup', { body: newAccount({ password: 'Zq9!x' }) });
    expect(short.status).toBe(400);
    expect(short.body.code).toBe('validation_failed');
    expect(short.body.details).toEqual([{ field: 'password', message: 'must be at least 8 characters' }]);
  });

  it('ignores unknown fields at sign-up (no mass assignment)', async () => {
    const response = await server.call('POST', '/auth/signup', { body: { ...newAccount(), emailVerified: true, id: 'mine', mfaEnabled: true } });
    expect(response.status).toBe(201);
    expect(response.body.user.emailVerified).toBe(false);
    expect(response.body.user.id).not.toBe('mine');
  });
});
