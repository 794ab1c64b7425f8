import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIALECTS, TEST_METRICS_TOKEN, createPostgresSchema, eventCount, newAccount, startTestServer } from '../helpers.js';
import { spawnSignet } from '../support/child.js';
import { signUpLoad, storedEmails } from '../support/load.js';

describe.each(DIALECTS)('SIGTERM under load on %s (signet serve in a child process)', (dialect) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('answers every request that started before SIGTERM, commits exactly the sign-ups answered 201, and exits 0', { timeout: 90_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'signet-shutdown-'));
    const schema = dialect === 'postgres' ? await createPostgresSchema() : undefined;
    if (schema) cleanups.push(schema.drop);
    const child = await spawnSignet({
      SIGNET_DATA_DIR: dataDir,
      ...(schema ? { DATABASE_URL: schema.url } : {}),
      // Real hashing cost, so that a queue of sign-ups is in flight when the signal comes.
      ARGON2_MEMORY_KIB: '19456',
      ARGON2_TIME_COST: '2',
      HASH_QUEUE_BUDGET_MS: '60000',
      SHUTDOWN_GRACE: '20',
    });
    cleanups.push(async () => {
      child.process.kill('SIGKILL');
      await child.exited;
    });

    let signalledAt = Infinity;
    const load = signUpLoad(child.url, 24, () => signalledAt < Infinity);
    // Steady state first: sign-ups are being answered.
    while (load.outcomes.filter((o) => o.status === 201).length < 10) await new Promise((resolve) => setTimeout(resolve, 20));
    signalledAt = performance.now();
    child.process.kill('SIGTERM');
    const exit = await child.exited;
    await load.done;

    expect(exit).toEqual({ code: 0, signal: null });
    const draining = child.logs.find((l) => l.msg === 'draining: waiting for requests in flight');
    expect(draining?.inFlight, 'requests were in flight when SIGTERM came').toBeGreaterThan(0);
    expect(child.logs.some((l) => String(l.msg).startsWith('shutdown grace over'))).toBe(false);
    expect(child.logs.at(-1)?.msg).toBe('stopped');
    expect(child.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);

    // A request sent more than 50 ms before the signal had its connection: it must get a real answer.
    const before = load.outcomes.filter((o) => o.startedAt < signalledAt - 50);
    const inFlight = before.filter((o) => o.endedAt > signalledAt);
    expect(inFlight.length).toBeGreaterThan(0);
    expect(before.filter((o) => o.status !== 201)).toEqual([]);

    const stored = await storedEmails(
      schema ? { postgresUrl: schema.url } : { sqliteFile: join(dataDir, 'signet.db') },
      load.outcomes.map((o) => o.email),
    );
    const answered = load.outcomes.filter((o) => o.status === 201).map((o) => o.email.toLowerCase());
    const failed = load.outcomes.filter((o) => o.status !== 201).map((o) => o.email.toLowerCase());
    expect(
      answered.filter((e) => !stored.has(e)),
      'acknowledged sign-ups missing from the database',
    ).toEqual([]);
    expect(
      failed.filter((e) => stored.has(e)),
      'sign-ups answered as failed but committed',
    ).toEqual([]);
  });
});

describe.each(DIALECTS)('draining on %s', (dialect) => {
  it('answers /readyz with 503 while requests in flight finish, then closes', async () => {
    const server = await startTestServer(dialect, {
      argon2: { memoryCost: 19456, timeCost: 2, parallelism: 1 },
      hashConcurrency: 1,
      hashQueueBudgetMs: 60_000,
    });
    // One sign-up first, so what a server loads at its first one (the common-password list) is loaded.
    expect((await server.call('POST', '/auth/signup', { body: newAccount() })).status).toBe(201);
    const accounts = Array.from({ length: 6 }, () => newAccount());
    // Drain once every sign-up is in the server (hashed, hashing or queued for it): a connection still in the
    // listen backlog when the listener closes is refused, as it should be.
    const hashMetrics = async () => {
      const text = await (
        await server.signet.fetch(new Request('http://signet.test/metrics', { headers: { authorization: `Bearer ${TEST_METRICS_TOKEN}` } }))
      ).text();
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      return { reached: gauge('signet_hash_busy') + gauge('signet_hash_queued') + gauge('signet_hash_completed_total') };
    };
    const before = (await hashMetrics()).reached;
    const signUps = accounts.map((account) => server.call('POST', '/auth/signup', { body: account }));
    while ((await hashMetrics()).reached - before < accounts.length) await new Promise((resolve) => setTimeout(resolve, 5));
    const closed = server.close();
    const ready = await server.signet.fetch(new Request('http://signet.test/readyz'));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ statusCode: 503, code: 'unavailable' });
    expect((await server.signet.fetch(new Request('http://signet.test/healthz'))).status).toBe(200);
    const answers = await Promise.all(signUps);
    expect(answers.map((a) => a.status)).toEqual(accounts.map(() => 201));
    await closed;
  });

  it('cuts requests still running when the grace period is over', async () => {
    const server = await startTestServer(dialect, {
      argon2: { memoryCost: 65536, timeCost: 6, parallelism: 1 },
      hashConcurrency: 1,
      hashQueueBudgetMs: 60_000,
    });
    const signUps = Array.from({ length: 4 }, () => server.call('POST', '/auth/signup', { body: newAccount() }).catch(() => 'cut' as const));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const started = performance.now();
    await server.close({ graceMs: 100 });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await Promise.all(signUps)).toContain('cut');
  });
});

describe.each(DIALECTS)('a sign-in while the hash pool is closed on %s', (dialect) => {
  it('answers 503 unavailable and counts no failed attempt', async () => {
    const server = await startTestServer(dialect, { rateLimits: true });
    try {
      const account = newAccount();
      expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
      await server.signet.services.pool.close();
      for (let i = 0; i < 12; i++) {
        const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
        expect(signin.status).toBe(503);
        expect(signin.body).toMatchObject({ statusCode: 503, code: 'unavailable' });
      }
      expect(await eventCount(server, 'auth.signin_failed')).toBe(0);
      expect(await eventCount(server, 'security.signin_throttled')).toBe(0);
    } finally {
      await server.close();
    }
  });
});
