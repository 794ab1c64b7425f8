import { Script } from 'node:vm';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { freshIp } from '../support/attack.js';
import { PageClient } from '../support/pages.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';

/**
 * The hosted pages' passkey forms over HTTP, without a browser (the browser
 * runs them in test/e2e/passkeys.test.ts): what the markup offers, and what
 * the page rows accept from the page script, with a software authenticator
 * standing in for the browser.
 */

const PUBLIC_URL = 'https://auth.example.com';

/** The value of an attribute of the first element carrying `marker`, HTML entities decoded. */
function attribute(text: string, marker: string, name: string): string | undefined {
  const tag = new RegExp(`<[^>]*${marker}[^>]*>`).exec(text)?.[0];
  const raw = tag && new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
  return raw
    ?.replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

describe.each(DIALECTS)('passkeys on the hosted pages over HTTP on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { publicUrl: PUBLIC_URL, audience: PUBLIC_URL, trustProxy: ['127.0.0.1'], rateLimits: true });
  });
  afterAll(async () => {
    await server?.close();
  });

  const browser = () => new PageClient(server.url, { origin: PUBLIC_URL, 'x-forwarded-for': freshIp() });
  const authenticator = () => new SoftAuthenticator({ rpId: 'auth.example.com', origin: PUBLIC_URL });

  /** A new account with a passkey added over the JSON API; returns its details and the authenticator. */
  async function withPasskey(): Promise<{ email: string; password: string; token: string; soft: SoftAuthenticator; id: string }> {
    const account = newAccount();
    const { token } = (await server.call('POST', '/auth/signup', { body: account })).body;
    const soft = authenticator();
    const options = await server.call('POST', '/auth/passkeys/register/options', { token });
    const added = await server.call('POST', '/auth/passkeys/register/verify', { token, body: { response: soft.register(options.body), name: 'Laptop' } });
    expect(added.status).toBe(201);
    return { ...account, token, soft, id: added.body.passkey.id };
  }

  const signInOptions = async () => (await server.call('POST', '/auth/passkeys/signin/options')).body;

  it('offers passkeys on the sign-in page as enhancement only: hidden controls, autofill on the identifier, same-origin scripts', async () => {
    const client = browser();
    const page = await client.get('/sign-in');
    expect(page.text).toMatch(/<input id="f-identifier" name="identifier" type="text" autocomplete="username webauthn"/);
    expect(page.text).toMatch(
      /<div class="passkey-box" data-passkey="signin" data-options="\/auth\/passkeys\/signin\/options" data-autofill="on"[^>]* hidden>/,
    );
    const scripts = [...page.text.matchAll(/<script src="([^"]+)" defer><\/script>/g)].map((m) => m[1]);
    expect(scripts.map((s) => s.split('?')[0])).toEqual(['/assets/signet.js', '/assets/webauthn.js', '/assets/passkeys.js']);
    for (const src of scripts) {
      const asset = await fetch(`${server.url}${src}`);
      expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const body = await asset.text();
      expect(body).not.toContain('sourceMappingURL');
      // Classic scripts, not modules: they must parse as such (no import or export).
      expect(() => new Script(body), src).not.toThrow();
      if (src.startsWith('/assets/webauthn.js')) expect(body).toContain('SimpleWebAuthnBrowser');
    }
    expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)/i);
  });

  it('signs in with the assertion the page posts: cookies, the device cookie, and on to return_to; a replay is refused', async () => {
    const { soft, id } = await withPasskey();
    const client = browser();
    await client.get('/sign-in?return_to=%2Faccount%3Ffrom%3Dapp');
    const credential = JSON.stringify(soft.authenticate(await signInOptions(), id));
    // Without the form's token, or from another site: refused before any passkey is looked at.
    expect((await client.post('/sign-in/passkey', { credential, csrf: 'forged' })).status).toBe(403);
    expect((await client.post('/sign-in/passkey', { credential }, { origin: 'https://evil.example' })).status).toBe(403);
    const reply = await client.post('/sign-in/passkey', { credential, return_to: '/account?from=app' });
    expect(reply.status).toBe(303);
    expect(reply.location).toBe('/account?from=app');
    expect(decodeJwt(client.cookies.get('__Host-signet-access')!).amr).toEqual(['hwk', 'user', 'mfa']);
    expect(client.cookies.has('__Host-signet-device')).toBe(true);

    const other = browser();
    await other.get('/sign-in');
    const replay = await other.post('/sign-in/passkey', { credential });
    expect(replay.status).toBe(400);
    expect(replay.text).toContain('The passkey request expired. Try again.');
    // Autofill is not armed again right after a refusal.
    expect(replay.text).toContain('data-autofill="off"');
  });

  it('says an unknown passkey is unknown, and marks it so the page script can tell the browser to forget it', async () => {
    const stranger = authenticator();
    stranger.register({ challenge: 'x'.repeat(43), user: { id: 'AAAA' } });
    const client = browser();
    await client.get('/sign-in');
    const reply = await client.post('/sign-in/passkey', { credential: JSON.stringify(stranger.authenticate(await signInOptions(), stranger.only)) });
    expect(reply.status).toBe(401);
    expect(reply.text).toContain('This passkey is not registered here any more.');
    expect(reply.text).toContain(`<span hidden data-unknown-passkey="${stranger.only}" data-rp-id="auth.example.com"></span>`);
    // Not JSON, or not a credential: the same page, never a 500.
    for (const credential of ['', '{', '{"id":1}', 'null']) {
      const bad = await client.post('/sign-in/passkey', { credential });
      expect(bad.status, credential).toBe(400);
      expect(bad.text).toContain('The passkey did not work.');
    }
  });

  it("offers a passkey-only user's second step with options for this sign-in, and completes it from the posted assertion", async () => {
    const { email, password, soft, id } = await withPasskey();
    const client = browser();
    await client.get('/sign-in');
    const first = await client.post('/sign-in', { identifier: email, password });
    expect(first.location).toBe('/sign-in/mfa');
    const step = await client.follow(first);
    expect(step.status).toBe(200);
    expect(step.text).toContain('Confirm the sign-in with your passkey.');
    expect(step.text).not.toContain('name="code"');
    expect(step.text).not.toContain('recovery');
    expect(step.text).toContain('<noscript>');
    const request = JSON.parse(attribute(step.text, 'data-passkey="mfa"', 'data-request')!);
    expect(request).toMatchObject({ rpId: 'auth.example.com', userVerification: 'discouraged', allowCredentials: [{ id, type: 'public-key' }] });
    // A refused assertion (another origin) shows on the page and leaves the sign-in pending.
    const wrong = await client.post('/sign-in/mfa', {
      method: 'webauthn',
      credential: JSON.stringify(soft.authenticate(request, id, { origin: 'https://evil.example' })),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('The passkey did not work.');
    const again = JSON.parse(attribute(wrong.text, 'data-passkey="mfa"', 'data-request')!);
    const done = await client.post('/sign-in/mfa', { method: 'webauthn', credential: JSON.stringify(soft.authenticate(again, id, { uv: false })) });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/account');
    expect(decodeJwt(client.cookies.get('__Host-signet-access')!).amr).toEqual(['pwd', 'hwk', 'mfa']);
  });

  it('adds, renames and removes passkeys from the account page; removal after an older sign-in asks for the password', async () => {
    const account = newAccount();
    const { token } = (await server.call('POST', '/auth/signup', { body: account })).body;
    const client = browser();
    await client.get('/sign-in');
    await client.post('/sign-in', { identifier: account.email, password: account.password });
    const page = await client.get('/account');
    expect(page.text).toContain('You have no passkey yet.');
    expect(page.text).toMatch(/data-passkey="register" data-options="\/auth\/passkeys\/register\/options"[^>]* hidden>/);
    // Just signed in: no password needed to add one.
    expect(page.text).not.toContain('name="passkeyPassword"');

    // The page script gets options from the JSON API (any session of the user will do here), then posts the result.
    const soft = authenticator();
    const options = await server.call('POST', '/auth/passkeys/register/options', { token });
    const registration = soft.register(options.body);
    const added = await client.post('/account/passkeys', { credential: JSON.stringify(registration), passkeyName: 'Desk key' });
    expect(added.location).toBe('/account?notice=passkey-added');
    const listed = await client.follow(added);
    expect(listed.text).toContain('Your passkey is added.');
    expect(listed.text).toContain('<strong>Desk key</strong>');
    expect(listed.text).toContain('Signing in with your password asks for one of your passkeys.');
    // A replayed registration is refused on the page.
    const twice = await client.post('/account/passkeys', { credential: JSON.stringify(soft.register(options.body)), passkeyName: 'Again' });
    expect(twice.status).toBe(400);
    expect(twice.text).toContain('The passkey could not be added.');

    const id: string = registration.id;
    const renamed = await client.post(`/account/passkeys/${id}/rename`, { name: 'Work key' });
    expect(renamed.location).toBe('/account?notice=passkey-renamed');
    expect((await client.post(`/account/passkeys/${id}/rename`, { name: 'x'.repeat(65) })).status).toBe(400);
    expect((await client.post('/account/passkeys/not%20an%20id/rename', { name: 'x' })).status).toBe(404);
    expect((await client.post(`/account/passkeys/${'A'.repeat(22)}/remove`, {})).status).toBe(404);

    server.clock.advance(11 * 60);
    const older = await client.get('/account');
    expect(older.text).toContain('name="passkeyPassword"');
    const ask = await client.post(`/account/passkeys/${id}/remove`, {});
    expect(ask.status).toBe(200);
    expect(ask.text).toContain('enter your password to remove the passkey “Work key”');
    const wrong = await client.post(`/account/passkeys/${id}/remove`, { password: 'not the password' });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('The password is incorrect.');
    const removed = await client.post(`/account/passkeys/${id}/remove`, { password: account.password });
    expect(removed.location).toBe('/account?notice=passkey-removed');
    expect((await client.follow(removed)).text).toContain('You have no passkey yet.');
  });
});

describe('hosted pages without passkeys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('sqlite', { publicUrl: 'http://127.0.0.1:3998', audience: 'http://127.0.0.1:3998' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('offers nothing of passkeys when PUBLIC_URL is on an IP address: no controls, no scripts, no fetch in the CSP, no rows', async () => {
    const client = new PageClient(server.url, { origin: 'http://127.0.0.1:3998' });
    const page = await client.get('/sign-in');
    expect(page.text).not.toContain('passkey');
    expect(page.text).toContain('autocomplete="username"');
    expect(page.headers.get('content-security-policy')).not.toContain('connect-src');
    expect((await client.post('/sign-in/passkey', { credential: '{}' })).status).toBe(404);
    expect((await fetch(`${server.url}/assets/passkeys.js`)).status).toBe(404);
  });
});
