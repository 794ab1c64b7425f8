import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT_MAX_ATTEMPTS, CODE_MAX_ATTEMPTS } from '../../src/core/email-signin/service.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { PageClient } from '../support/pages.js';
import { startSmtpServer } from '../support/smtp.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Passwordless sign-in by emailed code and link (EMAIL_SIGNIN=both), through
 * the real mail queue and a real SMTP server, on both databases: single use,
 * expiry, the per-code and per-account caps under concurrent bursts, and the
 * same answer for an address with no account.
 */
describe.each(DIALECTS)('sign-in by email on %s', (dialect) => {
  let smtp: TestSmtpServer;
  let server: TestServer;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    server = await startTestServer(dialect, { smtpUrl: smtp.url, emailSignin: 'both', dev: true });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  async function account() {
    const body = newAccount();
    expect((await server.call('POST', '/auth/signup', { body })).status).toBe(201);
    return body;
  }

  /** Asks for a sign-in mail and returns its code and link token (the newest mail to that address). */
  async function requestMail(email: string): Promise<{ code: string; token: string }> {
    const before = smtp.to(email).filter((m) => m.subject.startsWith('Your sign-in code')).length;
    const reply = await server.call('POST', '/auth/email-signin', { body: { email } });
    expect(reply.status).toBe(202);
    await server.signet.services.emailSignIn.settle();
    await server.signet.services.mailer.flush();
    await smtp.waitFor(() => smtp.to(email).filter((m) => m.subject.startsWith('Your sign-in code')).length > before, 5000);
    const mail = smtp
      .to(email)
      .filter((m) => m.subject.startsWith('Your sign-in code'))
      .at(-1)!;
    const code = /Your sign-in code: (\d{6})/.exec(mail.subject)![1];
    const token = /sign-in\/email\/link\?token=([A-Za-z0-9_-]{43})/.exec(mail.text)![1];
    expect(mail.text).toContain(code);
    return { code, token };
  }

  const verify = (email: string, code: string, headers: Record<string, string> = {}) =>
    server.call('POST', '/auth/email-signin/verify', { body: { email, code }, headers });
  const wrong = (code: string) => (code === '000000' ? '000001' : '000000');

  it('signs in with the emailed code once (amr otp), and proves the address', async () => {
    const { email } = await account();
    const { code } = await requestMail(email);
    const signedIn = await verify(email, code);
    expect(signedIn.status).toBe(200);
    expect(decodeJwt(signedIn.body.token).amr).toEqual(['otp']);
    expect(signedIn.body.user.emailVerified).toBe(true);
    const again = await verify(email, code);
    expect(again.status).toBe(401);
    expect(again.body.code).toBe('invalid_code');
  });

  it('signs in with the emailed link once; the code of the same mail is spent with it', async () => {
    const { email } = await account();
    const { code, token } = await requestMail(email);
    const signedIn = await server.call('POST', '/auth/email-signin/link', { body: { token } });
    expect(signedIn.status).toBe(200);
    const reuse = await Promise.all([1, 2, 3].map(() => server.call('POST', '/auth/email-signin/link', { body: { token } })));
    for (const r of reuse) expect(r.body.code).toBe('invalid_token');
    expect((await verify(email, code)).status).toBe(401);
  });

  it('a link used by a concurrent burst signs in exactly once', async () => {
    const { email } = await account();
    const { token } = await requestMail(email);
    const burst = await Promise.all(Array.from({ length: 10 }, () => server.call('POST', '/auth/email-signin/link', { body: { token } })));
    expect(burst.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('an expired code and an expired link are refused', async () => {
    const { email } = await account();
    const { code, token } = await requestMail(email);
    server.clock.advance(601);
    expect((await verify(email, code)).body.code).toBe('invalid_code');
    expect((await server.call('POST', '/auth/email-signin/link', { body: { token } })).body.code).toBe('invalid_token');
  });

  it('a newer mail retires the older code', async () => {
    const { email } = await account();
    const first = await requestMail(email);
    const second = await requestMail(email);
    if (first.code !== second.code) expect((await verify(email, first.code)).status).toBe(401);
    expect((await verify(email, second.code)).status).toBe(200);
  });

  it(`checks at most ${CODE_MAX_ATTEMPTS} guesses of one code, however many arrive at once; then even the right code is refused`, async () => {
    const { email } = await account();
    const { code } = await requestMail(email);
    const burst = await Promise.all(Array.from({ length: 20 }, () => verify(email, wrong(code))));
    expect(burst.every((r) => r.status === 401 && r.body.code === 'invalid_code')).toBe(true);
    const row = await server.signet.services.db.kysely
      .selectFrom('email_signin_codes')
      .innerJoin('users', 'users.id', 'email_signin_codes.user_id')
      .select(['email_signin_codes.attempts'])
      .where('users.email', '=', email)
      .orderBy('email_signin_codes.created_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(row.attempts).toBe(CODE_MAX_ATTEMPTS);
    expect((await verify(email, code)).status).toBe(401);
  });

  it(`caps guesses per account at ${ACCOUNT_MAX_ATTEMPTS} an hour across codes: a new code buys no new guesses`, async () => {
    const { email } = await account();
    const first = await requestMail(email);
    await Promise.all(Array.from({ length: 8 }, () => verify(email, wrong(first.code))));
    const second = await requestMail(email);
    await Promise.all(Array.from({ length: 8 }, () => verify(email, wrong(second.code))));
    const budget = await server.signet.services.db.kysely
      .selectFrom('email_signin_budgets')
      .innerJoin('users', 'users.id', 'email_signin_budgets.user_id')
      .select(['email_signin_budgets.attempts'])
      .where('users.email', '=', email)
      .executeTakeFirstOrThrow();
    expect(budget.attempts).toBe(ACCOUNT_MAX_ATTEMPTS);
    const third = await requestMail(email);
    expect((await verify(email, third.code)).status).toBe(401);
    // An hour later the account may try again (with a fresh code: the last one has expired).
    server.clock.advance(3601);
    const fourth = await requestMail(email);
    expect((await verify(email, fourth.code)).status).toBe(200);
  });

  it('answers an address with no account exactly as one with an account, and mails nothing', async () => {
    const { email } = await account();
    const unknown = newAccount().email;
    const [known, missing] = await Promise.all([
      server.call('POST', '/auth/email-signin', { body: { email } }),
      server.call('POST', '/auth/email-signin', { body: { email: unknown } }),
    ]);
    expect(missing.status).toBe(known.status);
    expect(missing.body).toEqual(known.body);
    await server.signet.services.emailSignIn.settle();
    await server.signet.services.mailer.flush();
    expect(smtp.to(unknown)).toHaveLength(0);
    const guess = await verify(unknown, '123456');
    expect(guess.status).toBe(401);
    expect(guess.body.code).toBe('invalid_code');
  });

  it('answers the request in about the same time for an address with and without an account (the work runs after the answer)', async () => {
    const { email } = await account();
    const unknown = newAccount().email;
    const median = async (address: string) => {
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const started = performance.now();
        expect((await server.call('POST', '/auth/email-signin', { body: { email: address } })).status).toBe(202);
        times.push(performance.now() - started);
      }
      return times.sort((a, b) => a - b)[7];
    };
    const known = await median(email);
    const missing = await median(unknown);
    await server.signet.services.emailSignIn.settle();
    console.log(`email-signin request median: account ${known.toFixed(2)} ms, no account ${missing.toFixed(2)} ms`);
    expect(Math.abs(known - missing)).toBeLessThan(25);
  });

  it('starts a cookie session from an allowed origin, and refuses another site', async () => {
    const { email } = await account();
    const { code } = await requestMail(email);
    const evil = await verify(email, code, { 'x-session-mode': 'cookie', origin: 'https://evil.example' });
    expect(evil.body.code).toBe('csrf_failed');
    const ok = await verify(email, code, { 'x-session-mode': 'cookie', origin: new URL(server.signet.services.config.publicUrl).origin });
    expect(ok.status).toBe(200);
    expect(ok.body.tokenType).toBe('cookie');
    expect(ok.headers.getSetCookie().some((c) => c.startsWith('signet-access='))).toBe(true);
  });

  it('validates input with the contract error body', async () => {
    const bad = await server.call('POST', '/auth/email-signin/verify', { body: { email: 'x', code: '12' } });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('validation_failed');
    expect(bad.body.details.map((d: { field: string }) => d.field).sort()).toEqual(['code', 'email']);
  });

  it('works on the hosted pages: "Email me a sign-in code", the code page, and the link page (one click)', async () => {
    const { email } = await account();
    // The pages judge a form's Origin against PUBLIC_URL (http://signet.test in tests).
    const browser = new PageClient(server.url, { origin: 'http://signet.test' });
    const signIn = await browser.get('/sign-in');
    expect(signIn.text).toContain('Email me a sign-in code');
    await browser.get('/sign-in/email');
    const before = smtp.to(email).length;
    const codePage = await browser.post('/sign-in/email', { email });
    expect(codePage.status).toBe(200);
    expect(codePage.text).toContain('Enter your code');
    await server.signet.services.emailSignIn.settle();
    await server.signet.services.mailer.flush();
    await smtp.waitFor(() => smtp.to(email).length > before, 5000);
    const mail = smtp.to(email).at(-1)!;
    const code = /Your sign-in code: (\d{6})/.exec(mail.subject)![1];
    const wrongPage = await browser.post('/sign-in/email/code', { email, code: wrong(code) });
    expect(wrongPage.status).toBe(401);
    const done = await browser.post('/sign-in/email/code', { email, code });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/account');
    expect(browser.cookies.has('signet-access')).toBe(true);

    const { token } = await requestMail(email);
    const other = new PageClient(server.url, { origin: 'http://signet.test' });
    const linkPage = await other.get(`/sign-in/email/link?token=${token}`);
    expect(linkPage.status).toBe(200);
    // Fetching the page (as a mail scanner would) spends nothing; the click does.
    const clicked = await other.post('/sign-in/email/link', { token });
    expect(clicked.status).toBe(303);
    expect((await other.post('/sign-in/email/link', { token })).status).toBe(400);
  });
});

describe('sign-in by email when off (the default)', () => {
  it('answers 404 email_signin_disabled and shows no link on the sign-in page', async () => {
    const server = await startTestServer('sqlite');
    try {
      const reply = await server.call('POST', '/auth/email-signin', { body: { email: 'a@example.com' } });
      expect(reply.status).toBe(404);
      expect(reply.body.code).toBe('email_signin_disabled');
      expect((await new PageClient(server.url).get('/sign-in')).text).not.toContain('Email me');
      expect((await new PageClient(server.url).get('/sign-in/email')).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
