import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { OutageLog } from '../../src/outages.js';
import { DIALECTS, captureLogger, createPostgresSchema, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { TcpProxy } from '../support/proxy.js';

const redisUrl = inject('redisUrl');

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('OutageLog', () => {
  it('logs the first failure with its error, then a count per window, then the recovery once', async () => {
    const { logger, lines } = captureLogger();
    const outages = new OutageLog({ logger, windowMs: 100 });
    for (let i = 0; i < 25; i++) outages.failed('database', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    outages.failed('database', new Error('again'));
    outages.recovered('database');
    outages.recovered('database');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [50, 'database unavailable'],
      [40, 'database unavailable: 24 failures in the last 0.1 s'],
      [30, expect.stringMatching(/^database available again after [\d.]+ s \(26 failures\)$/)],
    ]);
    expect(lines[0]).toMatchObject({ dependency: 'database', error: { message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' } });
    expect(JSON.stringify(lines)).not.toContain('stack');
    outages.close();
  });
});

describe.skipIf(!DIALECTS.includes('postgres'))('logs during a PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let schema: { url: string; drop: () => Promise<void> };
  let server: TestServer;
  const capture = captureLogger();

  beforeAll(async () => {
    schema = await createPostgresSchema();
    const target = new URL(schema.url);
    proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.start();
    const proxied = new URL(schema.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startTestServer('postgres', { logLevel: 'info' }, { databaseUrl: proxied.href, logger: capture.logger });
  });
  afterAll(async () => {
    await proxy?.start().catch(() => undefined);
    await server?.close();
    await proxy?.stop();
    await schema?.drop();
  });

  it('logs one error line when the outage starts, no stack per failed request, and one line when the database is back', { timeout: 30_000 }, async () => {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    // The sign-up's own audit entry and mail are written before the outage (an audit batch lost to it is logged on its own).
    await server.signet.services.audit.flush();
    await server.signet.services.mailer.flush();
    capture.lines.length = 0;
    await proxy.stop();
    const failed = await Promise.all(
      Array.from({ length: 20 }, () => server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })),
    );
    expect(failed.map((r) => r.status)).toEqual(failed.map(() => 503));
    // The mail queue polls every second and fails too: a second's worth of polls, still one line.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    const errors = capture.lines.filter((l) => Number(l.level) >= 50);
    expect(errors.map((l) => l.msg).sort(), JSON.stringify(errors)).toEqual(
      [
        'database unavailable: requests that need it answer 503',
        ...(errors.some((l) => l.dependency === 'mail queue') ? ['mail queue unavailable'] : []),
      ].sort(),
    );
    expect(capture.lines.filter((l) => l.msg === 'request failed')).toEqual([]);
    expect(JSON.stringify(capture.lines)).not.toMatch(/"stack"/);

    await proxy.start();
    await until(() => capture.lines.some((l) => String(l.msg).startsWith('database available again')));
    const back = capture.lines.find((l) => String(l.msg).startsWith('database available again'))!;
    expect(back.level).toBe(30);
    expect(Number(back.failures)).toBeGreaterThanOrEqual(20);
    expect((await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).status).toBe(200);
  });
});

describe.skipIf(!redisUrl)('logs during a Redis outage', () => {
  it('logs once that limits fall back to memory, and once that Redis is back', { timeout: 30_000 }, async () => {
    const target = new URL(redisUrl!);
    const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    await proxy.start();
    const capture = captureLogger();
    const server = await startTestServer(
      'sqlite',
      { rateLimits: true, redisUrl: `redis://127.0.0.1:${proxy.port}`, redisPrefix: `t${Date.now()}` },
      { logger: capture.logger },
    );
    try {
      await proxy.stop();
      for (let i = 0; i < 10; i++) await server.call('POST', '/auth/signin', { body: { email: `nobody${i}@example.com`, password: 'not the password' } });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const errors = capture.lines.filter((l) => Number(l.level) >= 50);
      expect(errors.map((l) => l.msg)).toEqual(['redis unavailable: rate limits fall back to per-instance memory']);
      await proxy.start();
      await until(() => capture.lines.some((l) => String(l.msg).startsWith('redis available again')));
      expect(capture.lines.filter((l) => String(l.msg).startsWith('redis available again'))).toHaveLength(1);
    } finally {
      await server.close();
      await proxy.stop();
    }
  });
});
