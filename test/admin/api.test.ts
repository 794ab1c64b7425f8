import { hash as bcrypt } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_CLAIM } from '../../src/core/admin/claims.js';
import { InsufficientRoleError, appMetadataOf, createVerifier, hasRole, rolesOf } from '../../src/verify/index.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
}

describe.each(DIALECTS)('the admin API on %s', (dialect) => {
  let server: TestServer;
  let readKey: string;
  let writeKey: string;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  it('does not exist while no admin key does', async () => {
    const response = await server.call('GET', '/admin/users');
    expect(response.status).toBe(404);
    expect(response.body.code).toBe('not_found');
    const keys = server.signet.services.admin.keys;
    readKey = (await keys.create({ name: 'dashboard', scope: 'read' }, 'test')).secret;
    writeKey = (await keys.create({ name: 'provisioning', scope: 'write' }, 'test')).secret;
    expect(readKey).toMatch(/^sgn_admin_[A-Za-z0-9_-]{43}$/);
    expect((await server.call('GET', '/admin/users', { token: readKey })).status).toBe(200);
  });

  it('refuses a missing key, a user access token, a forged key, and a read key on a write route', async () => {
    const missing = await server.call('GET', '/admin/users');
    expect(missing.status).toBe(401);
    expect(missing.body.code).toBe('missing_token');
    const signup = await server.call('POST', '/auth/signup', { body: newAccount() });
    const asUser = await server.call('GET', '/admin/users', { token: signup.body.token });
    expect(asUser.status).toBe(401);
    expect(asUser.body.code).toBe('invalid_token');
    const forged = await server.call('GET', '/admin/users', { token: `sgn_admin_${'A'.repeat(43)}` });
    expect(forged.status).toBe(401);
    const readOnly = await server.call('POST', '/admin/users', { token: readKey, body: { email: 'x@example.com', password: 'tidy-otter-lamp-77' } });
    expect(readOnly.status).toBe(403);
    expect(readOnly.body.code).toBe('insufficient_scope');
    // …and an admin key is no access token on the public routes.
    const me = await server.call('GET', '/auth/me', { token: writeKey });
    expect(me.status).toBe(401);
    expect(me.body.code).toBe('invalid_token');
  });

  it('creates a user with roles and app data that ride in access tokens, changed at the next refresh', async () => {
    const account = newAccount();
    const created = await server.call('POST', '/admin/users', {
      token: writeKey,
      body: { email: account.email, password: account.password, roles: ['editor', 'admin'], appMetadata: { plan: 'pro', seats: 3 } },
    });
    expect(created.status).toBe(201);
    expect(created.body.user).toMatchObject({ email: account.email, roles: ['admin', 'editor'], appMetadata: { plan: 'pro', seats: 3 }, disabled: false });
    expect(JSON.stringify(created.body)).not.toMatch(/argon2|hash/i);

    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.status).toBe(200);
    expect(claims(signin.body.token)).toMatchObject({ roles: ['admin', 'editor'], [APP_CLAIM]: { plan: 'pro', seats: 3 } });

    const patched = await server.call('PATCH', `/admin/users/${created.body.user.id}`, { token: writeKey, body: { roles: ['viewer'], appMetadata: {} } });
    expect(patched.status).toBe(200);
    expect(patched.body.user.roles).toEqual(['viewer']);
    const refreshed = await server.call('POST', '/auth/token/refresh', { body: { refreshToken: signin.body.refreshToken } });
    expect(refreshed.status).toBe(200);
    const after = claims(refreshed.body.token);
    expect(after.roles).toEqual(['viewer']);
    expect(after[APP_CLAIM]).toBeUndefined();

    await server.signet.services.audit.flush();
    const events = await server.call('GET', `/admin/audit?user=${encodeURIComponent(account.email)}`, { token: readKey });
    expect(events.status).toBe(200);
    const created_ = events.body.events.find((e: { event: string }) => e.event === 'admin.user_created');
    expect(created_.details.actor).toMatch(/^admin_key:/);
  });

  it('lets signet/verify read the roles and app data, and require a role', async () => {
    const account = newAccount();
    await server.call('POST', '/admin/users', {
      token: writeKey,
      body: { email: account.email, password: account.password, roles: ['billing'], appMetadata: { tier: 2 } },
    });
    const { token } = (await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).body as { token: string };
    const base = {
      issuer: 'http://signet.test',
      audience: 'http://signet.test',
      algorithms: ['RS256' as const],
      jwksUri: `${server.url}/.well-known/jwks.json`,
    };
    const claims = await createVerifier({ ...base, requiredRoles: ['billing'] }).verify(token);
    expect(rolesOf(claims)).toEqual(['billing']);
    expect(hasRole(claims, 'billing')).toBe(true);
    expect(appMetadataOf(claims)).toEqual({ tier: 2 });
    await expect(createVerifier({ ...base, requiredRoles: ['admin'] }).verify(token)).rejects.toBeInstanceOf(InsufficientRoleError);
  });

  it('validates roles and app data on write, without a partial write', async () => {
    const account = newAccount();
    const user = (await server.call('POST', '/admin/users', { token: writeKey, body: { email: account.email, password: account.password } })).body.user;
    for (const body of [
      { roles: ['Not A Role'] },
      { roles: Array.from({ length: 11 }, (_, i) => `r${i}`) },
      { appMetadata: { big: 'x'.repeat(1100) } },
      { appMetadata: { a: { b: { c: { d: { e: 1 } } } } } },
      { name: 'New name', roles: ['bad role'] },
    ]) {
      const response = await server.call('PATCH', `/admin/users/${user.id}`, { token: writeKey, body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.code).toBe('validation_failed');
    }
    const unchanged = await server.call('GET', `/admin/users/${user.id}`, { token: readKey });
    expect(unchanged.body.user).toMatchObject({ name: null, roles: [], appMetadata: {} });
  });

  it('disables a user: sign-in answers as a wrong password, sessions end; enabling lets them back', async () => {
    const account = newAccount();
    const signup = await server.call('POST', '/auth/signup', { body: account });
    const id = signup.body.user.id as string;
    const disabled = await server.call('PATCH', `/admin/users/${id}`, { token: writeKey, body: { disabled: true } });
    expect(disabled.status).toBe(200);
    expect(disabled.body.user.disabled).toBe(true);
    expect((await server.call('GET', '/auth/me', { token: signup.body.token })).status).toBe(401);
    expect((await server.call('POST', '/auth/token/refresh', { body: { refreshToken: signup.body.refreshToken } })).status).toBe(401);
    const refused = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    const wrong = await server.call('POST', '/auth/signin', { body: { email: account.email, password: 'not the password at all' } });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual(wrong.body);
    await server.call('PATCH', `/admin/users/${id}`, { token: writeKey, body: { disabled: false } });
    expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
    const sessions = await server.call('GET', `/admin/users/${id}/sessions`, { token: readKey });
    expect(sessions.body.sessions).toHaveLength(1);
    const revoked = await server.call('DELETE', `/admin/users/${id}/sessions`, { token: writeKey });
    expect(revoked.body).toEqual({ revoked: 1 });
    expect((await server.call('DELETE', `/admin/users/${id}`, { token: writeKey })).status).toBe(204);
    expect((await server.call('GET', `/admin/users/${id}`, { token: readKey })).body.code).toBe('user_not_found');
  });

  it('pages through users with a cursor, every user once', async () => {
    const prefix = `page${Date.now().toString(36)}`;
    const emails = await Promise.all(
      Array.from({ length: 7 }, async (_, i) => {
        const email = `${prefix}.${i}@example.com`;
        await server.call('POST', '/admin/users', { token: writeKey, body: { email, password: `tidy-otter-${prefix}-${i}` } });
        return email;
      }),
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { users: { email: string }[]; nextCursor: string | null } } = await server.call(
        'GET',
        `/admin/users?email=${prefix}&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        { token: readKey },
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.users.map((u) => u.email));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(emails.sort());
    const bad = await server.call('GET', '/admin/users?cursor=nonsense&limit=5000', { token: readKey });
    expect(bad.status).toBe(400);
  });

  it('registers, changes, re-keys and removes OpenID clients; the secret shows once', async () => {
    const created = await server.call('POST', '/admin/clients', {
      token: writeKey,
      body: { name: 'Example', type: 'confidential', redirectUris: ['http://localhost:4000/callback'] },
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const id = created.body.client.id as string;
    const listed = await server.call('GET', '/admin/clients', { token: readKey });
    expect(listed.body.clients.map((c: { id: string }) => c.id)).toContain(id);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
    expect(JSON.stringify(listed.body)).not.toMatch(/secretHash/);
    const bad = await server.call('POST', '/admin/clients', {
      token: writeKey,
      body: { name: 'Bad', type: 'public', redirectUris: ['http://evil.example.com/cb'] },
    });
    expect(bad.status).toBe(400);
    const disabled = await server.call('PATCH', `/admin/clients/${id}`, { token: writeKey, body: { disabled: true } });
    expect(disabled.body.client.disabledAt).not.toBeNull();
    const rotated = await server.call('POST', `/admin/clients/${id}/secret`, { token: writeKey });
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect((await server.call('DELETE', `/admin/clients/${id}`, { token: writeKey })).status).toBe(204);
    expect((await server.call('GET', `/admin/clients/${id}`, { token: readKey })).status).toBe(404);
  });

  it('imports a modest CSV over HTTP, bounded in size, and the imported bcrypt user signs in', async () => {
    const a = newAccount();
    const b = newAccount();
    const csv = `id,username,email,password\nimp-${a.username},${a.username},${a.email},${await bcrypt(a.password, 4)}\n,,${b.email},not-a-hash\n`;
    const send = (body: string, type: string, key = writeKey, query = '') =>
      fetch(`${server.url}/admin/import${query}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': type }, body });
    const readOnly = await send(csv, 'text/csv', readKey);
    expect(readOnly.status).toBe(403);
    const dry = (await (await send(csv, 'text/csv', writeKey, '?dryRun=true')).json()) as Record<string, unknown>;
    expect(dry).toMatchObject({ dryRun: true, inserted: 1, rejected: 1 });
    const response = await send(csv, 'text/csv');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ rows: 2, inserted: 1, rejected: 1, rejects: [{ line: 3, reason: 'unknown_hash_format' }] });
    expect((await server.call('POST', '/auth/signin', { body: { email: a.email, password: a.password } })).status).toBe(200);
    expect((await send(csv, 'application/json')).status).toBe(415);
    expect((await send('x'.repeat(5 * 1024 * 1024 + 1), 'text/csv')).status).toBe(413);
    expect((await (await send(csv, 'text/csv')).json()) as Record<string, unknown>).toMatchObject({ inserted: 0, skipped: 1 });
  });

  it('lets one of a burst of creates for the same address win, and concurrent imports of one file insert each user once', async () => {
    const account = newAccount();
    const burst = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        server.call('POST', '/admin/users', { token: writeKey, body: { email: account.email, password: `${account.password}-${i}` } }),
      ),
    );
    expect(burst.filter((r) => r.status === 201)).toHaveLength(1);
    expect(burst.filter((r) => r.status === 409).every((r) => r.body.code === 'email_taken')).toBe(true);
    expect(burst.filter((r) => r.status === 409)).toHaveLength(7);

    const hash = await bcrypt('tidy-otter-lamp-42', 4);
    const prefix = `burst${Date.now().toString(36)}`;
    const csv = `email,password\n${Array.from({ length: 50 }, (_, i) => `${prefix}.${i}@example.com,${hash}`).join('\n')}\n`;
    const reports = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const response = await fetch(`${server.url}/admin/import`, {
          method: 'POST',
          headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'text/csv' },
          body: csv,
        });
        expect(response.status).toBe(200);
        return (await response.json()) as { inserted: number; skipped: number; rejected: number };
      }),
    );
    expect(reports.reduce((n, r) => n + r.inserted, 0)).toBe(50);
    expect(reports.reduce((n, r) => n + r.inserted + r.skipped, 0)).toBe(200);
    const listed = await server.call('GET', `/admin/users?email=${prefix}&limit=100`, { token: readKey });
    expect(listed.body.users).toHaveLength(50);
  });

  it('stops accepting a revoked key at once', async () => {
    const keys = server.signet.services.admin.keys;
    const { key, secret } = await keys.create({ name: 'short-lived', scope: 'read' }, 'test');
    expect((await server.call('GET', '/admin/keys', { token: secret })).status).toBe(200);
    await keys.revoke(key.id, 'test');
    expect((await server.call('GET', '/admin/keys', { token: secret })).status).toBe(401);
  });
});

describe('the admin API on its own listener (ADMIN_PORT)', () => {
  it('serves /admin only on ADMIN_PORT, and nothing else there', async () => {
    const server = await startTestServer('sqlite', { adminPort: 0 });
    try {
      const { secret } = await server.signet.services.admin.keys.create({ name: 'ops', scope: 'read' }, 'test');
      expect(server.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const onPublic = await server.call('GET', '/admin/users', { token: secret });
      expect(onPublic.status).toBe(404);
      const onAdmin = await fetch(`${server.adminUrl}/admin/users`, { headers: { authorization: `Bearer ${secret}` } });
      expect(onAdmin.status).toBe(200);
      expect((await fetch(`${server.adminUrl}/auth/signin`, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
