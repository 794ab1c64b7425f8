import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/core/crypto.js';
import { RevocationUnavailableError, createVerifier } from '../../src/verify/index.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { startSmtpServer } from '../support/smtp.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Issue 8 §4: nothing grows without bound, and the verifier fails safe. The
 * retention job deletes what no request can use any more; GET
 * /auth/revocations reads an index a page at a time, never further back than
 * an access token lives; `signet/verify` follows it page by page and refuses
 * tokens once it cannot refresh it for too long.
 */

const DAY = 24 * 60 * 60;

describe.each(DIALECTS)('retention on %s', (dialect: DialectName) => {
  let server: TestServer;
  let smtp: TestSmtpServer;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    server = await startTestServer(dialect, { retentionDays: 7, smtpUrl: smtp.url, emailVerification: 'optional' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  const table = async (name: 'sessions' | 'refresh_tokens' | 'account_tokens' | 'mail_outbox' | 'mfa_challenges', userId: string) => {
    const db = server.signet.services.db.kysely;
    switch (name) {
      case 'sessions':
        return db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute();
      case 'refresh_tokens':
        return db
          .selectFrom('refresh_tokens')
          .select('refresh_tokens.id')
          .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
          .where('sessions.user_id', '=', userId)
          .execute();
      case 'account_tokens':
        return db.selectFrom('account_tokens').select('id').where('user_id', '=', userId).execute();
      case 'mfa_challenges':
        return db.selectFrom('mfa_challenges').select('id').where('user_id', '=', userId).execute();
      case 'mail_outbox':
        return db.selectFrom('mail_outbox').select('id').execute();
    }
  };

  it('deletes ended sessions, old refresh tokens, expired mailed tokens, MFA challenges and sent mail once they are RETENTION_DAYS old, and nothing live', async () => {
    const account = newAccount();
    const signUp = await server.call('POST', '/auth/signup', { body: account });
    const userId = signUp.body.user.id as string;
    let refreshToken = signUp.body.refreshToken as string;
    // Rotate the live session's refresh token twice; start and end a second session.
    for (let i = 0; i < 2; i++) refreshToken = (await server.call('POST', '/auth/token/refresh', { body: { refreshToken } })).body.refreshToken;
    const other = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect((await server.call('POST', '/auth/signout', { token: other.body.token })).status).toBe(204);
    // A reset link and a verification link mailed and sent; a pending MFA challenge is made by hand (no TOTP needed).
    await server.call('POST', '/auth/password/forgot', { body: { email: account.email } });
    await server.signet.services.lifecycle.settle();
    await server.signet.services.mailer.flush();
    const now = server.clock.now();
    await server.signet.services.db.kysely
      .insertInto('mfa_challenges')
      .values({
        id: uuidv7(now),
        user_id: userId,
        token_hash: `h-${uuidv7()}`,
        created_at: now,
        expires_at: now + 300_000,
        attempts: 0,
        used_at: null,
        client_id: null,
      })
      .execute();

    expect(await table('sessions', userId)).toHaveLength(2);
    expect(await table('refresh_tokens', userId)).toHaveLength(4);
    expect((await table('account_tokens', userId)).length).toBeGreaterThanOrEqual(2);
    expect(await table('mfa_challenges', userId)).toHaveLength(1);
    expect((await table('mail_outbox', userId)).length).toBeGreaterThanOrEqual(2);

    // Nothing is due yet.
    expect(Object.values(await server.signet.services.retention.run()).every((n) => n === 0)).toBe(true);

    // Eight days on, the live session is used again.
    server.clock.advance(8 * DAY);
    const refreshed = await server.call('POST', '/auth/token/refresh', { body: { refreshToken } });
    expect(refreshed.status).toBe(200);
    const pruned = await server.signet.services.retention.run();
    expect(pruned).toMatchObject({ endedSessions: 1, accountTokens: expect.any(Number), mfa: 1, mail: expect.any(Number) });
    expect(pruned.refreshTokens).toBeGreaterThanOrEqual(2);

    expect(await table('sessions', userId)).toHaveLength(1);
    // The live head and its just-rotated parent (the grace window's): older rotations are gone.
    expect(await table('refresh_tokens', userId)).toHaveLength(2);
    expect(await table('account_tokens', userId)).toHaveLength(0);
    expect(await table('mfa_challenges', userId)).toHaveLength(0);
    expect(await table('mail_outbox', userId)).toHaveLength(0);
    // The live session still works.
    expect((await server.call('GET', '/auth/me', { token: refreshed.body.token })).status).toBe(200);
    expect((await server.call('POST', '/auth/token/refresh', { body: { refreshToken: refreshed.body.refreshToken } })).status).toBe(200);
  });
});

describe.each(DIALECTS)('GET /auth/revocations on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { accessTokenTtl: 300 });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Ends `count` sessions `agoMs` ago, written straight to the store (as many sign-outs would). */
  const endedSessions = async (count: number, agoMs: number) => {
    const account = newAccount();
    const userId = (await server.call('POST', '/auth/signup', { body: account })).body.user.id as string;
    const at = server.clock.now() - agoMs;
    const rows = Array.from({ length: count }, () => ({
      id: uuidv7(at),
      user_id: userId,
      created_at: at - 1000,
      last_used_at: at - 1000,
      expires_at: at + DAY * 1000,
      ended_at: at,
      end_reason: 'signout',
      user_agent: null,
      ip: null,
      client_id: null,
      offline: 0,
    }));
    for (let i = 0; i < rows.length; i += 500)
      await server.signet.services.db.kysely
        .insertInto('sessions')
        .values(rows.slice(i, i + 500))
        .execute();
    return rows.map((r) => r.id);
  };

  it('lists sessions ended within an access token lifetime, a page at a time, resuming from the cursor', async () => {
    const old = await endedSessions(50, (300 + 61) * 1000);
    const recent = await endedSessions(5001, 10_000);
    const first = await server.call('GET', '/auth/revocations');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ horizon: 360, complete: false, cursor: expect.any(String) });
    expect(first.body.sessions).toHaveLength(5000);
    const second = await server.call('GET', `/auth/revocations?since=${encodeURIComponent(first.body.cursor)}`);
    expect(second.body.complete).toBe(true);
    const listed = new Set([...first.body.sessions, ...second.body.sessions]);
    for (const id of recent) expect(listed.has(id)).toBe(true);
    for (const id of old) expect(listed.has(id), 'ended before the horizon').toBe(false);
    // A session ended now shows up from the last cursor on.
    const { token } = (await server.call('POST', '/auth/signup', { body: newAccount() })).body;
    const sid = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sid as string;
    expect((await server.call('POST', '/auth/signout', { token })).status).toBe(204);
    const third = await server.call('GET', `/auth/revocations?since=${encodeURIComponent(second.body.cursor)}`);
    expect(third.body.sessions).toContain(sid);
    expect(third.body.sessions.length).toBeLessThan(100);
  });

  it('refuses a cursor it did not give out with 400 validation_failed', async () => {
    for (const since of ['x', '12.not-a-uuid', `${'9'.repeat(20)}.`]) {
      const reply = await server.call('GET', `/auth/revocations?since=${encodeURIComponent(since)}`);
      expect(reply.status).toBe(400);
      expect(reply.body).toMatchObject({ code: 'validation_failed', details: [{ field: 'since', message: expect.any(String) }] });
    }
  });

  it('seeks the ended_at index from the cursor, never scans the table or the index from its start', async () => {
    const { db } = server.signet.services;
    const query = sql`select id, ended_at from sessions where (ended_at, id) > (${1}, ${''}) order by ended_at, id limit 5000`;
    if (db.dialect === 'sqlite') {
      const plan = await sql<{ detail: string }>`explain query plan ${query}`.execute(db.kysely);
      expect(plan.rows.map((r) => r.detail)).toEqual(['SEARCH sessions USING COVERING INDEX sessions_ended_at ((ended_at,id)>(?,?))']);
    } else {
      await sql`set enable_seqscan = off`.execute(db.kysely);
      const plan = await sql<{ 'QUERY PLAN': string }>`explain ${query}`.execute(db.kysely);
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index (Only )?Scan (using|on) sessions_ended_at/);
      expect(text).toMatch(/Index Cond: \(ROW\(ended_at, id\) > ROW/);
    }
  });

  it('is followed page by page by signet/verify, which refuses every ended session, however many', async () => {
    const ended = await endedSessions(6000, 5000);
    const account = newAccount();
    const { token } = (await server.call('POST', '/auth/signup', { body: account })).body;
    const verifier = createVerifier({
      issuer: 'http://signet.test',
      audience: 'http://signet.test',
      algorithms: ['RS256'],
      jwksUri: `${server.url}/.well-known/jwks.json`,
      revocation: { url: `${server.url}/auth/revocations` },
    });
    try {
      await expect(verifier.verify(token)).resolves.toMatchObject({ sub: expect.any(String) });
      expect((await server.call('POST', '/auth/signout', { token })).status).toBe(204);
      await verifier.refresh();
      await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'session ended' });
      expect(ended).toHaveLength(6000);
    } finally {
      verifier.close();
    }
  });
});

describe('signet/verify when the revocation list cannot be refreshed', () => {
  let server: TestServer;
  let proxy: ReturnType<typeof createServer>;
  let proxyUrl: string;
  let down = false;
  beforeAll(async () => {
    server = await startTestServer('sqlite');
    // The revocation list through a switch: `down` answers 503, like Signet unreachable.
    proxy = createServer((req, res) => {
      if (down) {
        res.writeHead(503).end();
        return;
      }
      void fetch(`${server.url}${req.url}`).then(async (upstream) => {
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    proxy?.close();
    await server?.close();
  });

  it('fails closed after maxStalenessMs with RevocationUnavailableError (a 503 from the middleware), and recovers', async () => {
    let now = Date.now();
    const { token } = (await server.call('POST', '/auth/signup', { body: newAccount() })).body;
    const verifier = createVerifier({
      issuer: 'http://signet.test',
      audience: 'http://signet.test',
      algorithms: ['RS256'],
      jwksUri: `${server.url}/.well-known/jwks.json`,
      revocation: { url: `${proxyUrl}/auth/revocations`, intervalMs: 60_000, maxStalenessMs: 120_000 },
      now: () => now,
      onError: () => undefined,
    });
    try {
      await expect(verifier.verify(token)).resolves.toBeDefined();
      down = true;
      now += 60_000;
      await verifier.refresh().catch(() => undefined);
      // Stale but within the bound: still served.
      await expect(verifier.verify(token)).resolves.toBeDefined();
      now += 61_000;
      await expect(verifier.verify(token)).rejects.toBeInstanceOf(RevocationUnavailableError);
      // Through the middleware: 503 with Retry-After, Signet's error body.
      const answer = await new Promise<{ status: number; headers: Record<string, string>; body: string }>((resolve) => {
        const headers: Record<string, string> = {};
        const res = {
          statusCode: 0,
          setHeader: (name: string, value: string) => (headers[name] = value),
          end: (body: string) => resolve({ status: res.statusCode, headers, body }),
        };
        verifier.node()({ headers: { authorization: `Bearer ${token}` } }, res, () => resolve({ status: 200, headers, body: '' }));
      });
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('5');
      expect(JSON.parse(answer.body)).toMatchObject({ statusCode: 503, code: 'unavailable' });
      // Back up: the next check polls again (at most every 5 s) and serves.
      down = false;
      now += 5_000;
      await expect(verifier.verify(token)).resolves.toBeDefined();
    } finally {
      verifier.close();
    }
  });
});
