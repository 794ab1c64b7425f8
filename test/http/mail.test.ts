import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SignetConfig } from '../../src/config.js';
import { MAIL_MAX_ATTEMPTS } from '../../src/core/mailer.js';
import { listFailedMail } from '../../src/store/mail.js';
import { DIALECTS, eventCount, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { startSmtpServer } from '../support/smtp.js';
import type { CapturedMail, TestSmtpServer } from '../support/smtp.js';

/**
 * Mail delivery (issue 4, "Mail delivery"): what the messages look like on a
 * real SMTP server, the durable queue across SMTP outages (retry with backoff
 * on the injected clock, then a recorded failure), and the development outbox
 * under the data dir. Every test runs its own Signet server, one at a time.
 */

const PUBLIC_URL = 'http://signet.test';
const MAIL_FROM = 'Signet Test <no-reply@signet.test>';
const SUBJECT = { verify: 'Confirm your email address', reset: 'Reset your password', changed: 'Your password was changed' } as const;

type Reply = Awaited<ReturnType<TestServer['call']>>;

function tokenIn(text: string, page: 'verify-email' | 'reset-password', base = PUBLIC_URL): string {
  const match = new RegExp(`${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${page}\\?token=([A-Za-z0-9_-]+)`).exec(text);
  expect(match, `no ${base}/${page} link in:\n${text}`).not.toBeNull();
  expect(match![1]).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return match![1];
}

async function deliver(server: TestServer): Promise<void> {
  await server.signet.services.lifecycle.settle();
  await server.signet.services.mailer.flush();
}

async function outbox(server: TestServer, recipient: string) {
  return server.signet.services.db.kysely
    .selectFrom('mail_outbox')
    .selectAll()
    .where('recipient', '=', recipient)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

async function onlyRow(server: TestServer, recipient: string) {
  const rows = await outbox(server, recipient);
  expect(rows).toHaveLength(1);
  return rows[0];
}

async function signUp(server: TestServer, overrides: Record<string, unknown> = {}) {
  const account = newAccount(overrides);
  const response = await server.call('POST', '/auth/signup', { body: account });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { account, response };
}

function expectAccepted(response: Reply): void {
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  expect(response.body).toEqual({ message: expect.any(String) });
}

describe.each(DIALECTS)('mail delivery on %s', (dialect: DialectName) => {
  let smtp: TestSmtpServer;
  const running: TestServer[] = [];

  async function start(overrides: Partial<SignetConfig> = {}): Promise<TestServer> {
    const server = await startTestServer(dialect, { smtpUrl: smtp.url, mailFrom: MAIL_FROM, ...overrides });
    running.push(server);
    return server;
  }

  async function received(address: string, subject: string, count = 1): Promise<CapturedMail[]> {
    await smtp.waitFor(() => smtp.to(address).filter((m) => m.subject === subject).length >= count, 5000);
    return smtp.to(address).filter((m) => m.subject === subject);
  }

  beforeAll(async () => {
    smtp = await startSmtpServer();
  });
  afterEach(async () => {
    smtp.rejectNext(0);
    while (running.length > 0) await running.pop()!.close();
  });
  afterAll(async () => {
    await smtp?.close();
  });

  describe('messages', () => {
    it('sends the verification mail from MAIL_FROM with a subject, a text and an HTML part, both carrying the link', async () => {
      const server = await start();
      const { account } = await signUp(server);
      await deliver(server);
      const [mail] = await received(account.email, SUBJECT.verify);
      expect(smtp.to(account.email)).toHaveLength(1);

      expect(mail.from).toEqual([{ address: 'no-reply@signet.test', name: 'Signet Test' }]);
      expect(mail.mailFrom).toBe('no-reply@signet.test');
      expect(mail.to).toEqual([account.email]);
      expect(mail.subject).toBe(SUBJECT.verify);
      expect(mail.parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
      expect(mail.parsed.messageId).toEqual(expect.any(String));
      expect(mail.parsed.date).toBeInstanceOf(Date);
      expect(mail.parsed.attachments).toEqual([]);
      expect(mail.text.length).toBeGreaterThan(0);
      expect(mail.html).toMatch(/^<!doctype html>/i);
      const token = tokenIn(mail.text, 'verify-email');
      expect(tokenIn(mail.html, 'verify-email')).toBe(token);
      expect(mail.html).toContain(`href="${PUBLIC_URL}/verify-email?token=${token}"`);
      expect(mail.text).toMatch(/works for (1 day|24 hours)/);

      // The link works: the whole loop over HTTP.
      const verified = await server.call('POST', '/auth/email/verify', { body: { token } });
      expect(verified.status).toBe(200);
      expect(verified.body.user).toMatchObject({ email: account.email, emailVerified: true });
    });

    it('HTML-escapes user data in the HTML part and keeps it verbatim in the text part', async () => {
      const server = await start({ appName: 'Acme & <Co>' });
      const base = newAccount();
      const email = `o'neil&co.${base.email}`;
      const { account } = await signUp(server, { email, name: '<script>alert(1)</script>' });
      expect(account.email).toBe(email);
      await deliver(server);
      const [mail] = await received(email, SUBJECT.verify);

      expect(mail.to).toEqual([email]);
      expect(mail.text).toContain(email);
      expect(mail.html).toContain(email.replace('&', '&amp;').replace("'", '&#39;'));
      expect(mail.html).not.toContain("o'neil&co");
      expect(mail.html).toContain('Acme &amp; &lt;Co&gt;');
      expect(mail.html).not.toContain('<Co>');
      expect(mail.html).not.toMatch(/<script/i);
      expect(mail.text).not.toContain('<script>');
    });

    it('builds links from PUBLIC_URL and uses operator templates from MAIL_TEMPLATES_DIR', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'signet-templates-'));
      try {
        writeFileSync(join(dir, 'password-reset.subject.txt'), 'Neues Passwort für {{appName}}\n');
        writeFileSync(join(dir, 'password-reset.txt'), 'Hallo {{email}}, hier entlang: {{link}} (gültig {{expiresIn}})\n');
        const publicUrl = 'https://login.acme.test/accounts';
        const server = await start({ publicUrl, mailTemplatesDir: dir, appName: 'Acme' });
        const { account } = await signUp(server);
        expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
        await deliver(server);
        const [mail] = await received(account.email, 'Neues Passwort für Acme');
        expect(mail.text).toBe(
          `Hallo ${account.email}, hier entlang: ${publicUrl}/reset-password?token=${tokenIn(mail.text, 'reset-password', publicUrl)} (gültig 30 minutes)\n`,
        );
        // The HTML part, not overridden, is the built-in one with the same link.
        expect(mail.html).toContain(`href="${publicUrl}/reset-password?token=`);
        // The verification mail, not overridden at all, keeps the built-in subject and the new base URL.
        const [verify] = await received(account.email, SUBJECT.verify);
        tokenIn(verify.text, 'verify-email', publicUrl);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('cannot be made to inject headers: line breaks in what a subject is built from are removed, recipients stay one', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'signet-templates-'));
      try {
        writeFileSync(join(dir, 'verify-email.subject.txt'), '{{appName}}: confirm {{email}}\n');
        const server = await start({ mailTemplatesDir: dir, appName: 'Acme\r\nBcc: victim@evil.test\r\nX-Injected: yes' });
        const { account } = await signUp(server);
        await deliver(server);
        await smtp.waitFor((m) => m.rcptTo.includes(account.email.toLowerCase()), 5000);
        const [mail] = smtp.to(account.email);
        expect(mail.rcptTo).toEqual([account.email.toLowerCase()]);
        expect(mail.subject).not.toMatch(/[\r\n]/);
        expect(mail.subject).toContain(account.email);
        expect(mail.headerLines.map((h) => h.key)).not.toContain('bcc');
        expect(mail.headerLines.map((h) => h.key)).not.toContain('x-injected');
        expect(mail.parsed.headers.has('bcc')).toBe(false);
        expect(smtp.messages.filter((m) => m.rcptTo.some((r) => r.endsWith('@evil.test')))).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('keeps neither the link nor the message bodies in the database once a message is sent', async () => {
      const server = await start();
      const { account, response } = await signUp(server);
      await deliver(server);
      const [mail] = await received(account.email, SUBJECT.verify);
      const token = tokenIn(mail.text, 'verify-email');
      const row = await onlyRow(server, account.email);
      expect(row).toMatchObject({
        template: 'verify-email',
        subject: SUBJECT.verify,
        attempts: 0,
        text_body: null,
        html_body: null,
        failed_at: null,
        last_error: null,
      });
      expect(row.sent_at).not.toBeNull();
      const tokens = await server.signet.services.db.kysely.selectFrom('account_tokens').selectAll().where('user_id', '=', response.body.user.id).execute();
      expect(JSON.stringify([row, tokens])).not.toContain(token);
    });
  });

  describe('SMTP outages', () => {
    it('answers forgot with 202 while SMTP refuses (451) and delivers the same message after backing off 1 s, 2 s, 4 s', async () => {
      const server = await start({ emailVerification: 'off' });
      const { account } = await signUp(server);
      const refusedBefore = smtp.rejected;
      smtp.rejectNext(3);

      const t0 = server.clock.now();
      expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
      await deliver(server);
      let row = await onlyRow(server, account.email);
      expect(row).toMatchObject({ template: 'password-reset', attempts: 1, sent_at: null, failed_at: null });
      expect(row.last_error).toMatch(/451/);
      expect(row.text_body).toEqual(expect.any(String));
      expect(Number(row.next_attempt_at)).toBeGreaterThanOrEqual(t0 + 1000);
      expect(Number(row.next_attempt_at)).toBeLessThanOrEqual(server.clock.now() + 1000);
      expect(smtp.to(account.email)).toHaveLength(0);

      for (const [attempts, backoff] of [
        [2, 2000],
        [3, 4000],
      ]) {
        server.clock.advance(backoff / 2 / 1000);
        const before = server.clock.now();
        await server.signet.services.mailer.flush();
        row = await onlyRow(server, account.email);
        expect(row).toMatchObject({ attempts, sent_at: null, failed_at: null });
        expect(Number(row.next_attempt_at)).toBeGreaterThanOrEqual(before + backoff);
        expect(Number(row.next_attempt_at)).toBeLessThanOrEqual(server.clock.now() + backoff);
      }
      expect(smtp.to(account.email)).toHaveLength(0);
      expect(smtp.rejected - refusedBefore).toBe(3);

      server.clock.advance(4);
      await server.signet.services.mailer.flush();
      row = await onlyRow(server, account.email);
      expect(row.sent_at).not.toBeNull();
      expect(row).toMatchObject({ attempts: 3, failed_at: null, text_body: null, html_body: null });
      const [mail] = await received(account.email, SUBJECT.reset);
      expect(smtp.to(account.email)).toHaveLength(1);

      // Nothing was lost: the delayed link still resets the password.
      const token = tokenIn(mail.text, 'reset-password');
      expect((await server.call('POST', '/auth/password/reset', { body: { token, password: `${account.password}-after-outage` } })).status).toBe(204);
      // Mail is sent for existing accounts only: no counter of it may be readable (issue 8 §3).
      expect(await eventCount(server, 'mail.retry')).toBe(0);
    });

    it(`records a message as failed after MAIL_MAX_ATTEMPTS (${MAIL_MAX_ATTEMPTS}) refusals: failed_at set, bodies cleared, listed for the operator`, async () => {
      const server = await start({ emailVerification: 'off' });
      const { account } = await signUp(server);
      const refusedBefore = smtp.rejected;
      smtp.rejectNext(MAIL_MAX_ATTEMPTS);
      expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
      await deliver(server);

      let row = await onlyRow(server, account.email);
      for (let i = 0; i < MAIL_MAX_ATTEMPTS + 5 && row.failed_at === null; i++) {
        server.clock.advance(5 * 60);
        await server.signet.services.mailer.flush();
        row = await onlyRow(server, account.email);
      }
      expect(row.failed_at).not.toBeNull();
      expect(row).toMatchObject({ attempts: MAIL_MAX_ATTEMPTS, sent_at: null, text_body: null, html_body: null, locked_until: null });
      expect(row.last_error).toMatch(/451/);
      expect(smtp.rejected - refusedBefore).toBe(MAIL_MAX_ATTEMPTS);
      expect(smtp.to(account.email)).toHaveLength(0);

      // Given up for good: no further attempt, however long we wait.
      server.clock.advance(24 * 60 * 60);
      await server.signet.services.mailer.flush();
      expect(smtp.rejected - refusedBefore).toBe(MAIL_MAX_ATTEMPTS);
      expect(smtp.to(account.email)).toHaveLength(0);
      expect(await onlyRow(server, account.email)).toEqual(row);

      // Visible to the operator through `signet mail failed`, never as a counter that would tell an account exists.
      expect(await eventCount(server, 'mail.failed')).toBe(0);
      const failed = await listFailedMail(server.signet.services.db);
      expect(failed).toEqual([expect.objectContaining({ id: row.id, template: 'password-reset', recipient: account.email, attempts: MAIL_MAX_ATTEMPTS })]);

      // The queue is not stuck: the next request is delivered.
      expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
      await deliver(server);
      const [mail] = await received(account.email, SUBJECT.reset);
      tokenIn(mail.text, 'reset-password');
    });

    it('answers sign-up and forgot while the SMTP server is down (connection refused) and delivers both when it is back', async () => {
      const down = await startSmtpServer();
      const port = down.port;
      await down.close();
      const server = await start({ smtpUrl: `smtp://127.0.0.1:${port}` });

      const { account } = await signUp(server);
      expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
      await deliver(server);
      const rows = await outbox(server, account.email);
      expect(rows.map((r) => r.template).sort()).toEqual(['password-reset', 'verify-email']);
      for (const row of rows) {
        expect(row).toMatchObject({ sent_at: null, failed_at: null });
        expect(row.attempts).toBeGreaterThanOrEqual(1);
        expect(row.last_error).toEqual(expect.any(String));
      }

      const back = await startSmtpServer(port);
      try {
        server.clock.advance(60);
        await server.signet.services.mailer.flush();
        await back.waitFor(() => back.to(account.email).length >= 2, 5000);
        const mails = back.to(account.email);
        expect(mails.map((m) => m.subject).sort()).toEqual([SUBJECT.reset, SUBJECT.verify].sort());
        const verifyToken = tokenIn(mails.find((m) => m.subject === SUBJECT.verify)!.text, 'verify-email');
        const resetToken = tokenIn(mails.find((m) => m.subject === SUBJECT.reset)!.text, 'reset-password');
        expect((await server.call('POST', '/auth/email/verify', { body: { token: verifyToken } })).status).toBe(200);
        expect((await server.call('POST', '/auth/password/reset', { body: { token: resetToken, password: `${account.password}-back` } })).status).toBe(204);
        await deliver(server);
        const after = await outbox(server, account.email);
        expect(after.map((r) => r.template).sort()).toEqual(['password-changed', 'password-reset', 'verify-email']);
        for (const row of after) expect(row.sent_at, row.template).not.toBeNull();
      } finally {
        await back.close();
      }
    });
  });

  describe('development outbox', () => {
    it('writes each message as an .eml file under <data dir>/outbox when SMTP_URL is unset', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'signet-data-'));
      try {
        const server = await start({ smtpUrl: undefined, dataDir });
        expect(server.signet.services.mailer.transport).toBe('outbox');
        const { account } = await signUp(server);
        await deliver(server);

        const dir = join(dataDir, 'outbox');
        const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
        expect(files).toHaveLength(1);
        const path = join(dir, files[0]);
        if (process.platform !== 'win32') {
          expect(statSync(path).mode & 0o777).toBe(0o600);
          expect(statSync(dir).mode & 0o777).toBe(0o700);
        }
        const parsed = await simpleParser(readFileSync(path));
        expect(parsed.subject).toBe(SUBJECT.verify);
        expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((a) => a.address) : []).toEqual([account.email]);
        const token = tokenIn(parsed.text ?? '', 'verify-email');
        expect(readFileSync(path, 'utf8')).toContain('verify-email?token=');
        expect(typeof parsed.html === 'string' ? parsed.html : '').toContain(`${PUBLIC_URL}/verify-email?token=${token}`);

        const verified = await server.call('POST', '/auth/email/verify', { body: { token } });
        expect(verified.status).toBe(200);
        expect(verified.body.user.emailVerified).toBe(true);

        // A reset link lands there too, and nothing went to the SMTP server.
        expectAccepted(await server.call('POST', '/auth/password/forgot', { body: { email: account.email } }));
        await deliver(server);
        const all = readdirSync(dir).filter((f) => f.endsWith('.eml'));
        expect(all).toHaveLength(2);
        const texts = await Promise.all(all.map(async (f) => (await simpleParser(readFileSync(join(dir, f)))).text ?? ''));
        tokenIn(
          texts.find((t) => t.includes('/reset-password?token='))!,
          'reset-password',
        );
        expect(smtp.to(account.email)).toHaveLength(0);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
});
