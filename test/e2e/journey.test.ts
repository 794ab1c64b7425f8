import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { axeViolations, chromiumPath, cspViolations, launchBrowser, screenshots } from '../support/browser.js';
import type { Browser, BrowserContext, Page } from '../support/browser.js';
import { startSmtpServer } from '../support/smtp.js';
import { freePort } from '../support/ports.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Issue 9's journey through the hosted pages in a real browser (Debian's
 * Chromium): sign up → verify the email from the mailed link → sign out → sign
 * in → return to an allowed app, never to another → the account page lists
 * sessions and ends one (its refresh then fails) → forgot and reset the
 * password by mail → turn TOTP on and keep the recovery codes → sign in with
 * TOTP → sign in with a recovery code. Once with JavaScript, once without, on
 * each database; axe-core on every page visited; screenshots of every page.
 */

const SUBJECT_VERIFY = /confirm|verify/i;
const SUBJECT_RESET = /reset/i;

interface Rig {
  server: TestServer;
  smtp: TestSmtpServer;
  app: Server;
  appUrl: string;
  base: string;
}

async function startRig(dialect: DialectName): Promise<Rig> {
  const smtp = await startSmtpServer();
  // The app users come back to: it only says where they landed.
  const app = createServer((req, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>App</title><h1>Welcome back to the app</h1><p>${req.url}</p>`),
  );
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appUrl = `http://localhost:${(app.address() as AddressInfo).port}`;
  const port = await freePort();
  // localhost, not 127.0.0.1: the browser treats it as a secure context (Secure, __Host- cookies).
  const base = `http://localhost:${port}`;
  const server = await startTestServer(dialect, {
    port,
    publicUrl: base,
    audience: base,
    smtpUrl: smtp.url,
    emailVerification: 'optional',
    rateLimits: true,
    returnUrls: [`${appUrl}/welcome`],
  });
  return { server, smtp, app, appUrl, base };
}

const MODES = DIALECTS.flatMap((dialect) => [
  { dialect, javaScript: true },
  { dialect, javaScript: false },
]);

describe.skipIf(!chromiumPath).each(MODES)('the hosted pages in Chromium on $dialect, JavaScript $javaScript', ({ dialect, javaScript }) => {
  let rig: Rig;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let csp: string[];
  /** Every page the journey saw, with what axe-core found on it. */
  const audited = new Map<string, unknown[]>();
  const shoot = dialect === 'sqlite' && javaScript;

  beforeAll(async () => {
    rig = await startRig(dialect);
    browser = await launchBrowser();
    context = await browser.newContext({ javaScriptEnabled: javaScript, locale: 'en-GB', viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    // A step that cannot find its element fails in seconds, not at the test timeout.
    page.setDefaultTimeout(5000);
    csp = cspViolations(page);
  });
  afterAll(async () => {
    await browser?.close();
    await rig?.server.close();
    await rig?.smtp.close();
    rig?.app.close();
  });

  /**
   * axe on the page as it is now, and its screenshots. With JavaScript off the
   * browser runs no script at all, axe's included: the same pages were audited
   * in the run with JavaScript on (the HTML is the same; only the enhancement differs).
   */
  async function check(name: string): Promise<void> {
    audited.set(name, javaScript ? await axeViolations(page) : []);
    if (shoot) await screenshots(page, name);
  }
  /** Runs a probe in the page; with JavaScript off there is nothing to run it in. */
  const probe = async <T>(fn: () => T): Promise<T | undefined> => (javaScript ? page.evaluate(fn) : undefined);

  const heading = () => page.locator('h1').innerText();
  const go = (path: string) => page.goto(`${rig.base}${path}`);
  const mailLink = async (to: string, subject: RegExp, path: string) => {
    await rig.server.signet.services.lifecycle.settle();
    await rig.server.signet.services.mailer.flush();
    const mail = await rig.smtp.waitFor((m) => m.rcptTo.includes(to.toLowerCase()) && subject.test(m.subject) && m.text.includes(path));
    return new RegExp(`${rig.base}(/${path}\\?token=[A-Za-z0-9_-]{43})`).exec(mail.text)![1];
  };
  const signOut = async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in\?notice=signed-out$/);
  };
  const signIn = async (identifier: string, password: string) => {
    await page.getByLabel('Email or username').fill(identifier);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  };
  /** The next TOTP code: the server's clock moves on one 30-second step, so a code is never a replay. */
  const nextCode = (totp: TOTP) => {
    rig.server.clock.advance(30);
    return totp.generate({ timestamp: rig.server.clock.now() });
  };

  const account = newAccount();
  let password = account.password;
  let totp: TOTP;
  let recoveryCodes: string[];

  it('signs up, lands on the account page, and confirms the address from the mailed link', async () => {
    await go('/sign-up');
    expect(await heading()).toBe('Create your account');
    await check('sign-up');
    await page.getByLabel('Email', { exact: true }).fill(account.email);
    await page.getByLabel('Username', { exact: true }).fill(account.username);
    await page.getByLabel('Name', { exact: true }).fill('Ada Lovelace');
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${rig.base}/account`);
    expect(await heading()).toBe('Your account');
    await expect.poll(() => page.getByText('Not confirmed yet').count()).toBe(1);
    await check('account');

    await go(await mailLink(account.email, SUBJECT_VERIFY, 'verify-email'));
    expect(await heading()).toBe('Confirm your email');
    await check('verify-email');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    expect(await heading()).toBe('Email confirmed');
    await check('email-confirmed');
  });

  it('signs out, and refuses a wrong password with the message tied to the form and focus on the password', async () => {
    await go('/account');
    await signOut();
    expect(await page.getByRole('status').innerText()).toBe('You are signed out.');
    await check('sign-in');
    await signIn(account.username, 'not-my-password');
    expect(await page.getByRole('alert').innerText()).toBe('The email, username or password is incorrect.');
    if (javaScript) expect(await probe(() => (globalThis as any).document.activeElement?.id)).toBe('f-password');
    else expect(await page.getAttribute('#f-password', 'autofocus')).not.toBeNull();
    // The identifier is kept, the password never.
    expect(await page.getByLabel('Email or username').inputValue()).toBe(account.username);
    expect(await page.getByLabel('Password', { exact: true }).inputValue()).toBe('');
    await check('sign-in-error');
  });

  it('signs in with the keyboard alone, and returns to an allowed app URL', async () => {
    await go(`/sign-in?return_to=${encodeURIComponent(`${rig.appUrl}/welcome`)}`);
    // The identifier field has focus on load (autofocus, no script); type, Tab, type, Enter.
    await page.locator('#f-identifier:focus').waitFor();
    await page.keyboard.type(account.email);
    await page.keyboard.press('Tab');
    if (javaScript) {
      const outline = await probe(() => (globalThis as any).getComputedStyle((globalThis as any).document.activeElement).outlineStyle);
      expect(outline, 'visible focus').not.toBe('none');
    }
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${rig.appUrl}/welcome`);
    expect(await heading()).toBe('Welcome back to the app');
  });

  it('goes to the account page instead of a return_to that is not on the allow-list', async () => {
    await go('/account');
    await signOut();
    for (const target of ['https://evil.example/steal', `${rig.appUrl}/other`, '//evil.example', '/\\evil.example', 'https:evil.example']) {
      await go(`/sign-in?return_to=${encodeURIComponent(target)}`);
      if (page.url().includes('/sign-in')) await signIn(account.email, password);
      await page.waitForURL(`${rig.base}/account`);
      await go('/account');
      await signOut();
    }
  });

  it('lists the sessions on the account page and ends another one, whose refresh token then fails', async () => {
    const other = await rig.server.call('POST', '/auth/signin', {
      body: { email: account.email, password },
      headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' },
    });
    expect(other.status).toBe(200);
    await go('/sign-in');
    await signIn(account.email, password);
    await page.waitForURL(`${rig.base}/account`);
    const sessions = page.locator('ul.sessions > li');
    expect(await sessions.count()).toBe(2);
    expect(await page.locator('ul.sessions').innerText()).toContain('Firefox · Linux');
    expect(await page.locator('ul.sessions').innerText()).toContain('This device');
    await page.getByRole('button', { name: 'End this session: Firefox · Linux' }).click();
    await page.waitForURL(`${rig.base}/account?notice=session-ended`);
    expect(await page.getByRole('status').innerText()).toBe('The session was ended.');
    expect(await sessions.count()).toBe(1);
    const refresh = await rig.server.call('POST', '/auth/token/refresh', { body: { refreshToken: other.body.refreshToken } });
    expect(refresh.status).toBe(401);
    expect(refresh.body.code).toBe('invalid_refresh_token');
    await check('account-sessions');
  });

  it('resets a forgotten password from the mailed link', async () => {
    await signOut();
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    expect(await heading()).toBe('Forgot your password?');
    await check('forgot-password');
    await page.getByLabel('Email', { exact: true }).fill(account.email);
    await page.getByRole('button', { name: 'Email me a reset link' }).click();
    expect(await heading()).toBe('Check your email');
    await check('forgot-password-sent');
    await go(await mailLink(account.email, SUBJECT_RESET, 'reset-password'));
    expect(await heading()).toBe('Choose a new password');
    await check('reset-password');
    password = `${account.password}-renewed`;
    await page.getByLabel('New password', { exact: true }).fill(password);
    await page.getByLabel('Repeat the new password').fill(`${password}!`);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    expect(await page.locator('#f-confirm-error').innerText()).toContain('The two passwords differ.');
    await check('reset-password-error');
    await page.getByLabel('New password', { exact: true }).fill(password);
    await page.getByLabel('Repeat the new password').fill(password);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    expect(await heading()).toBe('Password changed');
    await check('password-changed');
    await page.getByRole('link', { name: 'Sign in' }).click();
    await signIn(account.email, password);
    await page.waitForURL(`${rig.base}/account`);
  });

  it('turns TOTP on with a code from the QR secret, and shows the recovery codes once', async () => {
    await page.locator('#f-password').fill(password);
    await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
    await page.waitForURL(`${rig.base}/account/two-factor`);
    expect(await heading()).toBe('Set up two-factor authentication');
    expect(await page.locator('.qr svg').count()).toBe(1);
    await check('two-factor-setup');
    const secret = (await page.locator('code.secret').innerText()).replace(/\s+/g, '');
    totp = new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
    await page.getByLabel('6-digit code').fill('000000');
    await page.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
    expect(await page.locator('#f-code-error').innerText()).toContain('That code is not valid');
    await page.getByLabel('6-digit code').fill(nextCode(totp));
    await page.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
    expect(await heading()).toBe('Your recovery codes');
    recoveryCodes = await page.locator('#recovery-codes li').allInnerTexts();
    expect(recoveryCodes).toHaveLength(10);
    // The copy button is progressive enhancement: shown by the script, absent without it.
    expect(await page.getByRole('button', { name: 'Copy codes' }).isVisible()).toBe(javaScript);
    await check('recovery-codes');
  });

  it('signs in with the authenticator code, then with a recovery code', async () => {
    await go('/account');
    await signOut();
    await signIn(account.email, password);
    await page.waitForURL(/\/sign-in\/mfa/);
    expect(await heading()).toBe('Two-factor authentication');
    await check('sign-in-mfa');
    await page.getByLabel('6-digit code').fill(nextCode(totp));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${rig.base}/account`);
    expect(await page.locator('section', { hasText: 'Two-factor authentication' }).innerText()).toContain('Two-factor authentication is on');

    await signOut();
    await signIn(account.email, password);
    await page.getByRole('link', { name: 'Use a recovery code instead' }).click();
    await check('sign-in-recovery-code');
    await page.getByLabel('Recovery code').fill(recoveryCodes[3]);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${rig.base}/account`);
  });

  it('is usable at 320 px and at 200 % zoom, in the dark, and in German', async () => {
    await signOut();
    for (const width of [320, 640]) {
      await page.setViewportSize({ width, height: 700 });
      for (const path of ['/sign-in', '/sign-up', '/forgot-password']) {
        await go(path);
        const overflow = await probe(() => (globalThis as any).document.documentElement.scrollWidth);
        if (javaScript) expect(overflow, `${path} at ${width} px`).toBeLessThanOrEqual(width);
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await go('/sign-in');
    await check('sign-in-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    const german = await browser.newContext({ javaScriptEnabled: javaScript, locale: 'de-DE' });
    const dePage = await german.newPage();
    await dePage.goto(`${rig.base}/sign-in`);
    expect(await dePage.locator('h1').innerText()).toBe('Anmelden');
    expect(await dePage.getAttribute('html', 'lang')).toBe('de');
    await german.close();
  });

  it('saw no serious or critical axe-core violation and no Content-Security-Policy violation on any page', () => {
    expect(audited.size).toBeGreaterThanOrEqual(16);
    expect(Object.fromEntries([...audited].filter(([, v]) => v.length > 0))).toEqual({});
    expect(csp).toEqual([]);
  });
});
