import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sealer, loadAtRestSecret } from '../../src/core/secrets.js';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { authorizeThroughPages } from '../support/oidc.js';
import { PageClient } from '../support/pages.js';

/**
 * "Sign in with …" end to end against a real OpenID Provider: a second Signet
 * instance (its own database, keys, hosted sign-in page) with a registered
 * confidential client. The flow runs over HTTP as a browser would, each
 * redirect followed by hand: Signet's start → the upstream's authorize and
 * sign-in page → Signet's callback. Every check has a negative case.
 */
describe.each(DIALECTS)('federation with an OpenID Connect provider on %s', (dialect) => {
  let upstream: TestServer;
  let down: TestServer;
  let issuer: string;
  let downUrl: string;

  async function fixedPortServer(setup: (url: string) => Promise<TestServer>): Promise<TestServer> {
    const probe = await startTestServer('sqlite');
    const port = new URL(probe.url).port;
    await probe.close();
    return setup(`http://127.0.0.1:${port}`);
  }

  beforeAll(async () => {
    upstream = await fixedPortServer((url) => startTestServer('sqlite', { port: Number(new URL(url).port), publicUrl: url, audience: url }));
    issuer = upstream.url;
    down = await fixedPortServer(async (url) => {
      downUrl = url;
      const registered = await upstream.signet.services.oidc.clients.register({
        id: 'downstream',
        name: 'Downstream Signet',
        type: 'confidential',
        firstParty: true,
        redirectUris: [`${url}/auth/federation/up/callback`, `${url}/auth/federation/untrusted/callback`],
        scopes: ['openid', 'email', 'profile'],
      });
      const common = { type: 'oidc', issuer, clientId: 'downstream', clientSecret: registered.secret };
      return startTestServer(dialect, {
        port: Number(new URL(url).port),
        publicUrl: url,
        audience: url,
        dev: true,
        federationProviders: [
          { ...common, id: 'up', name: 'Upstream', trustEmail: true },
          { ...common, id: 'untrusted', name: 'Untrusted', trustEmail: false },
        ] as never,
      });
    });
  });
  afterAll(async () => {
    await down?.close();
    await upstream?.close();
  });

  /** An account at the upstream provider, its address verified there or not. */
  async function upstreamAccount(verified: boolean, email?: string) {
    const account = newAccount(email ? { email } : {});
    expect((await upstream.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    if (verified) await upstream.signet.services.db.kysely.updateTable('users').set({ email_verified: 1 }).where('email', '=', account.email).execute();
    return account;
  }

  /** Starts at Signet, signs in at the upstream's page, and stops at the redirect back to Signet's callback. */
  async function toCallback(browser: PageClient, provider: string, account: { email: string; password: string }, query = '') {
    const start = await browser.get(`/auth/federation/${provider}/start${query}`);
    expect(start.status).toBe(303);
    const authorize = new URL(start.location!);
    expect(authorize.origin).toBe(issuer);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${downUrl}/auth/federation/${provider}/callback`);
    const { location } = await authorizeThroughPages(new PageClient(issuer), authorize, { login: { identifier: account.email, password: account.password } });
    expect(location.origin).toBe(downUrl);
    return location;
  }

  const callback = (browser: PageClient, location: URL) => browser.get(location.pathname + location.search);
  const userByEmail = (email: string) =>
    down.signet.services.db.kysely.selectFrom('users').selectAll().where('email_key', '=', email.toLowerCase()).executeTakeFirst();
  const identitiesOf = (userId: string) =>
    down.signet.services.db.kysely.selectFrom('federated_identities').selectAll().where('user_id', '=', userId).execute();

  it('creates an account for a new address, signs it in with amr fed, and signs the same identity in again', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    const back = await callback(browser, await toCallback(browser, 'up', account, '?return_to=%2Faccount%3Fwelcome'));
    expect(back.status).toBe(303);
    expect(back.location).toBe('/account?welcome');
    const access = browser.cookies.get('signet-access')!;
    expect(decodeJwt(access).amr).toEqual(['fed']);
    const user = await userByEmail(account.email);
    expect(user).toMatchObject({ email_verified: 1, password_hash: '!no-password' });
    const identities = await identitiesOf(user!.id);
    expect(identities).toHaveLength(1);
    expect(identities[0]).toMatchObject({ provider: 'up', email: account.email });

    // The account has no password: no guess opens it, not even the stored marker.
    for (const password of [account.password, '!no-password']) {
      expect((await down.call('POST', '/auth/signin', { body: { email: account.email, password } })).body.code).toBe('invalid_credentials');
    }
    const me = await down.call('GET', '/auth/me', { token: access });
    expect(me.body.user.email).toBe(account.email);
    const listed = await down.call('GET', '/auth/federation/identities', { token: access });
    expect(listed.body.identities).toEqual([expect.objectContaining({ provider: 'up', providerName: 'Upstream', email: account.email })]);
    const page = await browser.get('/account');
    expect(page.text).toContain('Connected accounts');

    // The same identity again, from another browser: the same account, no second one.
    const other = new PageClient(downUrl);
    expect((await callback(other, await toCallback(other, 'up', account))).status).toBe(303);
    expect(decodeJwt(other.cookies.get('signet-access')!).sub).toBe(user!.id);
    expect(await identitiesOf(user!.id)).toHaveLength(1);
  });

  it('links a verified address from a provider trusted for addresses to the existing account', async () => {
    const local = newAccount();
    expect((await down.call('POST', '/auth/signup', { body: local })).status).toBe(201);
    const account = await upstreamAccount(true, local.email);
    const browser = new PageClient(downUrl);
    expect((await callback(browser, await toCallback(browser, 'up', account))).status).toBe(303);
    const user = await userByEmail(local.email);
    expect(decodeJwt(browser.cookies.get('signet-access')!).sub).toBe(user!.id);
    expect(await identitiesOf(user!.id)).toHaveLength(1);
  });

  it('does not link an unverified address to the existing account: sign in there and connect instead', async () => {
    const local = newAccount();
    expect((await down.call('POST', '/auth/signup', { body: local })).status).toBe(201);
    const account = await upstreamAccount(false, local.email);
    const browser = new PageClient(downUrl);
    const back = await callback(browser, await toCallback(browser, 'up', account));
    expect(back.status).toBe(409);
    expect(back.text).toContain('already exists');
    expect(browser.cookies.has('signet-access')).toBe(false);
    expect(await identitiesOf((await userByEmail(local.email))!.id)).toHaveLength(0);
  });

  it('does not link even a verified address from a provider not trusted for addresses', async () => {
    const local = newAccount();
    expect((await down.call('POST', '/auth/signup', { body: local })).status).toBe(201);
    const account = await upstreamAccount(true, local.email);
    const browser = new PageClient(downUrl);
    const back = await callback(browser, await toCallback(browser, 'untrusted', account));
    expect(back.status).toBe(409);
    expect(await identitiesOf((await userByEmail(local.email))!.id)).toHaveLength(0);
  });

  it('a new address from an untrusted provider makes an account whose address is not verified', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    expect((await callback(browser, await toCallback(browser, 'untrusted', account))).status).toBe(303);
    expect((await userByEmail(account.email))!.email_verified).toBe(0);
  });

  it('connects a provider from the account page, and unlinks it; never the last way to sign in', async () => {
    const local = newAccount();
    const browser = new PageClient(downUrl);
    await browser.get('/sign-in');
    expect((await down.call('POST', '/auth/signup', { body: local })).status).toBe(201);
    expect((await browser.post('/sign-in', { identifier: local.email, password: local.password })).status).toBe(303);
    const account = await upstreamAccount(false); // another address: linking by hand needs no address match
    const back = await callback(browser, await toCallback(browser, 'untrusted', account, '?intent=link'));
    expect(back.status).toBe(303);
    expect(back.location).toBe('/account?notice=identity-linked');
    const user = await userByEmail(local.email);
    const [identity] = await identitiesOf(user!.id);
    expect(identity).toMatchObject({ provider: 'untrusted', email: account.email });
    // The identity now signs in to that account.
    const other = new PageClient(downUrl);
    expect((await callback(other, await toCallback(other, 'untrusted', account))).status).toBe(303);
    expect(decodeJwt(other.cookies.get('signet-access')!).sub).toBe(user!.id);
    // The account has a password: the identity may go.
    const token = browser.cookies.get('signet-access')!;
    expect((await down.call('DELETE', `/auth/federation/identities/${identity.id}`, { token })).status).toBe(204);
    expect((await down.call('DELETE', `/auth/federation/identities/${identity.id}`, { token })).body.code).toBe('identity_not_found');

    // An account made by a provider has nothing else: its only identity stays.
    const fedOnly = await upstreamAccount(true);
    const fedBrowser = new PageClient(downUrl);
    expect((await callback(fedBrowser, await toCallback(fedBrowser, 'up', fedOnly))).status).toBe(303);
    const fedUser = await userByEmail(fedOnly.email);
    const [only] = await identitiesOf(fedUser!.id);
    const fedToken = fedBrowser.cookies.get('signet-access')!;
    const refusals = await Promise.all([1, 2, 3].map(() => down.call('DELETE', `/auth/federation/identities/${only.id}`, { token: fedToken })));
    for (const refused of refusals) {
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('last_sign_in_method');
    }
    expect(await identitiesOf(fedUser!.id)).toHaveLength(1);
  });

  it('refuses a replayed callback: the state works once', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    const location = await toCallback(browser, 'up', account);
    const cookie = browser.cookies.get('signet-fed')!;
    expect((await callback(browser, location)).status).toBe(303);
    browser.cookies.set('signet-fed', cookie);
    const replay = await callback(browser, location);
    expect(replay.status).toBe(400);
    expect(replay.text).toContain('did not work');
  });

  it("refuses a callback in another browser than the one that started (an attacker's code planted on a victim)", async () => {
    const account = await upstreamAccount(true);
    const attacker = new PageClient(downUrl);
    const location = await toCallback(attacker, 'up', account);
    const victim = new PageClient(downUrl);
    const planted = await callback(victim, location);
    expect(planted.status).toBe(400);
    expect(victim.cookies.has('signet-access')).toBe(false);
    // And the state is spent: the attacker's own browser cannot use it afterwards either.
    expect((await callback(attacker, location)).status).toBe(400);
  });

  it('refuses a state mismatch, and a callback with no state at all', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    const location = await toCallback(browser, 'up', account);
    location.searchParams.set('state', 'x'.repeat(43));
    expect((await callback(browser, location)).status).toBe(400);
    location.searchParams.delete('state');
    expect((await callback(browser, location)).status).toBe(400);
  });

  it('refuses a response whose iss is not the provider (RFC 9207 mix-up defence)', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    const location = await toCallback(browser, 'up', account);
    expect(location.searchParams.get('iss')).toBe(issuer);
    location.searchParams.set('iss', 'https://evil.example');
    const refused = await callback(browser, location);
    expect(refused.status).toBe(400);
    expect(browser.cookies.has('signet-access')).toBe(false);
  });

  it('refuses an ID token whose nonce is not the one this flow sent', async () => {
    const account = await upstreamAccount(true);
    const browser = new PageClient(downUrl);
    const location = await toCallback(browser, 'up', account);
    // Swap in another nonce for this flow, keeping its PKCE verifier: the code redeems, the ID token's nonce does not match.
    const sealer = new Sealer(loadAtRestSecret(down.signet.services.config));
    const { db } = down.signet.services;
    const row = (await db.kysely.selectFrom('federation_states').selectAll().where('provider', '=', 'up').orderBy('created_at', 'desc').executeTakeFirst())!;
    const secrets = JSON.parse(sealer.open('federation flow', row.secrets)!.value) as { nonce: string; codeVerifier: string };
    const forged = sealer.seal('federation flow', JSON.stringify({ ...secrets, nonce: 'another-nonce' }));
    await db.kysely.updateTable('federation_states').set({ secrets: forged }).where('state_hash', '=', row.state_hash).execute();
    const refused = await callback(browser, location);
    expect(refused.status).toBe(400);
    expect(browser.cookies.has('signet-access')).toBe(false);
    expect(await userByEmail(account.email)).toBeUndefined();
  });

  it('refuses an error answer from the provider, and an unknown provider', async () => {
    const browser = new PageClient(downUrl);
    const start = await browser.get('/auth/federation/up/start');
    const state = new URL(start.location!).searchParams.get('state')!;
    const denied = await browser.get(`/auth/federation/up/callback?error=access_denied&state=${state}`);
    expect(denied.status).toBe(400);
    expect((await browser.get('/auth/federation/nowhere/start')).status).toBe(404);
  });

  it('still asks for the second factor of an account with TOTP', async () => {
    const local = newAccount();
    const signedUp = await down.call('POST', '/auth/signup', { body: local });
    const { TOTP } = await import('otpauth');
    const generateSync = (secret: string) => new TOTP({ secret }).generate({ timestamp: down.clock.now() });
    const setup = await down.call('POST', '/auth/mfa/totp/setup', { token: signedUp.body.token, body: { password: local.password } });
    expect((await down.call('POST', '/auth/mfa/totp/enable', { token: signedUp.body.token, body: { code: generateSync(setup.body.secret) } })).status).toBe(
      200,
    );
    const account = await upstreamAccount(true, local.email);
    const browser = new PageClient(downUrl);
    const back = await callback(browser, await toCallback(browser, 'up', account));
    expect(back.status).toBe(303);
    expect(back.location).toMatch(/^\/sign-in\/mfa/);
    expect(browser.cookies.has('signet-access')).toBe(false);
    // The second step's session says both: the provider, then the code.
    down.clock.advance(31);
    await browser.get('/sign-in/mfa');
    const done = await browser.post('/sign-in/mfa', { method: 'totp', code: generateSync(setup.body.secret) });
    expect(done.status).toBe(303);
    expect(decodeJwt(browser.cookies.get('signet-access')!).amr).toEqual(['fed', 'otp', 'mfa']);
  });

  it('lists the configured providers for clients, with the start URL', async () => {
    const listed = await down.call('GET', '/auth/federation/providers');
    expect(listed.body.providers).toEqual([
      { id: 'up', name: 'Upstream', type: 'oidc', startUrl: `${downUrl}/auth/federation/up/start` },
      { id: 'untrusted', name: 'Untrusted', type: 'oidc', startUrl: `${downUrl}/auth/federation/untrusted/start` },
    ]);
    const signIn = await new PageClient(downUrl).get('/sign-in?return_to=%2Faccount');
    expect(signIn.text).toContain('Sign in with Upstream');
    expect(signIn.text).toContain('/auth/federation/up/start?return_to=%2Faccount');
  });
});
