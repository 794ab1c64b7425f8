import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { chromiumPath, cspViolations, launchBrowser, screenshots } from '../support/browser.js';
import type { Browser, Page } from '../support/browser.js';
import { freePort } from '../support/ports.js';

/**
 * "Sign in with …" in a real browser: Chromium clicks the provider's button on
 * Signet's sign-in page, signs in on the upstream provider's own hosted page (a
 * second Signet, at 127.0.0.1 so that its cookies stay apart from this one's at
 * localhost), and lands back on Signet's account page signed in, the
 * connection listed.
 */
describe.skipIf(!chromiumPath).each(DIALECTS)('signing in with another identity provider in Chromium on %s', (dialect) => {
  let upstream: TestServer;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let csp: string[];
  let base: string;
  const account = newAccount({ name: 'Grace Hopper' });

  beforeAll(async () => {
    const upPort = await freePort();
    const issuer = `http://127.0.0.1:${upPort}`;
    upstream = await startTestServer('sqlite', { port: upPort, publicUrl: issuer, audience: issuer });
    expect((await upstream.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    await upstream.signet.services.db.kysely.updateTable('users').set({ email_verified: 1 }).where('email', '=', account.email).execute();
    const port = await freePort();
    base = `http://localhost:${port}`;
    const { secret } = await upstream.signet.services.oidc.clients.register({
      id: 'downstream',
      name: 'Downstream',
      type: 'confidential',
      firstParty: true,
      redirectUris: [`${base}/auth/federation/corp/callback`],
      scopes: ['openid', 'email', 'profile'],
    });
    server = await startTestServer(dialect, {
      port,
      publicUrl: base,
      audience: base,
      federationProviders: [{ type: 'oidc', id: 'corp', name: 'Corp ID', issuer, clientId: 'downstream', clientSecret: secret, trustEmail: true }] as never,
    });
    browser = await launchBrowser();
    page = await (await browser.newContext()).newPage();
    csp = cspViolations(page);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await upstream?.close();
  });

  it('signs up and in through the provider, and shows the connection on the account page', async () => {
    await page.goto(`${base}/sign-in`);
    await page.getByRole('link', { name: 'Sign in with Corp ID' }).click();
    await page.waitForURL((url) => url.origin === new URL(upstream.url).origin && url.pathname === '/sign-in');
    await page.fill('#f-identifier', account.email);
    await page.fill('#f-password', account.password);
    await page.click('form[action$="/sign-in"] button[type=submit]');
    await page.waitForURL(`${base}/account`);
    const connections = page.locator('section[aria-labelledby="connections-h"]');
    await expect(connections.textContent()).resolves.toContain('Corp ID');
    await expect(page.locator('main').textContent()).resolves.toContain(account.email);
    const cookies = await page.context().cookies(base);
    expect(cookies.map((c) => c.name)).toContain('__Host-signet-access');
    expect(cookies.map((c) => c.name)).not.toContain('__Host-signet-fed');
    await screenshots(page, `federation-account-${dialect}`);
    expect(csp).toEqual([]);
  });

  it('shows a clear error on the page when the callback is replayed', async () => {
    const p = await (await browser.newContext()).newPage();
    await p.goto(`${base}/auth/federation/corp/callback?code=x&state=${'y'.repeat(43)}`);
    await expect(p.locator('main').textContent()).resolves.toContain('Signing in with Corp ID did not work');
  });
});
