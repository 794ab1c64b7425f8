import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { axeViolations, chromiumPath, cspViolations, launchBrowser, screenshots } from '../support/browser.js';
import type { Browser, Page } from '../support/browser.js';
import { freePort } from '../support/ports.js';
import { startSmtpServer } from '../support/smtp.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Sign-in by an emailed code in a real browser: Chromium follows "Email me a
 * sign-in code" from the sign-in page, asks for a code, reads it from the mail
 * a real SMTP server received, types it, and lands on the account page.
 */
describe.skipIf(!chromiumPath).each(DIALECTS)('signing in with an emailed code in Chromium on %s', (dialect) => {
  let smtp: TestSmtpServer;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let csp: string[];
  let base: string;
  const account = newAccount();

  beforeAll(async () => {
    smtp = await startSmtpServer();
    const port = await freePort();
    base = `http://localhost:${port}`;
    server = await startTestServer(dialect, { port, publicUrl: base, audience: base, smtpUrl: smtp.url, emailSignin: 'code' });
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    browser = await launchBrowser();
    page = await (await browser.newContext()).newPage();
    csp = cspViolations(page);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await smtp?.close();
  });

  it('asks for a code, shows the code page, and signs in with the code from the mail', async () => {
    await page.goto(`${base}/sign-in`);
    await page.getByRole('link', { name: 'Email me a sign-in code' }).click();
    await page.waitForURL(`${base}/sign-in/email`);
    await page.fill('#f-email', account.email);
    await page.click('form[action$="/sign-in/email"] button[type=submit]');
    await expect(page.locator('h1').textContent()).resolves.toContain('Enter your code');
    expect(await axeViolations(page)).toEqual([]);
    await server.signet.services.emailSignIn.settle();
    await server.signet.services.mailer.flush();
    const mail = await smtp.waitFor((m) => m.rcptTo.includes(account.email.toLowerCase()) && m.subject.startsWith('Your sign-in code'), 5000);
    const code = /(\d{6})/.exec(mail.subject)![1];
    await page.fill('#f-code', code === '000000' ? '000001' : '000000');
    await page.click('form[action$="/sign-in/email/code"] button[type=submit]');
    await expect(page.locator('main').textContent()).resolves.toContain('This code is wrong or has expired');
    await page.fill('#f-code', code);
    await page.click('form[action$="/sign-in/email/code"] button[type=submit]');
    await page.waitForURL(`${base}/account`);
    const cookies = await page.context().cookies(base);
    expect(cookies.map((c) => c.name)).toContain('__Host-signet-access');
    await screenshots(page, `email-signin-account-${dialect}`);
    expect(csp).toEqual([]);
  });
});
