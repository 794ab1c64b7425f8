import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExampleApp } from '../../examples/express-oidc/app.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { axeViolations, chromiumPath, cspViolations, launchBrowser, screenshots } from '../support/browser.js';
import type { Browser, Page } from '../support/browser.js';
import { freePort } from '../support/ports.js';

/**
 * "Sign in with Signet" in a real browser: the example Express app under
 * examples/express-oidc (openid-client) sends Chromium to Signet's sign-in
 * page, the user gives a password and a TOTP code, allows the app on the
 * consent page, and lands back in the app signed in; signing out of the app
 * signs out of Signet, and Signet tells the app over the back channel.
 */
describe.skipIf(!chromiumPath).each(DIALECTS)('signing in to the example app with Signet in Chromium on %s', (dialect) => {
  let server: TestServer;
  let app: Server;
  let appUrl: string;
  let example: Awaited<ReturnType<typeof createExampleApp>>;
  let browser: Browser;
  let page: Page;
  let csp: string[];
  const account = newAccount({ name: 'Ada Lovelace' });
  let totp: TOTP;

  beforeAll(async () => {
    const port = await freePort();
    // localhost: the browser treats it as a secure context (Secure, __Host- cookies).
    const base = `http://localhost:${port}`;
    server = await startTestServer(dialect, { port, publicUrl: base, audience: base });
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    const token = (await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).body.token as string;
    const setup = await server.call('POST', '/auth/mfa/totp/setup', { token, body: { password: account.password } });
    totp = new TOTP({ secret: Secret.fromBase32(setup.body.secret as string), digits: 6, period: 30 });
    expect((await server.call('POST', '/auth/mfa/totp/enable', { token, body: { code: totp.generate() } })).status).toBe(200);

    const appPort = await freePort();
    appUrl = `http://localhost:${appPort}`;
    const { secret } = await server.signet.services.oidc.clients.register({
      name: 'Example App',
      type: 'confidential',
      redirectUris: [`${appUrl}/callback`],
      postLogoutRedirectUris: [`${appUrl}/`],
      backchannelLogoutUri: `${appUrl}/backchannel-logout`,
    });
    const [registered] = await server.signet.services.oidc.clients.list();
    example = await createExampleApp({ issuer: base, clientId: registered.id, clientSecret: secret!, appUrl });
    app = example.app.listen(appPort, '127.0.0.1');
    await new Promise((resolve) => app.once('listening', resolve));
    expect((app.address() as AddressInfo).port).toBe(appPort);
    browser = await launchBrowser();
    page = await (await browser.newContext()).newPage();
    csp = cspViolations(page);
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => app?.close(resolve));
    await server?.close();
  });

  it('signs in with password, TOTP and consent, shows UserInfo, then signs out everywhere', async () => {
    await page.goto(appUrl);
    await page.click('#sign-in');
    await page.waitForURL(/\/sign-in\?/);
    expect(await axeViolations(page)).toEqual([]);
    await page.fill('input[name=identifier]', account.email);
    await page.fill('input[name=password]', account.password);
    await page.click('button[type=submit]');

    await page.waitForURL(/\/sign-in\/mfa/);
    // A code from a step the account has not used yet (the enable call spent the current one).
    await page.fill('input[name=code]', totp.generate({ timestamp: Date.now() + 30_000 }));
    await page.click('button[type=submit]');

    await page.waitForURL(/\/consent\?/);
    expect(await page.textContent('main')).toContain('Example App');
    expect(await axeViolations(page)).toEqual([]);
    if (dialect === 'sqlite') await screenshots(page, 'oidc-consent');
    await page.click('button[value=allow]');

    await page.waitForURL(`${appUrl}/`);
    expect(await page.textContent('#email')).toBe(account.email);
    await page.click('a[href="/profile"]');
    const info = JSON.parse((await page.textContent('#userinfo'))!);
    expect(info).toMatchObject({ email: account.email, name: 'Ada Lovelace', preferred_username: account.username });

    // The ID token says how the user signed in.
    const [session] = [...example.sessions.values()];
    expect(session.claims.amr).toEqual(expect.arrayContaining(['pwd']));

    await page.goto(appUrl);
    await page.click('button[type=submit]');
    await page.waitForURL(`${appUrl}/`);
    expect(await page.textContent('body')).toContain('not signed in');
    // Signed out of Signet too: its account page asks for a sign-in again.
    await page.goto(`${server.signet.services.config.publicUrl}/account`);
    await page.waitForURL(/\/sign-in\?/);
    await server.signet.services.oidc.logout.settle();
    expect(example.loggedOut).toEqual([{ sid: session.claims.sid, sub: session.claims.sub }]);
    expect(csp).toEqual([]);
  });

  it('comes back to the app with the error when the user denies it', async () => {
    const other = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: other })).status).toBe(201);
    await page.goto(`${appUrl}/login`);
    await page.waitForURL(/\/sign-in\?/);
    await page.fill('input[name=identifier]', other.email);
    await page.fill('input[name=password]', other.password);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/consent\?/);
    await page.click('button[value=deny]');
    await page.waitForURL(/\/callback\?/);
    expect(await page.textContent('body')).toContain('access_denied');
    expect(csp).toEqual([]);
  });
});
