import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import type { SignetConfig } from '../../src/config.js';
import { LIMIT_RULES } from '../../src/core/limits.js';
import { createPostgresSchema, eventCount, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Rate limits in Redis (issue 5 §1 and "Real components"): two Signet
 * instances on one REDIS_URL share every counter, and an unreachable Redis
 * never takes sign-in down (the documented choice: fall back to per-instance
 * memory counters, with a log line).
 *
 * Isolation: the limiter's key prefix is fixed ('signet'), so this file runs in
 * a Redis logical database (1–15) that was empty when it started, uses client
 * addresses and accounts no other run uses, and at the end deletes exactly the
 * keys that name them.
 */

const redisUrl = inject('redisUrl');
const postgresUrl = inject('postgresUrl');

type Reply = Awaited<ReturnType<TestServer['call']>>;

const RUN_NET = `10.${randomInt(1, 255)}.${randomInt(0, 256)}.`;
let ipSeq = 0;
function freshIp(): string {
  ipSeq++;
  if (ipSeq > 254) throw new Error('out of test addresses');
  return `${RUN_NET}${ipSeq}`;
}

/** Everything this run put into a key (addresses, identifiers, user ids), for the clean-up. */
const markers = new Set<string>([RUN_NET]);

function account(): ReturnType<typeof newAccount> {
  const a = newAccount();
  markers.add(a.email.toLowerCase());
  markers.add(a.username.toLowerCase());
  return a;
}

function unknownEmail(): string {
  const email = `nobody.${randomBytes(6).toString('hex')}@example.com`;
  markers.add(email);
  return email;
}

function from(server: TestServer, ip: string, method: string, path: string, body?: unknown): Promise<Reply> {
  return server.call(method, path, { body, headers: { 'x-forwarded-for': ip } });
}

function signIn(server: TestServer, ip: string, login: Record<string, string>): Promise<Reply> {
  return from(server, ip, 'POST', '/auth/signin', login);
}

function expectInvalidCredentials(reply: Reply): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(401);
  expect(reply.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'Invalid credentials', code: 'invalid_credentials' });
}

function expectRateLimited(reply: Reply, rule: keyof typeof LIMIT_RULES): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(429);
  expect(reply.body.code).toBe('rate_limited');
  const retryAfter = Number(reply.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(LIMIT_RULES[rule].duration);
  expect(reply.headers.get('ratelimit-limit')).toBe(String(LIMIT_RULES[rule].points));
  expect(reply.headers.get('ratelimit-remaining')).toBe('0');
}

const SHARED_SECRET = 'a-secret-every-instance-of-this-test-shares';

/** A Signet instance with limits on, trusting the loopback proxy, mail off, its data dir temporary. */
async function instance(overrides: Partial<SignetConfig>, postgres?: string): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'signet-redis-'));
  // Instances on one database share SIGNET_SECRET: it seals the signing keys they all use.
  const config = { rateLimits: true, trustProxy: ['127.0.0.1'], emailVerification: 'off' as const, dataDir, masterSecret: SHARED_SECRET, ...overrides };
  const server = postgres ? await startTestServer('postgres', config, { databaseUrl: postgres }) : await startTestServer('sqlite', config);
  return {
    ...server,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Signs an account up through `server`. */
async function signUp(server: TestServer, a: { email: string; password: string; username: string }): Promise<void> {
  const reply = await from(server, freshIp(), 'POST', '/auth/signup', a);
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  markers.add(reply.body.user.id);
}

/** A Redis logical database (1–15) that holds no key right now. */
async function pickEmptyDb(): Promise<number> {
  const probe = new Redis(redisUrl!, { lazyConnect: true });
  await probe.connect();
  try {
    for (const candidate of Array.from({ length: 15 }, (_, i) => i + 1).sort(() => Math.random() - 0.5)) {
      await probe.select(candidate);
      if ((await probe.dbsize()) === 0) return candidate;
    }
    throw new Error('no empty Redis logical database (1-15) for this run');
  } finally {
    probe.disconnect();
  }
}

/** Deletes only the keys this run created (each names one of its addresses, accounts or users), then disconnects. */
async function cleanUp(admin: Redis): Promise<void> {
  const mine: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', 'signet:*', 'COUNT', 500);
    cursor = next;
    for (const key of keys) if ([...markers].some((m) => key.includes(m))) mine.push(key);
  } while (cursor !== '0');
  if (mine.length > 0) await admin.del(...mine);
  admin.disconnect();
}

/** Waits until `server` counts in Redis (its client connects in the background at start). */
async function usesRedis(server: TestServer, admin: Redis): Promise<void> {
  const ip = freshIp();
  const deadline = Date.now() + 10_000;
  for (;;) {
    await from(server, ip, 'POST', '/auth/token/refresh', { refreshToken: randomBytes(32).toString('base64url') });
    if ((await admin.exists(`signet:refresh.ip:${ip}`)) === 1) return;
    if (Date.now() > deadline) throw new Error(`${server.url} never wrote its counters to Redis`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!redisUrl)('rate limits shared through Redis by two Signet instances (needs Redis on 127.0.0.1:6379; SKIPPED when it does not answer)', () => {
  let admin: Redis;
  let db: number;
  let a: TestServer;
  let b: TestServer;
  let schema: { url: string; drop: () => Promise<void> } | undefined;

  beforeAll(async () => {
    db = await pickEmptyDb();
    admin = new Redis(`${redisUrl}/${db}`);
    // Like a real deployment: both instances on one PostgreSQL database when there is one
    // (one after the other, so migrations never race); else each on its own SQLite store.
    schema = postgresUrl ? await createPostgresSchema() : undefined;
    a = await instance({ redisUrl: `${redisUrl}/${db}` }, schema?.url);
    b = await instance({ redisUrl: `${redisUrl}/${db}` }, schema?.url);
    await usesRedis(a, admin);
    await usesRedis(b, admin);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await schema?.drop();
    if (admin) await cleanUp(admin);
  });

  it.skipIf(!postgresUrl)(
    'adds up failures for one account across instances on one database: the account throttle holds on both (needs PostgreSQL)',
    async () => {
      const target = account();
      await signUp(a, target);
      const minute = LIMIT_RULES['signin.account.minute'].points;
      // Neither instance sees five failures on its own; together they do.
      for (let i = 0; i < minute; i++)
        expectInvalidCredentials(await signIn(i % 2 ? b : a, freshIp(), { email: target.email, password: `wrong-${i}-password` }));
      expectInvalidCredentials(await signIn(a, freshIp(), { email: target.email, password: target.password }));
      expectInvalidCredentials(await signIn(b, freshIp(), { username: target.username, password: target.password }));

      // Control: one failure fewer, split the same way, leaves the account open on both.
      const open = account();
      await signUp(b, open);
      for (let i = 0; i < minute - 1; i++)
        expectInvalidCredentials(await signIn(i % 2 ? b : a, freshIp(), { email: open.email, password: `wrong-${i}-password` }));
      expect((await signIn(b, freshIp(), { email: open.email, password: open.password })).status).toBe(200);
      // That success cleared the shared counters for both: four more failures still leave it open.
      for (let i = 0; i < minute - 1; i++)
        expectInvalidCredentials(await signIn(i % 2 ? a : b, freshIp(), { email: open.email, password: `again-${i}-password` }));
      expect((await signIn(a, freshIp(), { email: open.email, password: open.password })).status).toBe(200);
    },
  );

  it('adds up failures for an unknown identifier across instances: throttled at the same shared count', async () => {
    const email = unknownEmail();
    const minute = LIMIT_RULES['signin.account.minute'].points;
    const throttled = async () => (await eventCount(a, 'security.signin_throttled')) + (await eventCount(b, 'security.signin_throttled'));
    const before = await throttled();
    for (let i = 0; i < minute; i++) expectInvalidCredentials(await signIn(i % 2 ? b : a, freshIp(), { email, password: `wrong-${i}-password` }));
    expect(await throttled()).toBe(before);
    expectInvalidCredentials(await signIn(b, freshIp(), { email, password: 'wrong-x-password' }));
    expectInvalidCredentials(await signIn(a, freshIp(), { email, password: 'wrong-y-password' }));
    expect(await throttled()).toBe(before + 2);
  });

  it('adds up one client address across instances: credential stuffing and sign-ups get 429 on both', async () => {
    const ip = freshIp();
    const budget = LIMIT_RULES['signin.ip.failures'].points;
    for (let i = 0; i < budget; i++) expectInvalidCredentials(await signIn(i % 2 ? b : a, ip, { email: unknownEmail(), password: 'sprayed-password' }));
    expect(Number(await admin.get(`signet:signin.ip.failures:${ip}`))).toBe(budget);
    const victim = account();
    await signUp(a, victim);
    expectRateLimited(await signIn(a, ip, { email: victim.email, password: victim.password }), 'signin.ip.failures');
    expectRateLimited(await signIn(b, ip, { email: unknownEmail(), password: 'sprayed-password' }), 'signin.ip.failures');
    expect((await signIn(a, freshIp(), { email: victim.email, password: victim.password })).status).toBe(200);

    const signupIp = freshIp();
    const signups = LIMIT_RULES['signup.ip'].points;
    for (let i = 0; i < signups; i++) {
      const reply = await from(i % 2 ? b : a, signupIp, 'POST', '/auth/signup', account());
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      expect(reply.headers.get('ratelimit-remaining')).toBe(String(signups - i - 1));
    }
    expectRateLimited(await from(a, signupIp, 'POST', '/auth/signup', account()), 'signup.ip');
    expectRateLimited(await from(b, signupIp, 'POST', '/auth/signup', account()), 'signup.ip');
  });
});

/**
 * A TCP relay to the real Redis that the test can cut, as a network failure
 * would: established connections are destroyed and new ones refused.
 */
async function startRelay(target: URL): Promise<{ url: string; cut: () => Promise<void>; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const closeServer = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  return {
    url: `redis://127.0.0.1:${port}`,
    async cut() {
      const closing = closeServer();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closing;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await closeServer();
    },
  };
}

async function timed(work: () => Promise<Reply>): Promise<{ reply: Reply; ms: number }> {
  const started = performance.now();
  const reply = await work();
  return { reply, ms: performance.now() - started };
}

/** Every answer a Redis outage produces must be a normal one: never 500, never slow. */
function expectNoOutageSymptoms(replies: { reply: Reply; ms: number }[]): void {
  for (const { reply, ms } of replies) {
    expect(reply.status, JSON.stringify(reply.body)).not.toBeGreaterThanOrEqual(500);
    expect(ms, `answered in ${Math.round(ms)} ms`).toBeLessThan(2000);
  }
}

describe('rate limits when Redis is unreachable (fall back to per-instance memory; never a crash)', () => {
  let server: TestServer | undefined;
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
  afterEach(async () => {
    await server?.close();
    await relay?.close();
    server = undefined;
    relay = undefined;
  });

  it('starts with REDIS_URL pointing at a closed port, serves sign-up and sign-in, and still applies the limits', async () => {
    const started = performance.now();
    server = await instance({ redisUrl: 'redis://127.0.0.1:1' });
    expect(performance.now() - started).toBeLessThan(10_000);
    const s = server;
    const seen: { reply: Reply; ms: number }[] = [];
    const call = async (work: () => Promise<Reply>) => {
      const result = await timed(work);
      seen.push(result);
      return result.reply;
    };

    expect((await call(() => s.call('GET', '/healthz'))).status).toBe(200);
    const user = account();
    expect((await call(() => from(s, freshIp(), 'POST', '/auth/signup', user))).status).toBe(201);
    const signedIn = await call(() => signIn(s, freshIp(), { email: user.email, password: user.password }));
    expect(signedIn.status).toBe(200);
    expect((await call(() => s.call('GET', '/auth/me', { token: signedIn.body.token }))).status).toBe(200);

    // The account throttle, from memory.
    const minute = LIMIT_RULES['signin.account.minute'].points;
    for (let i = 0; i < minute; i++) expectInvalidCredentials(await call(() => signIn(s, freshIp(), { email: user.email, password: `wrong-${i}-password` })));
    expectInvalidCredentials(await call(() => signIn(s, freshIp(), { email: user.email, password: user.password })));

    // The per-address failure budget, from memory.
    const ip = freshIp();
    for (let i = 0; i < LIMIT_RULES['signin.ip.failures'].points; i++)
      expectInvalidCredentials(await call(() => signIn(s, ip, { email: unknownEmail(), password: 'sprayed-password' })));
    expectRateLimited(await call(() => signIn(s, ip, { email: unknownEmail(), password: 'sprayed-password' })), 'signin.ip.failures');

    // A per-route limit (limitClient), from memory.
    const mfaIp = freshIp();
    const points = LIMIT_RULES['mfa.ip'].points;
    for (let i = 0; i < points; i++) {
      const reply = await call(() => from(s, mfaIp, 'POST', '/auth/mfa/verify', { mfaToken: randomBytes(32).toString('base64url'), code: '123456' }));
      expect(reply.status).toBe(401);
      expect(reply.body.code).toBe('invalid_mfa_token');
    }
    expectRateLimited(
      await call(() => from(s, mfaIp, 'POST', '/auth/mfa/verify', { mfaToken: randomBytes(32).toString('base64url'), code: '123456' })),
      'mfa.ip',
    );
    expectNoOutageSymptoms(seen);
  });

  it.skipIf(!redisUrl)('keeps serving and limiting when Redis goes away mid-run (needs Redis; SKIPPED when it does not answer)', async () => {
    const db = await pickEmptyDb();
    const admin = new Redis(`${redisUrl}/${db}`);
    try {
      relay = await startRelay(new URL(redisUrl!));
      server = await instance({ redisUrl: `${relay.url}/${db}` });
      await usesRedis(server, admin);
      await outage(server, relay);
    } finally {
      await cleanUp(admin);
    }
  });
});

/** Cuts Redis away from `s` and checks it goes on serving and limiting from memory. */
async function outage(s: TestServer, relay: { cut: () => Promise<void> }): Promise<void> {
  const user = account();
  expect((await from(s, freshIp(), 'POST', '/auth/signup', user)).status).toBe(201);
  expect((await signIn(s, freshIp(), { email: user.email, password: user.password })).status).toBe(200);

  await relay.cut();
  const seen: { reply: Reply; ms: number }[] = [];
  const call = async (work: () => Promise<Reply>) => {
    const result = await timed(work);
    seen.push(result);
    return result.reply;
  };
  expect((await call(() => signIn(s, freshIp(), { email: user.email, password: user.password }))).status).toBe(200);
  const minute = LIMIT_RULES['signin.account.minute'].points;
  for (let i = 0; i < minute; i++) expectInvalidCredentials(await call(() => signIn(s, freshIp(), { email: user.email, password: `wrong-${i}-password` })));
  expectInvalidCredentials(await call(() => signIn(s, freshIp(), { email: user.email, password: user.password })));
  const ip = freshIp();
  for (let i = 0; i < LIMIT_RULES['signin.ip.failures'].points; i++)
    expectInvalidCredentials(await call(() => signIn(s, ip, { email: unknownEmail(), password: 'sprayed-password' })));
  expectRateLimited(await call(() => signIn(s, ip, { email: unknownEmail(), password: 'sprayed-password' })), 'signin.ip.failures');
  expect((await call(() => s.call('GET', '/healthz'))).status).toBe(200);
  expectNoOutageSymptoms(seen);
}
