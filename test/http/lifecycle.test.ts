import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import type { SignetConfig } from '../../src/config.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { PageClient } from '../support/pages.js';
import { startSmtpServer } from '../support/smtp.js';
import type { CapturedMail, TestSmtpServer } from '../support/smtp.js';

/**
 * Account lifecycle over HTTP with a real SMTP server (issue 4; contract rows
 * /auth/email/verify, /auth/email/resend, /auth/password/forgot,
 * /auth/password/reset, /auth/password/change, PATCH /auth/me). Every mail is
 * read from the SMTP server, its link followed, and the outcome checked over
 * HTTP. Time moves only through server.clock.
 *
 * Each test speaks from its own client address (X-Forwarded-For from a trusted
 * loopback proxy), so per-IP limits of one test never leak into another.
 */

const PUBLIC_URL = 'http://signet.test';
const MAIL_FROM = 'Signet Test <no-reply@signet.test>';
const SUBJECT = { verify: 'Confirm your email address', reset: 'Reset your password', changed: 'Your password was changed' } as const;
const TOKEN_CHARS = '[A-Za-z0-9_-]';
const RESET_TTL = 30 * 60;
const VERIFY_TTL = 24 * 60 * 60;

let ipSeq = 0;
/** A client address no other test uses. */
function freshIp(): string {
  ipSeq++;
  return `10.${(ipSeq >> 16) & 255}.${(ipSeq >> 8) & 255}.${ipSeq & 255}`;
}

type Reply = Awaited<ReturnType<TestServer['call']>>;

interface Session {
  token: string;
  refreshToken: string;
}

/** One Signet server, the SMTP server it delivers to, and the client address of the running test. */
class Rig {
  ip = freshIp();
  constructor(
    readonly server: TestServer,
    readonly smtp: TestSmtpServer,
  ) {}

  call(method: string, path: string, options: { body?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    return this.server.call(method, path, { ...options, headers: { 'x-forwarded-for': this.ip, ...options.headers } });
  }

  /** Background work (forgot/resend) finished and every due mail handed to SMTP. */
  async deliver(): Promise<void> {
    await this.server.signet.services.lifecycle.settle();
    await this.server.signet.services.mailer.flush();
  }

  /** Mails received for `address` (with `subject`), after delivering everything due. */
  async mails(address: string, subject?: string): Promise<CapturedMail[]> {
    await this.deliver();
    return this.smtp.to(address).filter((m) => subject === undefined || m.subject === subject);
  }

  /** The `n`-th (1-based) mail with `subject` to `address`, waiting a bounded time for it. */
  async mail(address: string, subject: string, n = 1): Promise<CapturedMail> {
    await this.deliver();
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = this.smtp.to(address).filter((m) => m.subject === subject);
      if (found.length >= n) return found[n - 1];
      if (Date.now() > deadline) throw new Error(`expected ${n} mail(s) "${subject}" to ${address}, got ${found.length}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await this.server.signet.services.mailer.flush();
    }
  }

  async outbox(address: string) {
    return this.server.signet.services.db.kysely
      .selectFrom('mail_outbox')
      .selectAll()
      .where('recipient', '=', address)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  async signUp(overrides: Record<string, unknown> = {}) {
    const account = newAccount(overrides);
    const response = await this.call('POST', '/auth/signup', { body: account });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return { account, response };
  }

  /** Signs up (verification optional or off) and returns the account and its first session. */
  async signUpWithSession(overrides: Record<string, unknown> = {}) {
    const { account, response } = await this.signUp(overrides);
    return { account, user: response.body.user, session: { token: response.body.token, refreshToken: response.body.refreshToken } satisfies Session };
  }

  signIn(email: string, password: string): Promise<Reply> {
    return this.call('POST', '/auth/signin', { body: { email, password } });
  }

  async signInOk(email: string, password: string): Promise<Session> {
    const response = await this.signIn(email, password);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return { token: response.body.token, refreshToken: response.body.refreshToken };
  }

  forgot(email: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    return this.call('POST', '/auth/password/forgot', { body: { email }, headers });
  }

  resend(email: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    return this.call('POST', '/auth/email/resend', { body: { email }, headers });
  }

  verify(token: unknown): Promise<Reply> {
    return this.call('POST', '/auth/email/verify', { body: { token } });
  }

  reset(token: unknown, password: unknown): Promise<Reply> {
    return this.call('POST', '/auth/password/reset', { body: { token, password } });
  }

  me(token: string): Promise<Reply> {
    return this.call('GET', '/auth/me', { token });
  }

  refresh(refreshToken: string): Promise<Reply> {
    return this.call('POST', '/auth/token/refresh', { body: { refreshToken } });
  }

  /** Signs up, then takes the token from the reset mail that follows a forgot request. */
  async resetToken(email: string, n = 1): Promise<string> {
    const response = await this.forgot(email);
    expect(response.status).toBe(202);
    return linkToken(await this.mail(email, SUBJECT.reset, n), 'reset-password');
  }
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The 43-character token of the `<publicUrl>/<page>?token=` link in the text part, checked against the HTML part. */
function linkToken(mail: CapturedMail, page: 'verify-email' | 'reset-password'): string {
  const pattern = new RegExp(`${escapeRegExp(PUBLIC_URL)}/${page}\\?token=(${TOKEN_CHARS}+)`);
  const match = pattern.exec(mail.text);
  expect(match, `no ${page} link in:\n${mail.text}`).not.toBeNull();
  const token = match![1];
  expect(token).toMatch(new RegExp(`^${TOKEN_CHARS}{43}$`));
  expect(mail.html).toContain(`href="${PUBLIC_URL}/${page}?token=${token}"`);
  return token;
}

function expectError(response: Reply, status: number, error: string, code: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.body).toEqual({ statusCode: status, error, message: expect.any(String), code });
}

/** Exactly `{statusCode: 400, error: "Bad Request", message, code: "invalid_token"}`, never echoing the token. */
function expectInvalidToken(response: Reply, token?: string): void {
  expectError(response, 400, 'Bad Request', 'invalid_token');
  expect(Object.keys(response.body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  if (token) expect(JSON.stringify(response.body)).not.toContain(token);
}

function expectValidationFailed(response: Reply, fields: string[]): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'validation_failed' });
  expect(response.body.details).toEqual(expect.arrayContaining(fields.map((field) => ({ field, message: expect.any(String) }))));
  expect(response.body.details.map((d: { field: string }) => d.field).sort()).toEqual([...fields].sort());
}

async function expectSessionDead(rig: Rig, session: Session): Promise<void> {
  const me = await rig.me(session.token);
  expectError(me, 401, 'Unauthorized', 'invalid_token');
  const refreshed = await rig.refresh(session.refreshToken);
  expectError(refreshed, 401, 'Unauthorized', 'invalid_refresh_token');
}

async function expectSessionAlive(rig: Rig, session: Session, userId: string): Promise<Session> {
  const me = await rig.me(session.token);
  expect(me.status, JSON.stringify(me.body)).toBe(200);
  expect(me.body.user.id).toBe(userId);
  const refreshed = await rig.refresh(session.refreshToken);
  expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
  return { token: refreshed.body.token, refreshToken: refreshed.body.refreshToken };
}

function flipChar(token: string, index = 10): string {
  const c = token[index];
  return token.slice(0, index) + (c === 'A' ? 'B' : 'A') + token.slice(index + 1);
}

async function startRig(dialect: Parameters<typeof startTestServer>[0], smtp: TestSmtpServer, overrides: Partial<SignetConfig> = {}): Promise<Rig> {
  // Rate limits on (the production default): the abuse tests need them, and every test speaks from its own address.
  const server = await startTestServer(dialect, { smtpUrl: smtp.url, mailFrom: MAIL_FROM, trustProxy: ['127.0.0.1'], rateLimits: true, ...overrides });
  return new Rig(server, smtp);
}

describe.each(DIALECTS)('account lifecycle on %s', (dialect) => {
  let smtp: TestSmtpServer;
  beforeAll(async () => {
    smtp = await startSmtpServer();
  });
  afterAll(async () => {
    await smtp?.close();
  });

  // Sibling suites, each with its own server: never two PostgreSQL servers alive at once in this file.
  describe('EMAIL_VERIFICATION=optional (the default)', () => {
    let rig: Rig;
    beforeAll(async () => {
      rig = await startRig(dialect, smtp);
    });
    afterAll(async () => {
      await rig?.server.close();
    });
    beforeEach(() => {
      rig.ip = freshIp();
    });

    describe('email verification', () => {
      it('answers sign-up with a 201 session response and mails a verification link to the address', async () => {
        const { account, response } = await rig.signUp();
        expect(response.body).toMatchObject({
          token: expect.any(String),
          tokenType: 'Bearer',
          refreshToken: expect.any(String),
          user: { email: account.email, emailVerified: false },
        });
        expect(decodeJwt(response.body.token).email_verified).toBe(false);

        const mail = await rig.mail(account.email, SUBJECT.verify);
        expect(mail.from).toEqual([{ address: 'no-reply@signet.test', name: 'Signet Test' }]);
        expect(mail.to).toEqual([account.email]);
        expect(mail.rcptTo).toEqual([account.email.toLowerCase()]);
        expect(mail.parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
        expect(mail.text).toContain(account.email);
        expect(mail.html).toContain(account.email);
        linkToken(mail, 'verify-email');
        expect(await rig.mails(account.email)).toHaveLength(1);
      });

      it('verifies the email with the mailed token: 200 {user}, the same answer on repeat, and tokens then say email_verified', async () => {
        const { account, user, session } = await rig.signUpWithSession();
        const token = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');

        const first = await rig.verify(token);
        expect(first.status, JSON.stringify(first.body)).toBe(200);
        expect(first.headers.get('cache-control')).toBe('no-store');
        expect(first.body).toEqual({ user: { ...user, emailVerified: true, updatedAt: expect.any(String) } });

        const again = await rig.verify(token);
        expect(again.status).toBe(200);
        expect(again.body).toEqual(first.body);

        const me = await rig.me(session.token);
        expect(me.status).toBe(200);
        expect(me.body.user.emailVerified).toBe(true);

        const signedIn = await rig.signIn(account.email, account.password);
        expect(signedIn.status).toBe(200);
        expect(signedIn.body.user.emailVerified).toBe(true);
        expect(decodeJwt(signedIn.body.token).email_verified).toBe(true);
        const refreshed = await rig.refresh(session.refreshToken);
        expect(refreshed.status).toBe(200);
        expect(decodeJwt(refreshed.body.token).email_verified).toBe(true);
      });

      it('stores only a hash of the mailed token, expiring after 24 hours', async () => {
        const { account, user } = await rig.signUpWithSession();
        const token = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        const rows = await rig.server.signet.services.db.kysely.selectFrom('account_tokens').selectAll().where('user_id', '=', user.id).execute();
        expect(rows).toHaveLength(1);
        expect(JSON.stringify(rows)).not.toContain(token);
        expect(rows[0].kind).toBe('email_verify');
        expect(rows[0].token_hash).toBe(createHash('sha256').update(token).digest('base64url'));
        expect(Number(rows[0].expires_at) - Number(rows[0].created_at)).toBe(VERIFY_TTL * 1000);
        // The sent message's bodies (holding the link) are not kept either.
        const outbox = await rig.outbox(account.email);
        expect(outbox).toHaveLength(1);
        expect(outbox[0].sent_at).not.toBeNull();
        expect(JSON.stringify(outbox)).not.toContain(token);
      });

      it('refuses a verification token past its 24-hour lifetime with 400 invalid_token, and the user stays unverified', async () => {
        const { account } = await rig.signUpWithSession();
        const token = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        rig.server.clock.advance(VERIFY_TTL + 1);
        expectInvalidToken(await rig.verify(token), token);
        const fresh = await rig.signInOk(account.email, account.password);
        expect((await rig.me(fresh.token)).body.user.emailVerified).toBe(false);
      });

      it('refuses tampered, malformed and unknown verification tokens with exactly 400 invalid_token', async () => {
        const { account } = await rig.signUpWithSession();
        const token = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        for (const bad of [
          flipChar(token),
          flipChar(token, 42),
          token.slice(0, 42),
          `${token}A`,
          `${token.slice(0, 42)}=`,
          'not-a-token',
          'A'.repeat(43),
          '../../etc/passwd',
          "' OR 1=1 --",
          'x'.repeat(2000),
        ]) {
          expectInvalidToken(await rig.verify(bad), bad);
        }
        // None of that used up or spoiled the real token.
        const ok = await rig.verify(token);
        expect(ok.status).toBe(200);
        expect(ok.body.user.emailVerified).toBe(true);
      });

      it('refuses a verification body without a string token with 400 validation_failed', async () => {
        expectValidationFailed(await rig.call('POST', '/auth/email/verify', { body: {} }), ['token']);
        expectValidationFailed(await rig.call('POST', '/auth/email/verify', { body: { token: 42 } }), ['token']);
      });
    });

    describe('resending the verification mail', () => {
      it('answers 202 with an identical body for an unknown, a verified and an unverified address, and mails only the unverified one', async () => {
        const unverified = await rig.signUpWithSession();
        const verified = await rig.signUpWithSession();
        const unknown = newAccount().email;
        expect((await rig.verify(linkToken(await rig.mail(verified.account.email, SUBJECT.verify), 'verify-email'))).status).toBe(200);
        await rig.mail(unverified.account.email, SUBJECT.verify);

        const answers = [await rig.resend(unknown), await rig.resend(verified.account.email), await rig.resend(unverified.account.email)];
        for (const answer of answers) {
          expect(answer.status).toBe(202);
          expect(answer.headers.get('cache-control')).toBe('no-store');
          expect(answer.body).toEqual({ message: expect.any(String) });
          expect(answer.body).toEqual(answers[0].body);
          expect(answer.headers.get('content-type')).toBe(answers[0].headers.get('content-type'));
        }

        const second = await rig.mail(unverified.account.email, SUBJECT.verify, 2);
        linkToken(second, 'verify-email');
        expect(await rig.mails(unverified.account.email)).toHaveLength(2);
        expect(await rig.mails(verified.account.email)).toHaveLength(1);
        expect(await rig.mails(unknown)).toHaveLength(0);
        expect(await rig.outbox(unknown)).toHaveLength(0);
      });

      it('finds the account case-insensitively and mails the address as stored', async () => {
        const { account } = await rig.signUpWithSession();
        await rig.mail(account.email, SUBJECT.verify);
        expect((await rig.resend(account.email.toUpperCase())).status).toBe(202);
        const mail = await rig.mail(account.email, SUBJECT.verify, 2);
        expect(mail.to).toEqual([account.email]);
      });

      it('makes an older verification token invalid when a newer one is mailed', async () => {
        const { account } = await rig.signUpWithSession();
        const older = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        expect((await rig.resend(account.email)).status).toBe(202);
        const newer = linkToken(await rig.mail(account.email, SUBJECT.verify, 2), 'verify-email');
        expect(newer).not.toBe(older);

        expectInvalidToken(await rig.verify(older), older);
        const ok = await rig.verify(newer);
        expect(ok.status).toBe(200);
        expect(ok.body.user.emailVerified).toBe(true);
      });

      it('keeps a superseded verification token dead after the newer one verified the account (only the used token repeats)', async () => {
        const { account } = await rig.signUpWithSession();
        const older = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        expect((await rig.resend(account.email)).status).toBe(202);
        const newer = linkToken(await rig.mail(account.email, SUBJECT.verify, 2), 'verify-email');
        expect((await rig.verify(newer)).status).toBe(200);
        expect((await rig.verify(newer)).status).toBe(200);
        expectInvalidToken(await rig.verify(older), older);
      });
    });

    describe('forgotten password and reset', () => {
      it('answers 202 with an identical body for an existing and an unknown account, and mails only the existing one', async () => {
        const { account } = await rig.signUpWithSession();
        const unknown = newAccount().email;
        const existing = await rig.forgot(account.email);
        const missing = await rig.forgot(unknown);
        for (const answer of [existing, missing]) {
          expect(answer.status).toBe(202);
          expect(answer.headers.get('cache-control')).toBe('no-store');
          expect(answer.body).toEqual({ message: expect.any(String) });
        }
        expect(missing.body).toEqual(existing.body);
        expect(missing.headers.get('content-type')).toBe(existing.headers.get('content-type'));

        const mail = await rig.mail(account.email, SUBJECT.reset);
        expect(mail.from).toEqual([{ address: 'no-reply@signet.test', name: 'Signet Test' }]);
        expect(mail.to).toEqual([account.email]);
        expect(mail.text).toContain('30 minutes');
        linkToken(mail, 'reset-password');
        expect(await rig.mails(unknown)).toHaveLength(0);
        expect(await rig.outbox(unknown)).toHaveLength(0);
      });

      it('resets the password once with the mailed token: 204, every session ends, the new password works and a notice is mailed', async () => {
        const { account, user, session: first } = await rig.signUpWithSession();
        const second = await rig.signInOk(account.email, account.password);
        const token = await rig.resetToken(account.email);
        const newPassword = `${account.password}-renewed`;

        const reset = await rig.reset(token, newPassword);
        expect(reset.status, JSON.stringify(reset.body)).toBe(204);
        expect(reset.body).toBeUndefined();

        await expectSessionDead(rig, first);
        await expectSessionDead(rig, second);
        expectError(await rig.signIn(account.email, account.password), 401, 'Unauthorized', 'invalid_credentials');
        const fresh = await rig.signInOk(account.email, newPassword);
        await expectSessionAlive(rig, fresh, user.id);

        const notice = await rig.mail(account.email, SUBJECT.changed);
        expect(notice.to).toEqual([account.email]);
        expect(notice.text).toContain(account.email);
        expect(notice.text).toContain(`${PUBLIC_URL}/forgot-password`);
        expect(notice.text).not.toContain(newPassword);

        // Single use.
        expectInvalidToken(await rig.reset(token, `${newPassword}-again`), token);
        await rig.signInOk(account.email, newPassword);
      });

      it('refuses a weak new password with 400 weak_password without using up the token', async () => {
        const { account } = await rig.signUpWithSession();
        const token = await rig.resetToken(account.email);
        expectError(await rig.reset(token, 'password123'), 400, 'Bad Request', 'weak_password');
        expectError(await rig.reset(token, account.email), 400, 'Bad Request', 'weak_password');
        expectValidationFailed(await rig.reset(token, 'short'), ['password']);
        expectError(await rig.signIn(account.email, 'password123'), 401, 'Unauthorized', 'invalid_credentials');
        await rig.signInOk(account.email, account.password);

        const newPassword = `${account.password}-second-try`;
        expect((await rig.reset(token, newPassword)).status).toBe(204);
        await rig.signInOk(account.email, newPassword);
      });

      it('refuses a reset token past its 30-minute lifetime with 400 invalid_token', async () => {
        const { account } = await rig.signUpWithSession();
        const token = await rig.resetToken(account.email);
        rig.server.clock.advance(RESET_TTL - 60);
        // Still alive one minute before it expires (weak password: checked after the token, spends nothing).
        expectError(await rig.reset(token, 'password123'), 400, 'Bad Request', 'weak_password');
        rig.server.clock.advance(61);
        expectInvalidToken(await rig.reset(token, `${account.password}-late`), token);
        await rig.signInOk(account.email, account.password);
      });

      it('makes an older reset token invalid when a newer one is issued', async () => {
        const { account } = await rig.signUpWithSession();
        const older = await rig.resetToken(account.email, 1);
        const newer = await rig.resetToken(account.email, 2);
        expect(newer).not.toBe(older);
        expectInvalidToken(await rig.reset(older, `${account.password}-older`), older);
        expect((await rig.reset(newer, `${account.password}-newer`)).status).toBe(204);
        await rig.signInOk(account.email, `${account.password}-newer`);
      });

      it('refuses a reset token at /auth/email/verify and a verification token at /auth/password/reset (wrong kind), leaving both usable', async () => {
        const { account } = await rig.signUpWithSession();
        const verifyToken = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        const resetToken = await rig.resetToken(account.email);

        expectInvalidToken(await rig.verify(resetToken), resetToken);
        expectInvalidToken(await rig.reset(verifyToken, `${account.password}-via-verify`), verifyToken);
        expectError(await rig.signIn(account.email, `${account.password}-via-verify`), 401, 'Unauthorized', 'invalid_credentials');

        const verified = await rig.verify(verifyToken);
        expect(verified.status).toBe(200);
        expect(verified.body.user.emailVerified).toBe(true);
        expect((await rig.reset(resetToken, `${account.password}-via-reset`)).status).toBe(204);
      });

      it("refuses tampered, malformed and unknown reset tokens and another user's token never touches this account", async () => {
        const alice = await rig.signUpWithSession();
        const bob = await rig.signUpWithSession();
        const token = await rig.resetToken(alice.account.email);
        for (const bad of [flipChar(token), flipChar(token, 0), token.slice(1), `${token}x`, 'not-a-token', 'B'.repeat(43), '%00%0d%0a', 'x'.repeat(2000)]) {
          expectInvalidToken(await rig.reset(bad, `${alice.account.password}-tampered`), bad);
        }
        expectValidationFailed(await rig.call('POST', '/auth/password/reset', { body: { password: 'a-fine-new-passphrase' } }), ['token']);
        expectValidationFailed(await rig.call('POST', '/auth/password/reset', { body: { token: 7, password: 'a-fine-new-passphrase' } }), ['token']);

        // Alice's token changes Alice's password only.
        expect((await rig.reset(token, 'alice-owns-this-link-42')).status).toBe(204);
        await rig.signInOk(alice.account.email, 'alice-owns-this-link-42');
        await rig.signInOk(bob.account.email, bob.account.password);
        expectError(await rig.signIn(bob.account.email, 'alice-owns-this-link-42'), 401, 'Unauthorized', 'invalid_credentials');
      });

      it('mails the stored address when the request names it in another case, and only that address', async () => {
        const { account } = await rig.signUpWithSession();
        expect((await rig.forgot(`  ${account.email.toUpperCase()}  `)).status).toBe(202);
        const mail = await rig.mail(account.email, SUBJECT.reset);
        expect(mail.to).toEqual([account.email]);
        expect(mail.rcptTo).toEqual([account.email.toLowerCase()]);
      });
    });

    describe('changing the password', () => {
      it('needs the right current password (401 invalid_credentials) and a strong new one (400 weak_password)', async () => {
        const { account, user, session } = await rig.signUpWithSession();
        const other = await rig.signInOk(account.email, account.password);
        expectError(
          await rig.call('POST', '/auth/password/change', {
            token: session.token,
            body: { currentPassword: `${account.password}x`, newPassword: 'a-brand-new-passphrase' },
          }),
          401,
          'Unauthorized',
          'invalid_credentials',
        );
        expectError(
          await rig.call('POST', '/auth/password/change', { token: session.token, body: { currentPassword: account.password, newPassword: 'password123' } }),
          400,
          'Bad Request',
          'weak_password',
        );
        expectValidationFailed(
          await rig.call('POST', '/auth/password/change', { token: session.token, body: { currentPassword: account.password, newPassword: 'short' } }),
          ['newPassword'],
        );
        expectValidationFailed(await rig.call('POST', '/auth/password/change', { token: session.token, body: { newPassword: 'a-brand-new-passphrase' } }), [
          'currentPassword',
        ]);
        expectError(
          await rig.call('POST', '/auth/password/change', { body: { currentPassword: account.password, newPassword: 'a-brand-new-passphrase' } }),
          401,
          'Unauthorized',
          'missing_token',
        );

        // Nothing changed: both sessions live, the old password works, no notice was sent.
        await expectSessionAlive(rig, session, user.id);
        await expectSessionAlive(rig, other, user.id);
        await rig.signInOk(account.email, account.password);
        expect(await rig.mails(account.email, SUBJECT.changed)).toHaveLength(0);
      });

      it('changes it: 204, the calling session keeps working, every other session ends, a notice is mailed', async () => {
        const { account, user, session: caller } = await rig.signUpWithSession();
        const other = await rig.signInOk(account.email, account.password);
        const third = await rig.signInOk(account.email, account.password);
        const newPassword = `${account.password}-changed`;

        const response = await rig.call('POST', '/auth/password/change', { token: caller.token, body: { currentPassword: account.password, newPassword } });
        expect(response.status, JSON.stringify(response.body)).toBe(204);
        expect(response.body).toBeUndefined();

        await expectSessionAlive(rig, caller, user.id);
        await expectSessionDead(rig, other);
        await expectSessionDead(rig, third);
        expectError(await rig.signIn(account.email, account.password), 401, 'Unauthorized', 'invalid_credentials');
        await rig.signInOk(account.email, newPassword);

        const notice = await rig.mail(account.email, SUBJECT.changed);
        expect(notice.to).toEqual([account.email]);
        expect(notice.text).toContain(account.email);
        expect(notice.text).not.toContain(newPassword);
      });

      it('retires an outstanding reset link when the password is changed', async () => {
        const { account, session } = await rig.signUpWithSession();
        const token = await rig.resetToken(account.email);
        const newPassword = `${account.password}-changed`;
        expect(
          (await rig.call('POST', '/auth/password/change', { token: session.token, body: { currentPassword: account.password, newPassword } })).status,
        ).toBe(204);
        expectInvalidToken(await rig.reset(token, `${account.password}-via-old-link`), token);
        await rig.signInOk(account.email, newPassword);
      });
    });

    describe('PATCH /auth/me', () => {
      it('updates name and username, trimmed, and the new username signs in', async () => {
        const { account, user, session } = await rig.signUpWithSession({ name: 'Before' });
        const username = `ada_${user.id.slice(-8)}`;
        rig.server.clock.advance(1);
        const response = await rig.call('PATCH', '/auth/me', { token: session.token, body: { name: '  Ada Lovelace \t', username: `  ${username}\n` } });
        expect(response.status, JSON.stringify(response.body)).toBe(200);
        expect(response.headers.get('cache-control')).toBe('no-store');
        expect(response.body).toEqual({ user: { ...user, name: 'Ada Lovelace', username, updatedAt: expect.any(String) } });
        expect(Date.parse(response.body.user.updatedAt)).toBeGreaterThan(Date.parse(user.updatedAt));

        expect((await rig.me(session.token)).body).toEqual(response.body);
        const byUsername = await rig.call('POST', '/auth/signin', { body: { username: username.toUpperCase(), password: account.password } });
        expect(byUsername.status).toBe(200);
        expectError(
          await rig.call('POST', '/auth/signin', { body: { username: account.username, password: account.password } }),
          401,
          'Unauthorized',
          'invalid_credentials',
        );
      });

      it('applies the sign-up rules: bad username or name → 400 validation_failed listing every bad field, nothing changed', async () => {
        const { user, session } = await rig.signUpWithSession({ name: 'Kept' });
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: 'no spaces' } }), ['username']);
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: 'ab' } }), ['username']);
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: 'x'.repeat(33) } }), ['username']);
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: 'ab', name: 'n'.repeat(101) } }), [
          'name',
          'username',
        ]);
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { name: 'line\r\nbreak' } }), ['name']);
        expectValidationFailed(await rig.call('PATCH', '/auth/me', { token: session.token, body: { name: 42 } }), ['name']);
        const me = await rig.me(session.token);
        expect(me.body.user).toEqual(user);
      });

      it("answers 409 username_taken for another user's username in any case, but lets a user re-case their own", async () => {
        const other = await rig.signUpWithSession();
        const { account, session } = await rig.signUpWithSession();
        expectError(
          await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: other.account.username.toUpperCase() } }),
          409,
          'Conflict',
          'username_taken',
        );
        expectError(
          await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: other.account.username } }),
          409,
          'Conflict',
          'username_taken',
        );
        expect((await rig.me(session.token)).body.user.username).toBe(account.username);

        const recased = await rig.call('PATCH', '/auth/me', { token: session.token, body: { username: account.username.toUpperCase() } });
        expect(recased.status, JSON.stringify(recased.body)).toBe(200);
        expect(recased.body.user.username).toBe(account.username.toUpperCase());
      });

      it('clears the name with null and ignores unknown fields (no mass assignment)', async () => {
        const { account, user, session } = await rig.signUpWithSession({ name: 'Someone' });
        const cleared = await rig.call('PATCH', '/auth/me', { token: session.token, body: { name: null } });
        expect(cleared.status).toBe(200);
        expect(cleared.body.user).toMatchObject({ name: null, username: account.username, email: account.email });

        const sneaky = await rig.call('PATCH', '/auth/me', {
          token: session.token,
          body: {
            name: 'Visible',
            emailVerified: true,
            email: 'owned@evil.test',
            id: '00000000-0000-7000-8000-000000000000',
            mfaEnabled: true,
            createdAt: '2000-01-01T00:00:00.000Z',
            password: 'hijacked-password-1',
          },
        });
        expect(sneaky.status).toBe(200);
        expect(sneaky.body.user).toEqual({ ...user, name: 'Visible', emailVerified: false, updatedAt: expect.any(String) });
        expect((await rig.me(session.token)).body.user).toEqual(sneaky.body.user);
        await rig.signInOk(account.email, account.password);
        expectError(await rig.signIn('owned@evil.test', account.password), 401, 'Unauthorized', 'invalid_credentials');
      });

      it('needs a bearer token', async () => {
        const response = await rig.call('PATCH', '/auth/me', { body: { name: 'Nobody' } });
        expectError(response, 401, 'Unauthorized', 'missing_token');
        expect(response.headers.get('www-authenticate')).toBe('Bearer realm="signet"');
      });
    });

    describe('abuse', () => {
      it('sends at most 3 reset mails to one address an hour; further requests still answer 202 with the same body', async () => {
        const { account } = await rig.signUpWithSession();
        const answers: Reply[] = [];
        for (let i = 0; i < 5; i++) {
          rig.ip = freshIp();
          answers.push(await rig.forgot(account.email));
        }
        for (const answer of answers) {
          expect(answer.status).toBe(202);
          expect(answer.body).toEqual(answers[0].body);
        }
        await rig.mail(account.email, SUBJECT.reset, 3);
        expect(await rig.mails(account.email, SUBJECT.reset)).toHaveLength(3);
        expect((await rig.outbox(account.email)).filter((m) => m.template === 'password-reset')).toHaveLength(3);
      });

      it('sends at most 3 verification mails to one address an hour through resend', async () => {
        const { account } = await rig.signUpWithSession();
        for (let i = 0; i < 5; i++) {
          rig.ip = freshIp();
          expect((await rig.resend(account.email)).status).toBe(202);
        }
        await rig.mail(account.email, SUBJECT.verify, 4);
        // One from sign-up, three from resend.
        expect(await rig.mails(account.email, SUBJECT.verify)).toHaveLength(4);
      });

      it('limits forgot and resend together to 10 requests per client in 15 minutes, then 429 rate_limited with Retry-After', async () => {
        const { account } = await rig.signUpWithSession();
        for (let i = 0; i < 10; i++) {
          const response = i % 2 === 0 ? await rig.forgot(newAccount().email) : await rig.resend(newAccount().email);
          expect(response.status, `request ${i + 1}`).toBe(202);
        }
        for (const limited of [await rig.forgot(account.email), await rig.resend(account.email), await rig.forgot(newAccount().email)]) {
          expectError(limited, 429, 'Too Many Requests', 'rate_limited');
          const retryAfter = Number(limited.headers.get('retry-after'));
          expect(Number.isInteger(retryAfter)).toBe(true);
          expect(retryAfter).toBeGreaterThan(0);
          expect(retryAfter).toBeLessThanOrEqual(15 * 60);
        }
        // The hosted forgot-password form shares the budget.
        const browser = new PageClient(rig.server.url, { origin: PUBLIC_URL, 'x-forwarded-for': rig.ip });
        await browser.get('/forgot-password');
        const form = await browser.post('/forgot-password', { email: account.email });
        expect(form.status).toBe(429);
        // The limited requests sent nothing; another client is unaffected.
        expect(await rig.mails(account.email, SUBJECT.reset)).toHaveLength(0);
        rig.ip = freshIp();
        expect((await rig.forgot(account.email)).status).toBe(202);
        await rig.mail(account.email, SUBJECT.reset);
      });

      it('tells the client its forgot/resend budget in RateLimit-* headers, on the 202s and on the 429', async () => {
        for (let i = 0; i < 10; i++) {
          const response = i % 2 === 0 ? await rig.forgot(newAccount().email) : await rig.resend(newAccount().email);
          expect(response.status).toBe(202);
          expect(response.headers.get('ratelimit-limit'), `RateLimit-Limit of request ${i + 1}`).toBe('10');
          expect(response.headers.get('ratelimit-remaining'), `RateLimit-Remaining of request ${i + 1}`).toBe(String(9 - i));
          expect(Number(response.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
        }
        const limited = await rig.forgot(newAccount().email);
        expectError(limited, 429, 'Too Many Requests', 'rate_limited');
        expect(limited.headers.get('retry-after')).not.toBeNull();
        expect(limited.headers.get('ratelimit-limit'), 'RateLimit-Limit of the 429').toBe('10');
        expect(limited.headers.get('ratelimit-remaining'), 'RateLimit-Remaining of the 429').toBe('0');
        expect(Number(limited.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
      });

      it('refuses CR/LF inside an email address at forgot and resend with 400 validation_failed: nothing reaches a mail header', async () => {
        const { account } = await rig.signUpWithSession();
        await rig.mail(account.email, SUBJECT.verify);
        const injections = [
          `${account.email}\r\nBcc: victim@evil.test`,
          `${account.email}\nBcc: victim@evil.test`,
          `${account.email}\rTo: victim@evil.test`,
          `victim@evil.test\r\n${account.email}`,
        ];
        for (const email of injections) {
          expectValidationFailed(await rig.forgot(email), ['email']);
          expectValidationFailed(await rig.resend(email), ['email']);
        }
        expectValidationFailed(await rig.call('POST', '/auth/signup', { body: newAccount({ name: 'Eve\r\nBcc: victim@evil.test' }) }), ['name']);
        await rig.deliver();
        expect(smtp.messages.filter((m) => m.rcptTo.some((r) => r.endsWith('@evil.test')) || m.raw.includes('evil.test'))).toEqual([]);
        expect(await rig.mails(account.email)).toHaveLength(1);
      });
    });

    describe('hosted pages', () => {
      // One browser per test: its cookie jar carries the form cookie whose token each form holds.
      let browser: PageClient;
      beforeEach(() => {
        browser = new PageClient(rig.server.url, { origin: PUBLIC_URL, 'x-forwarded-for': rig.ip });
      });

      async function postForm(path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
        return browser.post(path, fields, headers);
      }

      async function getPage(path: string) {
        return browser.get(path);
      }

      function expectPageHeaders(headers: Headers): void {
        expect(headers.get('content-type')).toMatch(/^text\/html/);
        const csp = headers.get('content-security-policy') ?? '';
        expect(csp).toContain("default-src 'none'");
        expect(csp).toContain("frame-ancestors 'none'");
        expect(csp).not.toContain('unsafe-inline');
        expect(headers.get('x-frame-options')).toBe('DENY');
        expect(headers.get('x-content-type-options')).toBe('nosniff');
        // The token rides in the URL: it must not leak through Referer or caches.
        expect(headers.get('referrer-policy')).toBe('no-referrer');
        expect(headers.get('cache-control')).toBe('no-store');
      }

      it('serves the reset link as a form page with a strict CSP and X-Frame-Options: DENY; opening it spends nothing', async () => {
        const { account } = await rig.signUpWithSession();
        const token = await rig.resetToken(account.email);
        const page = await getPage(`/reset-password?token=${token}`);
        expect(page.status).toBe(200);
        expectPageHeaders(page.headers);
        expect(page.text).toContain(`<input type="hidden" name="token" value="${token}">`);
        expect(page.text).toContain('action="/reset-password"');
        // Scripts only from files of Signet's own origin (progressive enhancement), never inline.
        expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)/i);
        // A prefetching mail scanner changed nothing: the token still works.
        expect((await rig.reset(token, `${account.password}-after-get`)).status).toBe(204);
      });

      it('completes a reset from the form: mismatched or weak passwords keep the link, a good one changes the password once', async () => {
        const { account, session } = await rig.signUpWithSession();
        const token = await rig.resetToken(account.email);
        const newPassword = `${account.password}-from-form`;
        await getPage(`/reset-password?token=${token}`);

        const mismatch = await postForm('/reset-password', { token, password: newPassword, confirm: `${newPassword}x` });
        expect(mismatch.status).toBe(400);
        expectPageHeaders(mismatch.headers);
        const weak = await postForm('/reset-password', { token, password: 'password123', confirm: 'password123' });
        expect(weak.status).toBe(400);
        const crossSite = await postForm('/reset-password', { token, password: newPassword, confirm: newPassword }, { origin: 'https://evil.example' });
        expect(crossSite.status).toBe(403);

        const done = await postForm('/reset-password', { token, password: newPassword, confirm: newPassword });
        expect(done.status).toBe(200);
        expectPageHeaders(done.headers);
        await expectSessionDead(rig, session);
        await rig.signInOk(account.email, newPassword);
        expectError(await rig.signIn(account.email, account.password), 401, 'Unauthorized', 'invalid_credentials');
        await rig.mail(account.email, SUBJECT.changed);

        const reused = await postForm('/reset-password', { token, password: `${newPassword}-2`, confirm: `${newPassword}-2` });
        expect(reused.status).toBe(400);
        await rig.signInOk(account.email, newPassword);
      });

      it('escapes whatever the link carries and answers a malformed link with an error page', async () => {
        const payload = '"><script>alert(1)</script>';
        for (const path of ['/reset-password', '/verify-email']) {
          const page = await getPage(`${path}?token=${encodeURIComponent(payload)}`);
          expect(page.status).toBe(400);
          expectPageHeaders(page.headers);
          expect(page.text).not.toContain('<script>');
          expect(page.text).not.toContain(payload);
        }
      });

      it('verifies the email only on the POST from the page, not when the link is opened', async () => {
        const { account, session } = await rig.signUpWithSession();
        const token = linkToken(await rig.mail(account.email, SUBJECT.verify), 'verify-email');
        const page = await getPage(`/verify-email?token=${token}`);
        // Without the form's CSRF token (another site's post), nothing happens.
        expect((await postForm('/verify-email', { token, csrf: 'forged' })).status).toBe(403);
        expect(page.status).toBe(200);
        expectPageHeaders(page.headers);
        expect((await rig.me(session.token)).body.user.emailVerified).toBe(false);

        const done = await postForm('/verify-email', { token });
        expect(done.status).toBe(200);
        expect(done.text).toContain(account.email);
        expect((await rig.me(session.token)).body.user.emailVerified).toBe(true);
      });
    });
  });

  describe('EMAIL_VERIFICATION=required', () => {
    let strict: Rig;
    beforeAll(async () => {
      strict = await startRig(dialect, smtp, { emailVerification: 'required' });
    });
    afterAll(async () => {
      await strict?.server.close();
    });
    beforeEach(() => {
      strict.ip = freshIp();
    });

    function passwordGrant(username: string, password: string) {
      return fetch(`${strict.server.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': strict.ip },
        body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
      });
    }

    it('answers sign-up with 201 {user, verificationRequired: true} and no tokens, and mails the link', async () => {
      const account = newAccount({ name: 'Strict' });
      const response = await strict.call('POST', '/auth/signup', { body: account });
      expect(response.status, JSON.stringify(response.body)).toBe(201);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.body).toEqual({
        user: {
          id: expect.any(String),
          email: account.email,
          emailVerified: false,
          username: account.username,
          name: 'Strict',
          mfaEnabled: false,
          createdAt: expect.any(String),
          updatedAt: expect.any(String),
        },
        verificationRequired: true,
      });
      expect(response.headers.get('set-cookie')).toBeNull();
      linkToken(await strict.mail(account.email, SUBJECT.verify), 'verify-email');
    });

    it('refuses sign-in before verification: right password 403 email_not_verified, wrong password 401 invalid_credentials; then 200 after verifying', async () => {
      const { account } = await strict.signUp();
      const token = linkToken(await strict.mail(account.email, SUBJECT.verify), 'verify-email');

      expectError(await strict.signIn(account.email, account.password), 403, 'Forbidden', 'email_not_verified');
      expectError(
        await strict.call('POST', '/auth/signin', { body: { username: account.username, password: account.password } }),
        403,
        'Forbidden',
        'email_not_verified',
      );
      expectError(await strict.signIn(account.email, `${account.password}-wrong`), 401, 'Unauthorized', 'invalid_credentials');

      const verified = await strict.verify(token);
      expect(verified.status).toBe(200);
      expect(verified.body.user.emailVerified).toBe(true);

      const signedIn = await strict.signIn(account.email, account.password);
      expect(signedIn.status, JSON.stringify(signedIn.body)).toBe(200);
      expect(signedIn.body).toMatchObject({ tokenType: 'Bearer', token: expect.any(String), refreshToken: expect.any(String), user: { emailVerified: true } });
      expect(decodeJwt(signedIn.body.token).email_verified).toBe(true);
      expectError(await strict.signIn(account.email, `${account.password}-wrong`), 401, 'Unauthorized', 'invalid_credentials');
    });

    it('refuses the OAuth password grant for an unverified user with 400 invalid_grant, then grants after verifying', async () => {
      const { account } = await strict.signUp();
      const token = linkToken(await strict.mail(account.email, SUBJECT.verify), 'verify-email');

      for (const username of [account.email, account.username]) {
        const refused = await passwordGrant(username, account.password);
        expect(refused.status).toBe(400);
        expect(refused.headers.get('cache-control')).toBe('no-store');
        expect(await refused.json()).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
      }
      const wrong = await passwordGrant(account.email, `${account.password}-wrong`);
      expect(wrong.status).toBe(400);
      expect(((await wrong.json()) as { error: string }).error).toBe('invalid_grant');

      expect((await strict.verify(token)).status).toBe(200);
      const granted = await passwordGrant(account.email, account.password);
      expect(granted.status).toBe(200);
      const body = (await granted.json()) as { access_token: string };
      expect(body).toMatchObject({ access_token: expect.any(String), token_type: 'Bearer', refresh_token: expect.any(String) });
      expect(decodeJwt(body.access_token).email_verified).toBe(true);
    });

    it('resends the link to an unverified account, whose newest link then lets it sign in', async () => {
      const { account } = await strict.signUp();
      const older = linkToken(await strict.mail(account.email, SUBJECT.verify), 'verify-email');
      expect((await strict.resend(account.email)).status).toBe(202);
      const newer = linkToken(await strict.mail(account.email, SUBJECT.verify, 2), 'verify-email');
      expectInvalidToken(await strict.verify(older), older);
      expectError(await strict.signIn(account.email, account.password), 403, 'Forbidden', 'email_not_verified');
      expect((await strict.verify(newer)).status).toBe(200);
      await strict.signInOk(account.email, account.password);
    });
  });

  describe('EMAIL_VERIFICATION=off', () => {
    let open: Rig;
    beforeAll(async () => {
      open = await startRig(dialect, smtp, { emailVerification: 'off' });
    });
    afterAll(async () => {
      await open?.server.close();
    });
    beforeEach(() => {
      open.ip = freshIp();
    });

    it('sends no mail at sign-up or on resend, and signs in unverified', async () => {
      const { account, response } = await open.signUp();
      expect(response.body).toMatchObject({ token: expect.any(String), user: { emailVerified: false } });
      expect((await open.resend(account.email)).status).toBe(202);
      expect(await open.mails(account.email)).toHaveLength(0);
      expect(await open.outbox(account.email)).toHaveLength(0);
      const tokens = await open.server.signet.services.db.kysely
        .selectFrom('account_tokens')
        .selectAll()
        .where('user_id', '=', response.body.user.id)
        .execute();
      expect(tokens).toHaveLength(0);
      await open.signInOk(account.email, account.password);
    });

    it('still mails password-reset links', async () => {
      const { account } = await open.signUp();
      const token = await open.resetToken(account.email);
      expect((await open.reset(token, `${account.password}-reset`)).status).toBe(204);
      await open.signInOk(account.email, `${account.password}-reset`);
    });
  });
});
