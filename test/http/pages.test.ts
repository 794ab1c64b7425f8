import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../../src/http/app.js';
import { safeReturnTo } from '../../src/http/pages/return-to.js';
import { pagePolicy } from '../../src/http/pages/layout.js';
import { negotiate } from '../../src/http/pages/i18n/index.js';
import { de } from '../../src/http/pages/i18n/de.js';
import { en } from '../../src/http/pages/i18n/en.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { freshIp } from '../support/attack.js';
import { PageClient } from '../support/pages.js';

/**
 * The hosted pages over HTTP, without a browser (test/e2e has the browser):
 * the redirect allow-list, CSRF on every form, the same defences and answers
 * as the JSON API, security headers, languages.
 */

const PUBLIC_URL = 'https://auth.example.com';
const ALLOWED = { publicUrl: PUBLIC_URL, returnUrls: ['https://app.example.com', 'https://shop.example.com/signed-in'] };

describe('return_to: only Signet itself and RETURN_URLS, whatever the spelling', () => {
  it.each([
    ['/account', '/account'],
    ['/account?tab=security#sessions', '/account?tab=security#sessions'],
    ['https://app.example.com/', 'https://app.example.com/'],
    ['https://app.example.com/orders/42?x=1', 'https://app.example.com/orders/42?x=1'],
    ['https://shop.example.com/signed-in', 'https://shop.example.com/signed-in'],
    ['https://shop.example.com/signed-in?next=%2Fcart', 'https://shop.example.com/signed-in?next=%2Fcart'],
    ['https://auth.example.com/account', 'https://auth.example.com/account'],
  ])('allows %s', (raw, expected) => {
    expect(safeReturnTo(raw, ALLOWED)).toBe(expected);
  });

  it.each([
    ['protocol-relative', '//evil.com'],
    ['protocol-relative to an allowed host', '//app.example.com/x'],
    ['backslash authority', '/\\evil.com'],
    ['backslashes', '\\\\evil.com'],
    ['scheme without slashes', 'https:evil.com'],
    ['scheme without slashes, allowed host', 'https:app.example.com'],
    ['userinfo before an allowed host', 'https://app.example.com@evil.com'],
    ['userinfo on an allowed host', 'https://user:pass@app.example.com/'],
    ['encoded slashes', '/%2F%2Fevil.com'],
    ['encoded slash, upper case', '/%2f%2Fevil.com'],
    ['encoded backslash', '/%5Cevil.com'],
    ['an allowed host as a subdomain of another', 'https://app.example.com.evil.com/'],
    ['another scheme', 'javascript:alert(1)'],
    ['data URL', 'data:text/html,<script>alert(1)</script>'],
    ['another port', 'https://app.example.com:8443/'],
    ['http for an https entry', 'http://app.example.com/'],
    ['another path than an exact entry', 'https://shop.example.com/signed-in/../admin'],
    ['a path under an exact entry', 'https://shop.example.com/signed-in/extra'],
    ['tab inside', 'https://app.exa\tmple.com/'],
    ['new line inside', '/account\n'],
    ['leading space', ' https://app.example.com/'],
    ['relative without slash', 'evil.com'],
    ['empty', ''],
  ])('refuses %s: %s', (_what, raw) => {
    expect(safeReturnTo(raw, ALLOWED)).toBeUndefined();
  });
});

describe("the pages' Content-Security-Policy", () => {
  const base = { brandLogoUrl: undefined, returnUrls: [] };
  it("allows fetching from Signet's own origin only where the pages offer passkeys (their script fetches ceremony options)", () => {
    expect(
      pagePolicy({ ...base, publicUrl: 'https://auth.example.com', webauthnRpId: 'auth.example.com', webauthnOrigins: ['https://auth.example.com'] }),
    ).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    // No relying party (PUBLIC_URL on an IP address), or one whose origins leave the pages out: no passkeys, no fetch.
    for (const passkeys of [
      { publicUrl: 'http://127.0.0.1:3000', webauthnRpId: undefined, webauthnOrigins: [] },
      { publicUrl: 'https://auth.example.com', webauthnRpId: 'example.com', webauthnOrigins: ['https://app.example.com'] },
    ]) {
      expect(pagePolicy({ ...base, ...passkeys })).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
    }
  });
});

describe('languages', () => {
  it('picks the best catalog that exists from Accept-Language, English otherwise', () => {
    expect(negotiate('de-CH, de;q=0.9, en;q=0.8')).toBe(de);
    expect(negotiate('fr-FR, de;q=0.5')).toBe(de);
    expect(negotiate('fr-FR, en;q=0.1, de;q=0.05')).toBe(en);
    expect(negotiate('de;q=0, en')).toBe(en);
    expect(negotiate('*')).toBe(en);
    expect(negotiate(undefined)).toBe(en);
  });

  it('has a German catalog with every key of the English one', () => {
    const keys = (o: object, path = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? keys(v as object, `${path}${k}.`) : [`${path}${k}`]));
    expect(keys(de).sort()).toEqual(keys(en).sort());
  });
});

describe.each(DIALECTS)('hosted pages over HTTP on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, {
      publicUrl: PUBLIC_URL,
      audience: PUBLIC_URL,
      rateLimits: true,
      trustProxy: ['127.0.0.1'],
      emailVerification: 'required',
      returnUrls: ['https://app.example.com'],
      brandColor: '#7a1fa2',
      brandLogoUrl: 'https://cdn.example.com/logo.svg',
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const browser = () => new PageClient(server.url, { origin: PUBLIC_URL, 'x-forwarded-for': freshIp() });

  it('sends every page with a strict CSP that allows the logo and the return origins, and no inline script or style', async () => {
    const client = browser();
    for (const path of ['/sign-in', '/sign-up', '/forgot-password', '/reset-password?token=' + 'a'.repeat(43)]) {
      const reply = await client.get(path);
      expect(reply.status, path).toBe(200);
      const csp = reply.headers.get('content-security-policy')!;
      expect(csp).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https://cdn.example.com; connect-src 'self'; form-action 'self' https://app.example.com; frame-ancestors 'none'; base-uri 'none'",
      );
      expect(reply.headers.get('x-frame-options')).toBe('DENY');
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(reply.text).not.toMatch(/<script(?![^>]*\ssrc=)/i);
      expect(reply.text).not.toMatch(/\sstyle=|<style/i);
      expect(reply.text).toContain('<img src="https://cdn.example.com/logo.svg" alt="Signet logo">');
    }
    const css = await fetch(`${server.url}/assets/signet.css?v=x`);
    expect(await css.text()).toContain('--accent:#7a1fa2;--on-accent:#fff');
  });

  it('sets the form cookie as __Host-, HttpOnly, Secure, SameSite=Strict, and refuses a form without its token, from another site, or of another type', async () => {
    const client = browser();
    const page = await client.get('/sign-in');
    expect(page.headers.getSetCookie().find((c) => c.startsWith('__Host-signet-form='))).toMatch(/Path=\/; HttpOnly; Secure; SameSite=Strict/);
    const account = newAccount();
    expect((await client.post('/sign-in', { identifier: account.email, password: account.password, csrf: 'forged' })).status).toBe(403);
    expect((await client.post('/sign-in', { identifier: account.email, password: account.password }, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await client.post('/sign-in', { identifier: account.email, password: account.password }, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await client.post('/sign-in', { identifier: account.email, password: 'x' }, { 'content-type': 'text/plain' })).status).toBe(415);
    // Another browser's token does not fit this one's cookie.
    const other = browser();
    await other.get('/sign-in');
    const stolen = /name="csrf" value="([^"]+)"/.exec((await other.get('/sign-in')).text)![1];
    expect((await client.post('/sign-in', { identifier: account.email, password: account.password, csrf: stolen })).status).toBe(403);
  });

  it('answers the sign-up page the same for a new and a taken address when verification is required (as the API does)', async () => {
    const taken = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: taken })).status).toBe(201);
    const answers = [];
    for (const email of [taken.email, newAccount().email]) {
      const client = browser();
      await client.get('/sign-up');
      const reply = await client.post('/sign-up', { email, password: 'a fine long password' });
      answers.push({ status: reply.status, body: reply.text.replace(/name="csrf" value="[^"]+"/, ''), cookies: reply.headers.getSetCookie().length });
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0].status).toBe(200);
  });

  it('answers the forgot page the same for an existing and an unknown address', async () => {
    const existing = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: existing })).status).toBe(201);
    const answers = [];
    for (const email of [existing.email, newAccount().email]) {
      const client = browser();
      await client.get('/forgot-password');
      const reply = await client.post('/forgot-password', { email });
      answers.push({ status: reply.status, body: reply.text });
    }
    expect(answers[0]).toEqual(answers[1]);
  });

  it('keeps the input but never the password when a form comes back with an error, ties each message to its field, and focuses it', async () => {
    const client = browser();
    await client.get('/sign-up');
    const reply = await client.post('/sign-up', { email: 'not-an-address', username: 'ok_name', password: 'short' });
    expect(reply.status).toBe(400);
    expect(reply.text).toContain('value="not-an-address"');
    expect(reply.text).toContain('value="ok_name"');
    expect(reply.text).not.toContain('value="short"');
    expect(reply.text).toMatch(/<input id="f-email"[^>]*aria-describedby="f-email-error"[^>]*aria-invalid="true"[^>]*autofocus>/);
    expect(reply.text).toContain('id="f-email-error"');
    expect(reply.text).toMatch(/<input id="f-password"[^>]*aria-invalid="true"/);
  });

  it('shares the sign-in defences with the API: a throttled account answers the page like a wrong password, even for the right one', async () => {
    const account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    // Verification is required on this server: confirm the address straight in the store.
    await server.signet.services.db.kysely.updateTable('users').set({ email_verified: 1 }).where('email_key', '=', account.email.toLowerCase()).execute();
    for (let i = 0; i < 5; i++)
      expect(
        (
          await server.call('POST', '/auth/signin', {
            body: { email: account.email, password: `wrong-${i}-password` },
            headers: { 'x-forwarded-for': freshIp() },
          })
        ).status,
      ).toBe(401);
    const client = browser();
    await client.get('/sign-in');
    const reply = await client.post('/sign-in', { identifier: account.email, password: account.password });
    expect(reply.status).toBe(401);
    expect(reply.text).toContain(en.errors.invalidCredentials);
    expect(reply.headers.getSetCookie().some((c) => c.startsWith('__Host-signet-access='))).toBe(false);
  });

  it('sends a signed-out visitor of the account page to sign in, and back afterwards', async () => {
    const reply = await browser().get('/account');
    expect(reply.status).toBe(303);
    expect(reply.location).toBe('/sign-in?return_to=%2Faccount');
  });

  it('serves every page row of the route table, documents none of them in OpenAPI, and counts them as its own paths when mounted', async () => {
    const rows = routeTable(server.signet.services).filter((r) => r.kind === 'page' || r.kind === 'asset');
    expect(rows.length).toBeGreaterThanOrEqual(20);
    const openapi = (await server.call('GET', '/openapi.json')).body;
    for (const row of rows) {
      expect(openapi.paths[row.path], `${row.path} in OpenAPI`).toBeUndefined();
      expect(server.signet.handles(row.path.replace(/:\w+/g, '0192f0c4-0000-7000-8000-000000000000')), row.path).toBe(true);
      if (row.method === 'GET' && !row.path.includes(':')) {
        const reply = await browser().get(row.path);
        expect([200, 303, 400], `GET ${row.path}`).toContain(reply.status);
      }
    }
    expect(server.signet.handles('/not-signet')).toBe(false);
  });

  it('answers in German when the browser asks for it', async () => {
    const reply = await browser().get('/sign-in', { 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' });
    expect(reply.text).toContain('<html lang="de"');
    expect(reply.text).toContain('<h1>Anmelden</h1>');
    expect(reply.headers.get('vary')).toMatch(/Accept-Language/);
  });

  it('answers a rate-limited form with an HTML 429 and Retry-After, from the same budget as the JSON route', async () => {
    const client = browser();
    await client.get('/forgot-password');
    for (let i = 0; i < 10; i++) expect((await client.post('/forgot-password', { email: newAccount().email })).status).toBe(200);
    const limited = await client.post('/forgot-password', { email: newAccount().email });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toMatch(/^text\/html/);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
