import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditLog } from '../../src/core/audit.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Issue 5 §8 over HTTP: security events land in the audit log and each user
 * sees their own at GET /auth/audit, and nobody else's.
 */

/** The events this suite drives; others (added by later features) are ignored when comparing order. */
const DRIVEN = new Set(['user.signed_up', 'auth.signin_failed', 'auth.signin_succeeded', 'session.ended', 'account.password_changed']);

describe.each(DIALECTS)('audit log over HTTP (%s)', (dialect) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Audit writes are queued off the request path; wait for them before reading. */
  async function flushed(): Promise<void> {
    const { audit } = server.signet.services as { audit?: AuditLog };
    if (!audit) throw new Error('services.audit is not wired yet');
    await audit.flush();
  }

  async function events(token: string, query = ''): Promise<any[]> {
    await flushed();
    const reply = await server.call('GET', `/auth/audit${query}`, { token });
    expect(reply.status).toBe(200);
    return reply.body.events;
  }

  /** Sign-up, one wrong password, sign-in, sign-out of that session, password change. */
  async function activity() {
    const account = newAccount();
    const signup = await server.call('POST', '/auth/signup', { body: account });
    expect(signup.status).toBe(201);
    const wrong = await server.call('POST', '/auth/signin', { body: { email: account.email, password: 'not-the-password-at-all' } });
    expect(wrong.status).toBe(401);
    const signin = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(signin.status).toBe(200);
    expect((await server.call('POST', '/auth/signout', { token: signin.body.token })).status).toBe(204);
    const newPassword = `${account.password}-changed`;
    const change = await server.call('POST', '/auth/password/change', { token: signup.body.token, body: { currentPassword: account.password, newPassword } });
    expect(change.status).toBe(204);
    return { account, newPassword, token: signup.body.token as string, userId: signup.body.user.id as string, signedInSession: signin.body };
  }

  it('shows sign-up, failed sign-in, sign-in and password change to the user, newest first', async () => {
    const { token } = await activity();
    const list = await events(token);
    const driven = list.filter((e) => DRIVEN.has(e.event) && e.event !== 'session.ended');
    expect(driven.map((e) => e.event)).toEqual(['account.password_changed', 'auth.signin_succeeded', 'auth.signin_failed', 'user.signed_up']);
    expect(driven.find((e) => e.event === 'auth.signin_failed').details).toEqual({ reason: 'wrong_password', knownDevice: false });
    for (const e of list) {
      expect(e).toEqual({
        seq: expect.any(Number),
        id: expect.any(String),
        at: expect.any(String),
        event: expect.any(String),
        ip: e.ip,
        details: expect.any(Object),
      });
      expect(new Date(e.at).toISOString()).toBe(e.at);
    }
    const seqs = list.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
  });

  it('records a sign-out as the end of that session', async () => {
    const { token } = await activity();
    const ended = (await events(token)).filter((e) => e.event === 'session.ended');
    expect(ended.map((e) => e.details.reason)).toContain('signout');
  });

  it('records the client address', async () => {
    const { token } = await activity();
    const signin = (await events(token)).find((e) => e.event === 'auth.signin_succeeded');
    expect(signin.ip).toBe('127.0.0.1');
  });

  it("never shows another user's events", async () => {
    const alice = await activity();
    const bob = await activity();
    // Someone guessing at Alice's account, and a sign-in attempt for no account at all.
    await server.call('POST', '/auth/signin', { body: { email: alice.account.email, password: 'guess-guess-guess' } });
    await server.call('POST', '/auth/signin', { body: { email: newAccount().email, password: 'guess-guess-guess' } });
    const mine = await events(alice.token);
    const theirs = await events(bob.token);
    expect(mine.filter((e) => e.event === 'user.signed_up')).toHaveLength(1);
    expect(theirs.filter((e) => e.event === 'auth.signin_failed')).toHaveLength(1);
    expect(mine.filter((e) => e.event === 'auth.signin_failed')).toHaveLength(2);
    const ids = new Set(mine.map((e) => e.id));
    expect(theirs.some((e) => ids.has(e.id))).toBe(false);
  });

  it('keeps passwords, tokens and email addresses out of the entries', async () => {
    const { account, newPassword, token, signedInSession } = await activity();
    const text = JSON.stringify(await events(token));
    for (const secret of [account.password, newPassword, account.email, token, signedInSession.token, signedInSession.refreshToken])
      expect(text).not.toContain(secret);
    expect(text).not.toContain('@');
  });

  it('pages with ?limit= and ?before=', async () => {
    const { token } = await activity();
    const all = await events(token);
    expect(all.length).toBeGreaterThanOrEqual(4);
    const first = await events(token, '?limit=2');
    expect(first.map((e) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    const second = await events(token, `?limit=2&before=${first[1].seq}`);
    expect(second.map((e) => e.id)).toEqual(all.slice(2, 4).map((e) => e.id));
  });

  it.each([
    ['?limit=0', ['limit']],
    ['?limit=101', ['limit']],
    ['?limit=ten', ['limit']],
    ['?limit=2.5', ['limit']],
    ['?before=-1', ['before']],
    ['?before=0', ['before']],
    ['?limit=&before=x', ['limit', 'before']],
  ])('answers %s with 400 validation_failed', async (query, fields) => {
    const signup = await server.call('POST', '/auth/signup', { body: newAccount() });
    const reply = await server.call('GET', `/auth/audit${query}`, { token: signup.body.token });
    expect(reply.status).toBe(400);
    expect(reply.body.code).toBe('validation_failed');
    expect(reply.body.details.map((d: { field: string }) => d.field)).toEqual(fields);
  });

  it('needs a bearer token', async () => {
    const reply = await server.call('GET', '/auth/audit');
    expect(reply.status).toBe(401);
    expect(reply.body.code).toBe('missing_token');
  });
});
