import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SignetConfig } from '../../src/config.js';
import { SessionCache } from '../../src/core/session-cache.js';
import type { LiveSession } from '../../src/core/session-cache.js';
import { DIALECTS, createPostgresSchema, metricsText, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { redisScope } from '../support/redis.js';
import type { RedisScope } from '../support/redis.js';

/**
 * The session cache (issue 11, "/auth/me without the database"): GET routes
 * may answer from a live session checked moments ago, but an ended session or
 * a changed account is refused or re-read at once, on this instance and on
 * every instance sharing Redis.
 */

const redisUrl = inject('redisUrl');
const postgresUrl = inject('postgresUrl');

async function cacheCounters(server: TestServer): Promise<{ hits: number; misses: number; enabled: number }> {
  const text = await metricsText(server);
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { hits: read('signet_session_cache_hits_total'), misses: read('signet_session_cache_misses_total'), enabled: read('signet_session_cache_enabled') };
}

async function signUp(server: TestServer): Promise<{ accessToken: string; refreshToken: string; email: string; password: string }> {
  const account = newAccount();
  const reply = await server.call('POST', '/auth/signup', { body: account });
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return { accessToken: reply.body.token, refreshToken: reply.body.refreshToken, email: account.email, password: account.password };
}

async function signIn(server: TestServer, account: { email: string; password: string }): Promise<{ accessToken: string; refreshToken: string }> {
  const reply = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  return { accessToken: reply.body.token, refreshToken: reply.body.refreshToken };
}

/** Polls `probe` until it holds or `ms` pass; returns how long it took. */
async function within(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('SessionCache', () => {
  const live = (sessionId: string, userId: string): LiveSession =>
    ({ user: { id: userId }, session: { id: sessionId, userId, expiresAt: new Date(10_000_000), lastUsedAt: new Date(0) } }) as unknown as LiveSession;

  it('does not store a read that raced an invalidation', () => {
    const cache = new SessionCache({ ttlMs: 10_000, max: 10 });
    const epoch = cache.epoch();
    cache.forgetSessions(['s1']); // the session ended while its row was being read
    cache.put(live('s1', 'u1'), epoch, 0);
    expect(cache.get('s1', 'u1', 1)).toBeUndefined();
    cache.put(live('s1', 'u1'), cache.epoch(), 0);
    expect(cache.get('s1', 'u1', 1)).toBeDefined();
  });

  it('answers only for the same user, only until its lifetime ends, and drops a user’s sessions together', () => {
    const cache = new SessionCache({ ttlMs: 1_000, max: 10 });
    cache.put(live('s1', 'u1'), cache.epoch(), 0);
    cache.put(live('s2', 'u1'), cache.epoch(), 0);
    cache.put(live('s3', 'u2'), cache.epoch(), 0);
    expect(cache.get('s1', 'u2', 1)).toBeUndefined();
    expect(cache.get('s3', 'u2', 1_000)).toBeUndefined();
    cache.put(live('s1', 'u1'), cache.epoch(), 0);
    cache.forgetUser('u1');
    expect(cache.get('s1', 'u1', 1)).toBeUndefined();
    expect(cache.get('s2', 'u1', 1)).toBeUndefined();
    expect(cache.stats().size).toBe(0);
  });

  it('is bounded: the least recently used entry goes first', () => {
    const cache = new SessionCache({ ttlMs: 10_000, max: 3 });
    for (const id of ['a', 'b', 'c']) cache.put(live(id, 'u'), cache.epoch(), 0);
    expect(cache.get('a', 'u', 1)).toBeDefined(); // a is now the most recent
    cache.put(live('d', 'u'), cache.epoch(), 0);
    expect(cache.stats().size).toBe(3);
    expect(cache.get('b', 'u', 1)).toBeUndefined();
    expect(cache.get('a', 'u', 1)).toBeDefined();
  });

  it('stores nothing while disabled (an instance that cannot hear invalidations)', () => {
    const cache = new SessionCache({ ttlMs: 10_000, max: 3 });
    cache.reset(false);
    cache.put(live('a', 'u'), cache.epoch(), 0);
    expect(cache.get('a', 'u', 1)).toBeUndefined();
    cache.reset(true);
    cache.put(live('a', 'u'), cache.epoch(), 0);
    expect(cache.get('a', 'u', 1)).toBeDefined();
  });
});

describe.each(DIALECTS)('session cache on one instance (%s)', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { emailVerification: 'off' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers repeated reads from memory', async () => {
    const { accessToken } = await signUp(server);
    const before = await cacheCounters(server);
    for (let i = 0; i < 5; i++) expect((await server.call('GET', '/auth/me', { token: accessToken })).status).toBe(200);
    const after = await cacheCounters(server);
    expect(after.enabled).toBe(1);
    expect(after.hits - before.hits).toBeGreaterThanOrEqual(4);
  });

  it('refuses a session at once after sign-out, and after sign-out-all from another session', async () => {
    const account = await signUp(server);
    const other = await signIn(server, account);
    expect((await server.call('GET', '/auth/me', { token: account.accessToken })).status).toBe(200);
    expect((await server.call('GET', '/auth/me', { token: other.accessToken })).status).toBe(200);
    expect((await server.call('POST', '/auth/signout', { token: other.accessToken, body: { refreshToken: other.refreshToken } })).status).toBe(204);
    expect((await server.call('GET', '/auth/me', { token: other.accessToken })).status).toBe(401);

    const third = await signIn(server, account);
    expect((await server.call('GET', '/auth/me', { token: third.accessToken })).status).toBe(200);
    expect((await server.call('POST', '/auth/signout-all', { token: account.accessToken })).status).toBe(204);
    expect((await server.call('GET', '/auth/me', { token: third.accessToken })).status).toBe(401);
    expect((await server.call('GET', '/auth/me', { token: account.accessToken })).status).toBe(401);
  });

  it('shows a profile change at the next read', async () => {
    const { accessToken } = await signUp(server);
    expect((await server.call('GET', '/auth/me', { token: accessToken })).body.user.name).toBeNull();
    expect((await server.call('PATCH', '/auth/me', { token: accessToken, body: { name: 'Ada Lovelace' } })).status).toBe(200);
    expect((await server.call('GET', '/auth/me', { token: accessToken })).body.user.name).toBe('Ada Lovelace');
  });

  it('holds when sign-outs and reads of one session arrive together', async () => {
    const account = await signUp(server);
    const session = await signIn(server, account);
    const reads = () => Array.from({ length: 20 }, () => server.call('GET', '/auth/me', { token: session.accessToken }));
    await Promise.all([
      ...reads(),
      server.call('POST', '/auth/signout', { token: session.accessToken, body: { refreshToken: session.refreshToken } }),
      ...reads(),
    ]);
    const after = await Promise.all(reads());
    expect(after.map((r) => r.status)).toEqual(after.map(() => 401));
  });
});

describe.skipIf(!redisUrl)('session cache across two instances on one database and one Redis (needs Redis; SKIPPED when it does not answer)', () => {
  let a: TestServer;
  let b: TestServer;
  let scope: RedisScope;
  let schema: { url: string; drop: () => Promise<void> } | undefined;
  const dirs: string[] = [];

  async function instance(overrides: Partial<SignetConfig>): Promise<TestServer> {
    const dataDir = await mkdtemp(join(tmpdir(), 'signet-cache-'));
    dirs.push(dataDir);
    const config = {
      emailVerification: 'off' as const,
      dataDir,
      masterSecret: 'a-secret-both-instances-of-this-test-share',
      redisUrl: scope.url,
      redisPrefix: scope.prefix,
      ...overrides,
    };
    return schema ? startTestServer('postgres', config, { databaseUrl: schema.url }) : startTestServer('sqlite', { ...config, dataDir: dirs[0] });
  }

  beforeAll(async () => {
    scope = redisScope(redisUrl!);
    schema = postgresUrl ? await createPostgresSchema() : undefined;
    a = await instance({});
    b = await instance({});
    await within(10_000, async () => (await cacheCounters(a)).enabled === 1 && (await cacheCounters(b)).enabled === 1);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await schema?.drop();
    await scope?.drop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('a sign-out on one instance is refused on the other within 500 ms', async () => {
    const account = await signUp(a);
    for (let i = 0; i < 3; i++) expect((await a.call('GET', '/auth/me', { token: account.accessToken })).status).toBe(200);
    const hits = (await cacheCounters(a)).hits;
    expect(hits).toBeGreaterThan(0);
    expect((await b.call('POST', '/auth/signout', { token: account.accessToken, body: { refreshToken: account.refreshToken } })).status).toBe(204);
    const took = await within(500, async () => (await a.call('GET', '/auth/me', { token: account.accessToken })).status === 401);
    expect(took).toBeLessThan(500);
  });

  it('a profile change on one instance shows on the other within 500 ms', async () => {
    const account = await signUp(a);
    for (let i = 0; i < 3; i++) expect((await a.call('GET', '/auth/me', { token: account.accessToken })).status).toBe(200);
    expect((await b.call('PATCH', '/auth/me', { token: account.accessToken, body: { name: 'Grace Hopper' } })).status).toBe(200);
    await within(500, async () => (await a.call('GET', '/auth/me', { token: account.accessToken })).body.user.name === 'Grace Hopper');
  });

  it('an instance whose Redis is unreachable never answers from memory', async () => {
    const deaf = await instance({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      const account = await signUp(deaf);
      for (let i = 0; i < 3; i++) expect((await deaf.call('GET', '/auth/me', { token: account.accessToken })).status).toBe(200);
      const counters = await cacheCounters(deaf);
      expect(counters.enabled).toBe(0);
      expect(counters.hits).toBe(0);
    } finally {
      await deaf.close();
    }
  });
});
