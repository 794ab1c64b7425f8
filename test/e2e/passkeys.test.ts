import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { axeViolations, chromiumPath, cspViolations, launchBrowser, screenshots } from '../support/browser.js';
import type { Browser, BrowserContext, Page } from '../support/browser.js';

/**
 * Issue 12's passkeys through the hosted pages in a real browser (Debian's
 * Chromium) with a virtual authenticator (Chrome DevTools Protocol, WebAuthn
 * domain): add a passkey on the account page, sign in with the button and
 * with the identifier field's autofill (conditional mediation), use it as the
 * second factor of a password sign-in, rename and remove it (after which the
 * authenticator's copy is refused as unknown and forgotten), and the
 * refusals: another origin, a replayed assertion. On each database; axe-core
 * on every passkey page and section; screenshots.
 *
 * The virtual authenticator answers by itself (automaticPresenceSimulation),
 * so an autofill request armed on page load resolves at once: the tests that
 * press the button switch conditional mediation off in the page instead.
 * The RP ID is `localhost`: the only host name a browser accepts for
 * WebAuthn over plain HTTP.
 */

const ACCESS_COOKIE = '__Host-signet-access';

/** A free port on loopback, so the public URL can name it before the server starts. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

interface Session {
  context: BrowserContext;
  page: Page;
  /** navigator.credentials.get() calls, by mediation ('conditional' for autofill, 'optional' for the button). */
  gets: string[];
  csp: string[];
  /** The authenticator's credentials, as the DevTools protocol lists them. */
  credentials(): Promise<{ credentialId: string; rpId?: string | undefined; isResidentCredential: boolean; signCount: number }[]>;
  deleted: Promise<unknown>;
}

describe.skipIf(!chromiumPath).each(DIALECTS)('passkeys in Chromium on %s', (dialect: DialectName) => {
  let server: TestServer;
  let elsewhere: Server;
  let base: string;
  /** The same Signet served on another port: an origin outside WEBAUTHN_ORIGINS (RP ID localhost fits it). */
  let otherOrigin: string;
  let browser: Browser;
  const audited = new Map<string, unknown[]>();
  const shoot = dialect === 'sqlite';

  beforeAll(async () => {
    const port = await freePort();
    base = `http://localhost:${port}`;
    server = await startTestServer(dialect, { port, publicUrl: base, audience: base, rateLimits: true });
    expect(server.signet.services.config.webauthnRpId).toBe('localhost');
    elsewhere = createServer(server.signet.handler);
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    otherOrigin = `http://localhost:${(elsewhere.address() as AddressInfo).port}`;
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    elsewhere?.close();
    await server?.close();
  });

  /** A fresh browser context with its own virtual authenticator, added before any page loads. */
  async function open(options: { autofill: boolean }): Promise<Session> {
    const context = await browser.newContext({ locale: 'en-GB', viewport: { width: 1280, height: 800 } });
    const gets: string[] = [];
    await context.exposeBinding('recordCredentialGet', (_source, mediation: string) => gets.push(mediation));
    // Injected through the DevTools protocol: the pages' CSP does not apply to it.
    await context.addInitScript((autofill: boolean) => {
      const w = globalThis as any;
      const credentials = w.navigator.credentials;
      const get = credentials.get.bind(credentials);
      credentials.get = (options: any) => (w.recordCredentialGet(options?.mediation ?? 'optional'), get(options));
      // Without autofill the page behaves as in a browser that has no conditional mediation.
      if (!autofill && w.PublicKeyCredential) w.PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);
    }, options.autofill);
    const page = await context.newPage();
    page.setDefaultTimeout(8000);
    const csp = cspViolations(page);
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        ctap2Version: 'ctap2_1',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const deleted = new Promise((resolve) => cdp.once('WebAuthn.credentialDeleted', resolve));
    return {
      context,
      page,
      gets,
      csp,
      credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
      deleted,
    };
  }

  async function check(page: Page, name: string): Promise<void> {
    audited.set(name, await axeViolations(page));
    if (shoot) await screenshots(page, `passkeys-${name}`);
  }

  const heading = (page: Page) => page.locator('h1').innerText();

  /** The `amr` of the access token in the browser's cookie. */
  async function amr(context: BrowserContext): Promise<unknown> {
    const cookie = (await context.cookies(base)).find((c) => c.name === ACCESS_COOKIE);
    return cookie ? decodeJwt(cookie.value).amr : undefined;
  }

  async function signInWithPassword(page: Page, account: { email: string; password: string }): Promise<void> {
    await page.goto(`${base}/sign-in`);
    await page.getByLabel('Email or username').fill(account.email);
    await page.getByLabel('Password', { exact: true }).fill(account.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }

  /** A new account, signed in on the page, with a passkey added from the account page. */
  async function withPasskey(session: Session, name = 'Test laptop'): Promise<{ email: string; password: string }> {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    const { page } = session;
    await signInWithPassword(page, account);
    await page.waitForURL(`${base}/account`);
    await page.getByLabel('Name of the new passkey').fill(name);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.waitForURL(`${base}/account?notice=passkey-added`);
    return account;
  }

  async function signOut(page: Page): Promise<void> {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL(/\/sign-in\?notice=signed-out$/);
  }

  it('adds a passkey on the account page, signs out, and signs in with the button', async () => {
    const session = await open({ autofill: false });
    const { page, context } = session;
    await withPasskey(session);
    expect(await page.getByRole('status').innerText()).toBe('Your passkey is added.');
    const section = page.locator('section#passkeys');
    expect(await section.locator('li strong').allInnerTexts()).toEqual(['Test laptop']);
    expect(await section.innerText()).toContain('Not used yet');
    const [credential] = await session.credentials();
    expect(credential).toMatchObject({ rpId: 'localhost', isResidentCredential: true });
    await check(page, 'account');

    await signOut(page);
    const button = page.getByRole('button', { name: 'Sign in with a passkey' });
    await button.waitFor();
    expect(await page.getAttribute('#f-identifier', 'autocomplete')).toBe('username webauthn');
    await check(page, 'sign-in');
    await button.click();
    await page.waitForURL(`${base}/account`);
    expect(await amr(context)).toEqual(['hwk', 'user', 'mfa']);
    expect(session.gets).toEqual(['optional']);
    expect(await page.locator('section#passkeys').innerText()).not.toContain('Not used yet');
    expect(session.csp).toEqual([]);
    await context.close();
  });

  it("signs in through the identifier field's autofill (conditional mediation) as soon as the page loads", async () => {
    const session = await open({ autofill: true });
    const { page, context } = session;
    await withPasskey(session);
    // Before the passkey existed, the sign-in page armed autofill and the authenticator had nothing to offer.
    expect(session.gets).toEqual(['conditional']);
    // Signing out lands on the sign-in page, which arms autofill on load; the virtual authenticator picks the passkey by itself.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL(`${base}/account`);
    expect(session.gets).toEqual(['conditional', 'conditional']);
    expect(await amr(context)).toEqual(['hwk', 'user', 'mfa']);
    // With a return_to, the passkey sign-in goes on there, as a password sign-in does.
    await context.clearCookies();
    await page.goto(`${base}/sign-in?return_to=${encodeURIComponent('/account?from=app')}`);
    await page.waitForURL(`${base}/account?from=app`);
    expect(session.gets).toEqual(['conditional', 'conditional', 'conditional']);
    expect(session.csp).toEqual([]);
    await context.close();
  });

  it('asks a password sign-in for the passkey as the second factor', async () => {
    const session = await open({ autofill: false });
    const { page, context } = session;
    const account = await withPasskey(session);
    await signOut(page);
    await signInWithPassword(page, account);
    await page.waitForURL(/\/sign-in\/mfa/);
    expect(await heading(page)).toBe('Two-factor authentication');
    expect(await page.locator('.lead').innerText()).toBe('Confirm the sign-in with your passkey.');
    // No TOTP on this account: no code form, no recovery-code link.
    expect(await page.getByLabel('6-digit code').count()).toBe(0);
    const use = page.getByRole('button', { name: 'Use a passkey' });
    await use.waitFor();
    await check(page, 'sign-in-mfa');
    await use.click();
    await page.waitForURL(`${base}/account`);
    expect(await amr(context)).toEqual(['pwd', 'hwk', 'mfa']);
    expect(session.csp).toEqual([]);
    await context.close();
  });

  it('renames and removes a passkey (the password first, after an older sign-in); the removed one is refused as unknown and forgotten', async () => {
    const session = await open({ autofill: false });
    const { page, context } = session;
    const account = await withPasskey(session, 'Old name');
    await page.getByLabel('Name of this passkey').fill('Desk key');
    await page.getByRole('button', { name: 'Rename passkey: Old name' }).click();
    await page.waitForURL(`${base}/account?notice=passkey-renamed`);
    expect(await page.locator('section#passkeys li strong').allInnerTexts()).toEqual(['Desk key']);

    // Eleven minutes after the sign-in, removing a passkey needs the password.
    server.clock.advance(11 * 60);
    await page.getByRole('button', { name: 'Remove passkey: Desk key' }).click();
    expect(await heading(page)).toBe('Remove a passkey');
    await check(page, 'remove-confirm');
    await page.getByLabel('Password', { exact: true }).fill('not the password');
    await page.getByRole('button', { name: 'Remove passkey: Desk key' }).click();
    expect(await page.locator('#f-password-error').innerText()).toContain('The password is incorrect.');
    await page.getByLabel('Password', { exact: true }).fill(account.password);
    await page.getByRole('button', { name: 'Remove passkey: Desk key' }).click();
    await page.waitForURL(`${base}/account?notice=passkey-removed`);
    expect(await page.locator('section#passkeys').innerText()).toContain('You have no passkey yet.');

    // The authenticator still holds it: the server refuses it as unknown, and the page tells the browser to forget it.
    expect(await session.credentials()).toHaveLength(1);
    await signOut(page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${base}/sign-in/passkey`);
    expect(await page.getByRole('alert').first().innerText()).toBe('This passkey is not registered here any more. Sign in with your password.');
    await check(page, 'sign-in-unknown-passkey');
    await session.deleted;
    expect(await session.credentials()).toHaveLength(0);
    expect(session.csp).toEqual([]);
    await context.close();
  });

  it('refuses a passkey used on an origin that is not in WEBAUTHN_ORIGINS', async () => {
    const session = await open({ autofill: false });
    const { page, context } = session;
    await withPasskey(session);
    await signOut(page);

    // The same server on another port: the browser signs that origin into clientDataJSON, and Signet refuses it.
    await page.goto(`${otherOrigin}/sign-in`);
    const assertion = await page.evaluate(async () => {
      const w = globalThis as any;
      const optionsJSON = await (await w.fetch('/auth/passkeys/signin/options', { method: 'POST' })).json();
      return w.SimpleWebAuthnBrowser.startAuthentication({ optionsJSON });
    });
    expect(JSON.parse(Buffer.from(assertion.response.clientDataJSON, 'base64url').toString()).origin).toBe(otherOrigin);
    const refused = await server.call('POST', '/auth/passkeys/signin/verify', { body: { response: assertion } });
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 401, code: 'invalid_passkey' });
    // Through the page's own button and form there, the same: the page says the passkey did not work, and no session starts.
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${otherOrigin}/sign-in/passkey`);
    expect(await page.getByRole('alert').first().innerText()).toBe('The passkey did not work. Try again, or sign in with your password.');
    expect((await context.cookies(base)).find((c) => c.name === ACCESS_COOKIE)).toBeUndefined();

    // Registering from there fails the same way (a fresh account, signed in by bearer token).
    const other = newAccount();
    const { token } = (await server.call('POST', '/auth/signup', { body: other })).body;
    const registration = await page.evaluate(async (bearer: string) => {
      const w = globalThis as any;
      const response = await w.fetch('/auth/passkeys/register/options', { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
      return w.SimpleWebAuthnBrowser.startRegistration({ optionsJSON: await response.json() });
    }, token);
    const notAdded = await server.call('POST', '/auth/passkeys/register/verify', { token, body: { response: registration } });
    expect({ status: notAdded.status, code: notAdded.body.code }).toEqual({ status: 401, code: 'invalid_passkey' });
    expect((await server.call('GET', '/auth/passkeys', { token })).body.passkeys).toEqual([]);
    await context.close();
  });

  it('refuses a replayed sign-in: the same posted assertion a second time', async () => {
    const session = await open({ autofill: false });
    const { page, context } = session;
    await withPasskey(session);
    await signOut(page);
    const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url() === `${base}/sign-in/passkey`);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${base}/account`);
    const body = (await posted).postData()!;
    expect(new URLSearchParams(body).get('credential')).toContain('"authenticatorData"');
    const replay = await context.request.post(`${base}/sign-in/passkey`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
      data: body,
      maxRedirects: 0,
    });
    expect(replay.status()).toBe(400);
    expect(await replay.text()).toContain('The passkey request expired. Try again.');
    await context.close();
  });

  it('saw no serious or critical axe-core violation on any passkey page', () => {
    expect([...audited.keys()].sort()).toEqual(['account', 'remove-confirm', 'sign-in', 'sign-in-mfa', 'sign-in-unknown-passkey']);
    expect(Object.fromEntries([...audited].filter(([, v]) => v.length > 0))).toEqual({});
  });
});
