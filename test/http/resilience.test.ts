import bcrypt from '@node-rs/bcrypt';

const bcryptHash = (password: string, options: { cost: number }) => bcrypt.hashSync(password, options.cost);
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PasswordHasher } from '../../src/core/passwords.js';
import { DIALECTS, FAST_ARGON2, createPostgresSchema, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { TcpProxy } from '../support/proxy.js';

async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - started };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The fake cost-16 bcrypt string: well formed, but verifying it would take seconds. */
const BCRYPT_COST_16 = `$2b$16$${'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'}`;

describe.skipIf(!DIALECTS.includes('postgres'))('PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let schema: { url: string; drop: () => Promise<void> };
  let server: TestServer;
  const account = newAccount();

  beforeAll(async () => {
    schema = await createPostgresSchema();
    const target = new URL(schema.url);
    proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.start();
    const proxied = new URL(schema.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startTestServer('postgres', {}, { databaseUrl: proxied.href });
  });
  afterAll(async () => {
    await proxy?.start().catch(() => undefined);
    await server?.close();
    await proxy?.stop();
    await schema?.drop();
  });

  it('serves sign-up and sign-in through the proxy while the store is up', async () => {
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
    expect((await server.call('GET', '/readyz')).status).toBe(200);
  });

  it('answers 503 unavailable with Retry-After, within seconds, while the store is down, and stays live', async () => {
    // A lost connection must fail a request, never the process.
    const crashes: string[] = [];
    const monitor = (error: Error) => crashes.push(`${error.name}: ${error.message}`);
    process.on('uncaughtExceptionMonitor', monitor);
    onTestFinished(() => {
      process.off('uncaughtExceptionMonitor', monitor);
    });
    await proxy.stop();

    const signIn = () => server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    const checks = [
      await timed(signIn),
      await timed(() => server.call('GET', '/readyz')),
      await timed(() => server.call('POST', '/auth/signup', { body: newAccount() })),
      await timed(() => server.call('POST', '/auth/token/refresh', { body: { refreshToken: 'x'.repeat(43) } })),
      await timed(signIn),
    ];
    for (const { result, ms } of checks) {
      expect(result.status).toBe(503);
      expect(result.body).toMatchObject({ statusCode: 503, code: 'unavailable' });
      expect(Number(result.headers.get('retry-after'))).toBeGreaterThan(0);
      // A refused connection fails at once; a request must never wait for DATABASE_TIMEOUT (5 s) here.
      expect(ms).toBeLessThan(4500);
    }

    // Many at once: still 503, never 500.
    const burst = await Promise.all(Array.from({ length: 12 }, signIn));
    expect(burst.map((r) => r.status)).toEqual(Array.from({ length: 12 }, () => 503));

    const health = await server.call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    expect(crashes, 'uncaught exceptions during the outage').toEqual([]);
  });

  it('recovers by itself once the store is reachable again', async () => {
    await proxy.start();
    let ready = 0;
    for (let attempt = 0; attempt < 50 && ready !== 200; attempt++) {
      ready = (await server.call('GET', '/readyz')).status;
      if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(ready).toBe(200);
    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.status).toBe(200);
    expect((await server.call('POST', '/auth/signup', { body: newAccount() })).status).toBe(201);
  });
});

describe.skipIf(!DIALECTS.includes('postgres'))('PostgreSQL hung: reachable, accepting connections, not answering', () => {
  const TIMEOUT_S = 2;
  let proxy: TcpProxy;
  let schema: { url: string; drop: () => Promise<void> };
  let server: TestServer;
  const account = newAccount();
  let refreshToken: string;

  beforeAll(async () => {
    schema = await createPostgresSchema();
    const target = new URL(schema.url);
    proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.start();
    const proxied = new URL(schema.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startTestServer('postgres', { databaseTimeout: TIMEOUT_S }, { databaseUrl: proxied.href });
    const signup = await server.call('POST', '/auth/signup', { body: account });
    expect(signup.status).toBe(201);
    refreshToken = signup.body.refreshToken;
  });
  afterAll(async () => {
    proxy?.resume();
    await server?.close();
    await proxy?.stop();
    await schema?.drop();
  });

  it('answers 503 unavailable within DATABASE_TIMEOUT (plus a wait for a pooled connection), never hanging, then recovers', { timeout: 60_000 }, async () => {
    proxy.stall();
    const bound = 2 * TIMEOUT_S * 1000 + 1000;
    const signIn = () => server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    const checks = [
      await timed(signIn),
      await timed(() => server.call('GET', '/readyz')),
      await timed(() => server.call('POST', '/auth/signup', { body: newAccount() })),
      await timed(() => server.call('POST', '/auth/token/refresh', { body: { refreshToken } })),
    ];
    for (const { result, ms } of checks) {
      expect(result.status).toBe(503);
      expect(result.body).toMatchObject({ statusCode: 503, code: 'unavailable' });
      expect(ms).toBeLessThan(bound);
    }
    // More at once than the pool has connections: each waits its turn or a new connection, still bounded.
    const burst = await timed(() => Promise.all(Array.from({ length: 14 }, signIn)));
    expect(burst.result.map((r) => r.status)).toEqual(Array.from({ length: 14 }, () => 503));
    expect(burst.ms).toBeLessThan(bound);
    expect((await server.call('GET', '/healthz')).status).toBe(200);

    proxy.resume();
    let ready = 0;
    for (let attempt = 0; attempt < 50 && ready !== 200; attempt++) {
      ready = (await server.call('GET', '/readyz')).status;
      if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(ready).toBe(200);
    expect((await signIn()).status).toBe(200);
    expect((await server.call('POST', '/auth/token/refresh', { body: { refreshToken } })).status).toBe(200);
  });
});

describe.each(DIALECTS)('password hash upgrade on sign-in on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  async function signUpWithStoredHash(hash: (password: string) => string | Promise<string>) {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    const stored = await hash(account.password);
    await server.signet.services.db.kysely.updateTable('users').set({ password_hash: stored }).where('email_key', '=', account.email.toLowerCase()).execute();
    return { account, stored };
  }

  async function storedHash(email: string): Promise<string> {
    const row = await server.signet.services.db.kysely
      .selectFrom('users')
      .select('password_hash')
      .where('email_key', '=', email.toLowerCase())
      .executeTakeFirstOrThrow();
    return row.password_hash;
  }

  const CONFIGURED = /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/;

  it('signs in with an imported bcrypt hash and replaces it with Argon2id at the configured parameters', async () => {
    const { account, stored } = await signUpWithStoredHash((pw) => bcryptHash(pw, { cost: 4 }));
    expect(await storedHash(account.email)).toBe(stored);

    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.status).toBe(200);
    await server.signet.services.accounts.settle();

    const upgraded = await storedHash(account.email);
    expect(upgraded).toMatch(CONFIGURED);
    // The new hash is of the same password, and is not upgraded again.
    expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
    await server.signet.services.accounts.settle();
    expect(await storedHash(account.email)).toBe(upgraded);
  });

  it('upgrades an Argon2id hash made with other parameters to the configured ones', async () => {
    const older = new PasswordHasher({ pool: server.signet.services.pool, params: { ...FAST_ARGON2, timeCost: 3 } });
    const { account, stored } = await signUpWithStoredHash((pw) => older.hash(pw));
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=1024,t=3,p=1\$/);

    expect((await server.call('POST', '/auth/signin', { body: { username: account.username, password: account.password } })).status).toBe(200);
    await server.signet.services.accounts.settle();
    expect(await storedHash(account.email)).toMatch(CONFIGURED);
    expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
  });

  it('leaves an old hash alone after a wrong password', async () => {
    const { account, stored } = await signUpWithStoredHash((pw) => bcryptHash(pw, { cost: 4 }));
    const wrong = await server.call('POST', '/auth/signin', { body: { email: account.email, password: `${account.password}!` } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('invalid_credentials');
    await server.signet.services.accounts.settle();
    expect(await storedHash(account.email)).toBe(stored);
  });

  it('refuses a stored bcrypt hash with cost 16 quickly, as invalid credentials, without verifying it', async () => {
    const { account } = await signUpWithStoredHash(() => BCRYPT_COST_16);
    const { result, ms } = await timed(() => server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } }));
    expect(result.status).toBe(401);
    expect(result.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'Invalid credentials', code: 'invalid_credentials' });
    // Verifying bcrypt at cost 16 takes seconds; the refusal costs one dummy verification.
    expect(ms).toBeLessThan(1500);
    await server.signet.services.accounts.settle();
    expect(await storedHash(account.email)).toBe(BCRYPT_COST_16);
  });

  it('answers 401 invalid_credentials, not 500, when the stored Argon2 string cannot be verified (salt too short)', async () => {
    const { account } = await signUpWithStoredHash(() => '$argon2id$v=19$m=1024,t=1,p=1$c29t$aGFzaA');
    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'Invalid credentials', code: 'invalid_credentials' });
  });

  it('refuses an Argon2 hash with 1 GiB of memory as invalid credentials', async () => {
    const huge = '$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$Hm8PqNzJeKNJNkhL2zWEbOTnS8Zdq3cZ3Tq6nMqgDzs';
    const { account } = await signUpWithStoredHash(() => huge);
    const { result, ms } = await timed(() => server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } }));
    expect(result.status).toBe(401);
    expect(result.body.code).toBe('invalid_credentials');
    expect(ms).toBeLessThan(1500);
  });
});

describe.each(DIALECTS)('sign-in timing on %s', (dialect) => {
  const ARGON2 = { memoryCost: 8192, timeCost: 2, parallelism: 1 };
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { argon2: ARGON2 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('takes as long for an unknown user as for a wrong password, and at least one hash for either', async () => {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    const unknown = { email: `nobody.${account.email}`, password: 'not the password' };
    const wrong = { email: account.email, password: 'not the password' };

    // Warm up: worker threads, the dummy hash, connections.
    for (let i = 0; i < 2; i++) {
      expect((await server.call('POST', '/auth/signin', { body: unknown })).status).toBe(401);
      expect((await server.call('POST', '/auth/signin', { body: wrong })).status).toBe(401);
    }

    // One hash at the configured parameters, measured directly on the same pool.
    const stored = await server.signet.services.hasher.hash(account.password);
    const direct: number[] = [];
    for (let i = 0; i < 5; i++) direct.push((await timed(() => server.signet.services.hasher.verify('not the password', stored))).ms);
    const oneHash = Math.min(...direct);

    const unknownMs: number[] = [];
    const wrongMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await timed(() => server.call('POST', '/auth/signin', { body: unknown }));
      const b = await timed(() => server.call('POST', '/auth/signin', { body: wrong }));
      expect(a.result.status).toBe(401);
      expect(b.result.status).toBe(401);
      unknownMs.push(a.ms);
      wrongMs.push(b.ms);
    }
    const ratio = median(unknownMs) / median(wrongMs);
    expect(ratio, `unknown ${median(unknownMs).toFixed(1)} ms, wrong ${median(wrongMs).toFixed(1)} ms`).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    expect(median(unknownMs)).toBeGreaterThanOrEqual(oneHash);
    expect(median(wrongMs)).toBeGreaterThanOrEqual(oneHash);
  });
});

describe('SQLite busy timeout', () => {
  it('waits DATABASE_TIMEOUT for another writer before answering 503, not the default of failing at once', async () => {
    const server = await startTestServer('sqlite', { databaseTimeout: 3 });
    try {
      const { rows } = await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(server.signet.services.db.kysely);
      expect(rows[0]?.timeout).toBe(3000);
    } finally {
      await server.close();
    }
  });
});
