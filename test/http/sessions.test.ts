import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Sessions and refresh tokens (contract: "Refresh tokens", "Session response",
 * the /auth/token/refresh, /auth/signout, /auth/signout-all and /auth/sessions
 * rows). Time moves only through server.clock.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{20,}$/;
const GRACE = 10;

interface Session {
  token: string;
  refreshToken: string;
  refreshExpiresIn: number;
  sid: string;
  userId: string;
}

interface Account {
  email: string;
  password: string;
}

function session(body: any): Session {
  return {
    token: body.token,
    refreshToken: body.refreshToken,
    refreshExpiresIn: body.refreshExpiresIn,
    sid: decodeJwt(body.token).sid as string,
    userId: body.user.id,
  };
}

async function signUp(server: TestServer, userAgent = 'SignetTest/1.0 (sign-up)'): Promise<{ account: Account; session: Session }> {
  const account = newAccount();
  const response = await server.call('POST', '/auth/signup', { body: account, headers: { 'user-agent': userAgent } });
  expect(response.status).toBe(201);
  return { account, session: session(response.body) };
}

async function signIn(server: TestServer, account: Account, userAgent = 'SignetTest/1.0 (sign-in)'): Promise<Session> {
  const response = await server.call('POST', '/auth/signin', {
    body: { email: account.email, password: account.password },
    headers: { 'user-agent': userAgent },
  });
  expect(response.status).toBe(200);
  return session(response.body);
}

async function refresh(server: TestServer, refreshToken: string) {
  return server.call('POST', '/auth/token/refresh', { body: { refreshToken } });
}

async function refreshOk(server: TestServer, refreshToken: string): Promise<Session> {
  const response = await refresh(server, refreshToken);
  expect(response.status).toBe(200);
  return session(response.body);
}

async function expectRefreshRefused(server: TestServer, refreshToken: string): Promise<void> {
  const response = await refresh(server, refreshToken);
  expect(response.status).toBe(401);
  expect(response.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String), code: 'invalid_refresh_token' });
  expect(response.body.message).not.toContain(refreshToken);
}

async function me(server: TestServer, token: string) {
  return server.call('GET', '/auth/me', { token });
}

async function expectAccessRefused(server: TestServer, token: string): Promise<void> {
  const response = await me(server, token);
  expect(response.status).toBe(401);
  expect(response.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String), code: 'invalid_token' });
  expect(response.headers.get('www-authenticate')).toBe('Bearer realm="signet", error="invalid_token"');
}

async function expectSessionWorks(server: TestServer, s: Session): Promise<void> {
  const response = await me(server, s.token);
  expect(response.status).toBe(200);
  expect(response.body.user.id).toBe(s.userId);
}

async function listSessionIds(server: TestServer, token: string): Promise<string[]> {
  const response = await server.call('GET', '/auth/sessions', { token });
  expect(response.status).toBe(200);
  return response.body.sessions.map((s: { id: string }) => s.id);
}

describe.each(DIALECTS)('sessions and refresh tokens on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  async function liveTokenCount(sid: string): Promise<{ live: number; total: number }> {
    const kysely = server.signet.services.db.kysely;
    const live = await kysely
      .selectFrom('refresh_tokens')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('session_id', '=', sid)
      .where('rotated_at', 'is', null)
      .executeTakeFirstOrThrow();
    const total = await kysely
      .selectFrom('refresh_tokens')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('session_id', '=', sid)
      .executeTakeFirstOrThrow();
    return { live: Number(live.n), total: Number(total.n) };
  }

  it('answers sign-up and sign-in with the session response: 900 s access token, 30-day refresh token', async () => {
    const account = newAccount();
    const response = await server.call('POST', '/auth/signup', { body: account });
    expect(response.status).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.body).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 900,
      refreshExpiresIn: 2592000,
      token: expect.any(String),
      refreshToken: expect.stringMatching(REFRESH_TOKEN),
    });
    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, refreshExpiresIn: 2592000 });
  });

  it('creates a new session for each sign-in, listed with its user agent and ip, with the caller marked current', async () => {
    const { account, session: first } = await signUp(server, 'SignetTest/1.0 (phone)');
    const second = await signIn(server, account, 'SignetTest/1.0 (laptop)');
    const third = await signIn(server, account, 'SignetTest/1.0 (tablet)');
    expect(new Set([first.sid, second.sid, third.sid]).size).toBe(3);

    const response = await server.call('GET', '/auth/sessions', { token: second.token });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const sessions: any[] = response.body.sessions;
    expect(sessions).toHaveLength(3);
    expect(sessions.map((s) => s.id).sort()).toEqual([first.sid, second.sid, third.sid].sort());
    for (const s of sessions) {
      expect(s).toEqual({
        id: expect.stringMatching(UUID),
        createdAt: expect.any(String),
        lastUsedAt: expect.any(String),
        userAgent: expect.any(String),
        ip: '127.0.0.1',
        current: expect.any(Boolean),
      });
      expect(new Date(s.createdAt).toISOString()).toBe(s.createdAt);
      expect(new Date(s.lastUsedAt).toISOString()).toBe(s.lastUsedAt);
    }
    const byId = new Map(sessions.map((s) => [s.id, s]));
    expect(byId.get(first.sid).userAgent).toBe('SignetTest/1.0 (phone)');
    expect(byId.get(second.sid).userAgent).toBe('SignetTest/1.0 (laptop)');
    expect(byId.get(third.sid).userAgent).toBe('SignetTest/1.0 (tablet)');
    expect(sessions.filter((s) => s.current).map((s) => s.id)).toEqual([second.sid]);
  });

  it('puts the id of the current session in the access token as sid', async () => {
    const { session: s } = await signUp(server);
    const response = await server.call('GET', '/auth/sessions', { token: s.token });
    expect(response.body.sessions).toEqual([expect.objectContaining({ id: s.sid, current: true })]);
  });

  it('rotates the refresh token on every use and keeps the same session', async () => {
    const { session: s0 } = await signUp(server);
    const response = await refresh(server, s0.refreshToken);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.body).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 900,
      refreshToken: expect.stringMatching(REFRESH_TOKEN),
      refreshExpiresIn: 2592000,
      user: { id: s0.userId },
    });
    const s1 = session(response.body);
    expect(s1.refreshToken).not.toBe(s0.refreshToken);
    expect(s1.token).not.toBe(s0.token);
    expect(s1.sid).toBe(s0.sid);
    await expectSessionWorks(server, s1);

    const s2 = await refreshOk(server, s1.refreshToken);
    expect(new Set([s0.refreshToken, s1.refreshToken, s2.refreshToken]).size).toBe(3);
    expect(s2.sid).toBe(s0.sid);
    expect(await listSessionIds(server, s2.token)).toEqual([s0.sid]);
  });

  it('answers a replay of the just-rotated token within the grace window with the same successor and a fresh access token', async () => {
    const { session: s0 } = await signUp(server);
    const first = await refreshOk(server, s0.refreshToken);
    server.clock.advance(GRACE - 2);
    const replay = await refresh(server, s0.refreshToken);
    expect(replay.status).toBe(200);
    expect(replay.body.refreshToken).toBe(first.refreshToken);
    expect(replay.body.token).not.toBe(first.token);
    expect(decodeJwt(replay.body.token).jti).not.toBe(decodeJwt(first.token).jti);
    expect(decodeJwt(replay.body.token).sid).toBe(s0.sid);
    expect(replay.body.refreshExpiresIn).toBeLessThanOrEqual(first.refreshExpiresIn);
    await expectSessionWorks(server, session(replay.body));

    // The chain did not fork: one live token, and it is the successor.
    expect(await liveTokenCount(s0.sid)).toEqual({ live: 1, total: 2 });
    const next = await refreshOk(server, first.refreshToken);
    expect(next.sid).toBe(s0.sid);
  });

  it('gives all 10 concurrent refreshes of one token the same successor and leaves exactly one live token', async () => {
    const { session: s0 } = await signUp(server);
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(server, s0.refreshToken)));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    const successors = new Set(results.map((r) => r.body.refreshToken));
    expect(successors.size).toBe(1);
    const [successor] = successors;
    expect(successor).not.toBe(s0.refreshToken);
    expect(new Set(results.map((r) => decodeJwt(r.body.token).sid))).toEqual(new Set([s0.sid]));
    expect(await liveTokenCount(s0.sid)).toEqual({ live: 1, total: 2 });

    const next = await refreshOk(server, successor);
    await expectSessionWorks(server, next);

    // After the grace window the original is plain reuse: the session ends.
    server.clock.advance(GRACE + 1);
    await expectRefreshRefused(server, s0.refreshToken);
    await expectRefreshRefused(server, next.refreshToken);
    await expectAccessRefused(server, next.token);
  });

  it('ends the whole session when a rotated token is reused after the grace window', async () => {
    const { account, session: s0 } = await signUp(server);
    const bystander = await signIn(server, account);
    const s1 = await refreshOk(server, s0.refreshToken);
    await expectSessionWorks(server, s1);

    server.clock.advance(GRACE + 1);
    await expectRefreshRefused(server, s0.refreshToken);

    // The successor and every access token of the session are dead too.
    await expectRefreshRefused(server, s1.refreshToken);
    await expectAccessRefused(server, s1.token);
    await expectAccessRefused(server, s0.token);
    expect(await listSessionIds(server, bystander.token)).toEqual([bystander.sid]);
    await expectSessionWorks(server, await refreshOk(server, bystander.refreshToken));
  });

  it('ends the whole session when an older ancestor (the grandparent) is replayed inside the grace window', async () => {
    const { account, session: s0 } = await signUp(server);
    const bystander = await signIn(server, account);
    const s1 = await refreshOk(server, s0.refreshToken);
    const s2 = await refreshOk(server, s1.refreshToken);

    await expectRefreshRefused(server, s0.refreshToken);

    await expectRefreshRefused(server, s2.refreshToken);
    await expectRefreshRefused(server, s1.refreshToken);
    await expectAccessRefused(server, s2.token);
    expect(await listSessionIds(server, bystander.token)).toEqual([bystander.sid]);
  });

  const malformed: [string, (real: Session) => string][] = [
    ['a malformed token', () => 'not a refresh token'],
    ['an unknown token of the right shape', () => 'A'.repeat(43)],
    ['a truncated real token', (real) => real.refreshToken.slice(0, -1)],
    ['a real token cut in half', (real) => real.refreshToken.slice(0, 21)],
    ['a real token with a character added', (real) => `${real.refreshToken}A`],
    ['a real token with one character changed', (real) => `${real.refreshToken.startsWith('A') ? 'B' : 'A'}${real.refreshToken.slice(1)}`],
    ['the access token (about 900 characters) in place of the refresh token', (real) => real.token],
  ];

  it.each(malformed)('refuses %s with 401 invalid_refresh_token and leaves the real session alone', async (_name, mangle) => {
    const { session: s } = await signUp(server);
    const presented = mangle(s);
    expect(presented).not.toBe(s.refreshToken);
    await expectRefreshRefused(server, presented);
    await expectSessionWorks(server, await refreshOk(server, s.refreshToken));
  });

  it("answers 404 session_not_found to DELETE of another user's session, which keeps working", async () => {
    const { session: mine } = await signUp(server);
    const { session: theirs } = await signUp(server);
    const response = await server.call('DELETE', `/auth/sessions/${theirs.sid}`, { token: mine.token });
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ statusCode: 404, error: 'Not Found', message: expect.any(String), code: 'session_not_found' });
    await expectSessionWorks(server, theirs);
    expect(await listSessionIds(server, theirs.token)).toEqual([theirs.sid]);
    await expectSessionWorks(server, await refreshOk(server, theirs.refreshToken));
  });

  it.each(['not-a-session', '12345', '00000000-0000-0000-0000-000000000000', 'AAAAAAAA-0000-0000-0000-000000000000', '%27%20OR%201%3D1'])(
    'answers 404 session_not_found to DELETE /auth/sessions/%s (malformed or unknown id)',
    async (id) => {
      const { session: s } = await signUp(server);
      const response = await server.call('DELETE', `/auth/sessions/${id}`, { token: s.token });
      expect(response.status).toBe(404);
      expect(response.body).toEqual({ statusCode: 404, error: 'Not Found', message: expect.any(String), code: 'session_not_found' });
      await expectSessionWorks(server, s);
    },
  );

  it('ends another session of the same user on DELETE /auth/sessions/:id: its refresh and access tokens are refused', async () => {
    const { account, session: current } = await signUp(server);
    const other = await signIn(server, account);
    await expectSessionWorks(server, other);

    const response = await server.call('DELETE', `/auth/sessions/${other.sid}`, { token: current.token });
    expect(response.status).toBe(204);
    expect(response.body).toBeUndefined();

    await expectRefreshRefused(server, other.refreshToken);
    await expectAccessRefused(server, other.token);
    expect(await listSessionIds(server, current.token)).toEqual([current.sid]);
    await expectSessionWorks(server, current);

    const again = await server.call('DELETE', `/auth/sessions/${other.sid}`, { token: current.token });
    expect(again.status).toBe(404);
    expect(again.body.code).toBe('session_not_found');
  });

  it("ends the bearer's session on POST /auth/signout: 204, then its refresh token is refused", async () => {
    const { account, session: s } = await signUp(server);
    const other = await signIn(server, account);
    const response = await server.call('POST', '/auth/signout', { token: s.token });
    expect(response.status).toBe(204);
    expect(response.body).toBeUndefined();
    await expectRefreshRefused(server, s.refreshToken);
    await expectAccessRefused(server, s.token);
    await expectSessionWorks(server, other);
    expect(await listSessionIds(server, other.token)).toEqual([other.sid]);
  });

  it('ends the session of a refresh token given alone in the body of POST /auth/signout', async () => {
    const { account, session: s } = await signUp(server);
    const other = await signIn(server, account);
    const response = await server.call('POST', '/auth/signout', { body: { refreshToken: s.refreshToken } });
    expect(response.status).toBe(204);
    expect(response.body).toBeUndefined();
    await expectRefreshRefused(server, s.refreshToken);
    await expectAccessRefused(server, s.token);
    await expectSessionWorks(server, other);
  });

  it('answers POST /auth/signout without any token with 401 missing_token', async () => {
    const response = await server.call('POST', '/auth/signout');
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String), code: 'missing_token' });
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="signet"');
  });

  it("ends every session of the user on POST /auth/signout-all while another user's session lives", async () => {
    const { account, session: a } = await signUp(server);
    const b = await signIn(server, account);
    const c = await signIn(server, account);
    const { session: stranger } = await signUp(server);

    const response = await server.call('POST', '/auth/signout-all', { token: b.token });
    expect(response.status).toBe(204);
    expect(response.body).toBeUndefined();

    for (const s of [a, b, c]) {
      await expectAccessRefused(server, s.token);
      await expectRefreshRefused(server, s.refreshToken);
    }
    const fresh = await signIn(server, account);
    expect(await listSessionIds(server, fresh.token)).toEqual([fresh.sid]);

    await expectSessionWorks(server, stranger);
    await expectSessionWorks(server, await refreshOk(server, stranger.refreshToken));
  });

  it('answers POST /auth/signout-all without a token with 401 missing_token', async () => {
    const response = await server.call('POST', '/auth/signout-all');
    expect(response.status).toBe(401);
    expect(response.body.code).toBe('missing_token');
  });
});

describe.each(DIALECTS)('session lifetimes (idle 1800 s, absolute 3600 s) on %s', (dialect) => {
  const IDLE = 1800;
  const ABSOLUTE = 3600;
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { sessionAbsoluteTtl: ABSOLUTE, refreshIdleTtl: IDLE });
  });
  afterAll(async () => {
    await server.close();
  });

  it('never lets refreshExpiresIn grow past the absolute session lifetime', async () => {
    const { session: s0 } = await signUp(server);
    expect(s0.refreshExpiresIn).toBe(IDLE);

    server.clock.advance(1000); // 2600 s of the session left: the idle limit is sooner
    const s1 = await refreshOk(server, s0.refreshToken);
    expect(s1.refreshExpiresIn).toBe(IDLE);

    server.clock.advance(1000); // 1600 s left
    const s2 = await refreshOk(server, s1.refreshToken);
    expect(s2.refreshExpiresIn).toBeLessThanOrEqual(ABSOLUTE - 2000);
    expect(s2.refreshExpiresIn).toBeGreaterThanOrEqual(ABSOLUTE - 2000 - 5);

    server.clock.advance(1000); // 600 s left
    const s3 = await refreshOk(server, s2.refreshToken);
    expect(s3.refreshExpiresIn).toBeLessThanOrEqual(ABSOLUTE - 3000);
    expect(s3.refreshExpiresIn).toBeGreaterThanOrEqual(ABSOLUTE - 3000 - 5);
  });

  it('ends a session left unused past refreshIdleTtl while a used one lives on', async () => {
    const { account, session: idle } = await signUp(server);
    const used = await signIn(server, account);

    server.clock.advance(IDLE - 100);
    const usedLater = await refreshOk(server, used.refreshToken);

    server.clock.advance(200); // idle: 1900 s unused; used: 200 s since its refresh
    await expectRefreshRefused(server, idle.refreshToken);
    const stillUsed = await refreshOk(server, usedLater.refreshToken);
    expect(await listSessionIds(server, stillUsed.token)).toEqual([used.sid]);
  });

  it('ends a session at its absolute lifetime however recently it was refreshed', async () => {
    const { session: s0 } = await signUp(server);
    server.clock.advance(1500);
    const s1 = await refreshOk(server, s0.refreshToken);
    server.clock.advance(1500);
    const s2 = await refreshOk(server, s1.refreshToken);
    await expectSessionWorks(server, s2);

    server.clock.advance(ABSOLUTE - 3000 + 1); // 601 s after the last refresh, 3601 s after sign-in
    await expectRefreshRefused(server, s2.refreshToken);
    // The access token is inside its own 900 s, but its session is over.
    await expectAccessRefused(server, s2.token);
  });
});
