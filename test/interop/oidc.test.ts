import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { PageClient } from '../support/pages.js';
import { authorizeThroughPages, backchannelReceiver } from '../support/oidc.js';

/**
 * Signet as an OpenID Provider, driven by two independent relying-party
 * libraries (openid-client, and oauth4webapi as the strict one) over HTTP,
 * through the hosted sign-in and consent pages with a cookie jar. Every check
 * the flow makes has a negative case here.
 */
describe.each(DIALECTS)('OpenID Connect provider on %s', (dialect) => {
  let server: TestServer;
  let issuer: string;
  let account: ReturnType<typeof newAccount>;
  const RP = 'http://127.0.0.1:9'; // never contacted: the flow stops at the redirect
  const AUDIENCE = 'https://api.example.com';
  let backchannel: Awaited<ReturnType<typeof backchannelReceiver>>;
  let publicConfig: client.Configuration;
  let confidential: { id: string; secret: string; config: client.Configuration };
  let firstParty: client.Configuration;

  beforeAll(async () => {
    const probe = await startTestServer(dialect);
    const port = new URL(probe.url).port;
    await probe.close();
    issuer = `http://127.0.0.1:${port}`;
    server = await startTestServer(dialect, { port: Number(port), publicUrl: issuer, audience: AUDIENCE });
    account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
    backchannel = await backchannelReceiver();
    const clients = server.signet.services.oidc.clients;
    await clients.register({
      id: 'spa',
      name: 'Photo Album',
      type: 'public',
      redirectUris: [`${RP}/cb`],
      postLogoutRedirectUris: [`${RP}/bye`],
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      resources: ['https://photos.example.com'],
    });
    const registered = await clients.register({
      id: 'wiki',
      name: 'Team Wiki',
      type: 'confidential',
      redirectUris: [`${RP}/wiki/cb`],
      postLogoutRedirectUris: [`${RP}/wiki/bye`],
      backchannelLogoutUri: backchannel.url,
      scopes: ['openid', 'email', 'offline_access'],
    });
    await clients.register({
      id: 'portal',
      name: 'Portal',
      type: 'public',
      firstParty: true,
      redirectUris: [`${RP}/portal/cb`],
      scopes: ['openid', 'profile', 'email', 'offline_access'],
    });
    const insecure = { execute: [client.allowInsecureRequests] };
    publicConfig = await client.discovery(new URL(issuer), 'spa', undefined, client.None(), insecure);
    confidential = {
      id: 'wiki',
      secret: registered.secret!,
      config: await client.discovery(new URL(issuer), 'wiki', undefined, client.ClientSecretBasic(registered.secret), insecure),
    };
    firstParty = await client.discovery(new URL(issuer), 'portal', undefined, client.None(), insecure);
  });
  afterAll(async () => {
    await server.close();
    await backchannel.close();
  });

  const login = () => ({ identifier: account.email, password: account.password });

  /** A browser with its own cookie jar, signed in to Signet through the sign-in page. */
  async function signedInBrowser(): Promise<PageClient> {
    const pages = new PageClient(issuer);
    await pages.get('/sign-in');
    const reply = await pages.post('/sign-in', { identifier: account.email, password: account.password });
    expect(reply.status).toBe(303);
    return pages;
  }

  async function startFlow(config: client.Configuration, redirectUri: string, extra: Record<string, string> = {}) {
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state,
      ...extra,
    });
    return { url, verifier, nonce, state };
  }

  it('announces exactly what it supports in discovery', async () => {
    const meta = (await server.call('GET', '/.well-known/openid-configuration')).body;
    expect(meta).toMatchObject({
      issuer,
      authorization_endpoint: `${issuer}/oauth2/authorize`,
      token_endpoint: `${issuer}/auth/token`,
      userinfo_endpoint: `${issuer}/oauth2/userinfo`,
      end_session_endpoint: `${issuer}/oauth2/logout`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      code_challenge_methods_supported: ['S256'],
      request_uri_parameter_supported: false,
      request_parameter_supported: false,
      authorization_response_iss_parameter_supported: true,
      backchannel_logout_supported: true,
      id_token_signing_alg_values_supported: ['RS256'],
    });
    expect(meta.registration_endpoint).toBeUndefined();
    expect(publicConfig.serverMetadata().issuer).toBe(issuer);
  });

  it('signs a user in to a third-party public client: sign-in page, consent, code with PKCE, ID token, UserInfo', async () => {
    const pages = new PageClient(issuer);
    const flow = await startFlow(publicConfig, `${RP}/cb`, { resource: 'https://photos.example.com' });
    const { location, visited } = await authorizeThroughPages(pages, flow.url, { login: login(), consent: 'allow' });
    expect(visited).toContain('/sign-in');
    expect(visited).toContain('/consent');
    expect(location.searchParams.get('iss')).toBe(issuer);
    const tokens = await client.authorizationCodeGrant(publicConfig, location, {
      pkceCodeVerifier: flow.verifier,
      expectedNonce: flow.nonce,
      expectedState: flow.state,
    });
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope).toBe('openid profile email');

    // The ID token: signed by the keyring, verifiable from the JWKS, with every claim OpenID Connect Core asks for.
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(tokens.id_token!, jwks, {
      issuer,
      audience: 'spa',
      algorithms: ['RS256'],
      typ: 'JWT',
      requiredClaims: ['exp', 'iat', 'auth_time', 'nonce', 'amr', 'sid', 'at_hash'],
    });
    expect(protectedHeader.kid).toBeTypeOf('string');
    expect(payload.nonce).toBe(flow.nonce);
    expect(payload.amr).toEqual(['pwd']);
    const digest = createHash('sha256').update(tokens.access_token).digest();
    expect(payload.at_hash).toBe(digest.subarray(0, 16).toString('base64url'));
    expect(payload.email).toBe(account.email);

    // The access token: RFC 9068, for the resource asked for, naming the client and its own grant session.
    const access = await jwtVerify(tokens.access_token, jwks, { issuer, audience: 'https://photos.example.com', typ: 'at+jwt' });
    expect(access.payload).toMatchObject({ client_id: 'spa', scope: 'openid profile email', sub: payload.sub });
    expect(access.payload.sid).not.toBe(payload.sid);
    // Not a token for Signet's own API.
    expect((await server.call('GET', '/auth/me', { token: tokens.access_token })).status).toBe(401);

    const info = await client.fetchUserInfo(publicConfig, tokens.access_token, payload.sub!);
    expect(info).toMatchObject({ sub: payload.sub, email: account.email, email_verified: false, preferred_username: account.username });
    expect(info.name).toBeUndefined();
    expect(info.updated_at).toBeTypeOf('number');
  });

  it('remembers consent, asks again with prompt=consent, and answers prompt=none without a page', async () => {
    const pages = await signedInBrowser();
    const first = await startFlow(publicConfig, `${RP}/cb`);
    await authorizeThroughPages(pages, first.url, { consent: 'allow' });

    const again = await startFlow(publicConfig, `${RP}/cb`);
    const { location, visited } = await authorizeThroughPages(pages, again.url);
    expect(visited).toEqual([]);
    expect(location.searchParams.get('code')).toBeTruthy();

    const silent = await startFlow(publicConfig, `${RP}/cb`, { prompt: 'none' });
    const quiet = await authorizeThroughPages(pages, silent.url);
    const tokens = await client.authorizationCodeGrant(publicConfig, quiet.location, {
      pkceCodeVerifier: silent.verifier,
      expectedNonce: silent.nonce,
      expectedState: silent.state,
    });
    expect(tokens.id_token).toBeTypeOf('string');

    const asked = await startFlow(publicConfig, `${RP}/cb`, { prompt: 'consent' });
    expect((await authorizeThroughPages(pages, asked.url, { consent: 'deny' })).location.searchParams.get('error')).toBe('access_denied');
  });

  it('needs consent for a third-party client before prompt=none may answer, and none for a first-party one', async () => {
    const other = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: other })).status).toBe(201);
    const pages = new PageClient(issuer);
    await pages.get('/sign-in');
    await pages.post('/sign-in', { identifier: other.email, password: other.password });
    const silent = await startFlow(publicConfig, `${RP}/cb`, { prompt: 'none' });
    const { location } = await authorizeThroughPages(pages, silent.url);
    await expect(
      client.authorizationCodeGrant(publicConfig, location, { pkceCodeVerifier: silent.verifier, expectedState: silent.state }),
    ).rejects.toMatchObject({
      error: 'consent_required',
    });
    const trusted = await startFlow(firstParty, `${RP}/portal/cb`, { prompt: 'none' });
    const { location: code, visited } = await authorizeThroughPages(pages, trusted.url);
    expect(visited).toEqual([]);
    expect(code.searchParams.get('code')).toBeTruthy();
  });

  it('answers prompt=none without a session with login_required, state and iss', async () => {
    const flow = await startFlow(publicConfig, `${RP}/cb`, { prompt: 'none' });
    const { location } = await authorizeThroughPages(new PageClient(issuer), flow.url);
    expect(location.searchParams.get('error')).toBe('login_required');
    expect(location.searchParams.get('state')).toBe(flow.state);
    await expect(client.authorizationCodeGrant(publicConfig, location, { pkceCodeVerifier: flow.verifier, expectedState: flow.state })).rejects.toMatchObject({
      error: 'login_required',
    });
  });

  it('asks for the password again with prompt=login and for an old sign-in with max_age, and says when it happened', async () => {
    const pages = await signedInBrowser();
    const forced = await startFlow(firstParty, `${RP}/portal/cb`, { prompt: 'login' });
    const { visited } = await authorizeThroughPages(pages, forced.url, { login: login() });
    expect(visited).toContain('/sign-in');

    server.clock.advance(120);
    const aged = await startFlow(firstParty, `${RP}/portal/cb`, { max_age: '60' });
    const { location, visited: again } = await authorizeThroughPages(pages, aged.url, { login: login() });
    expect(again).toContain('/sign-in');
    const tokens = await client.authorizationCodeGrant(firstParty, location, {
      pkceCodeVerifier: aged.verifier,
      expectedNonce: aged.nonce,
      expectedState: aged.state,
      maxAge: 60,
    });
    const claims = tokens.claims()!;
    expect(Math.abs(claims.auth_time! - server.clock.now() / 1000)).toBeLessThan(5);
  });

  it('refuses an unregistered redirect URI, even one character off, with a page and no redirect', async () => {
    for (const redirect of [`${RP}/cbx`, `${RP}/Cb`, `${RP}/cb/`, 'https://evil.example/cb']) {
      const flow = await startFlow(publicConfig, redirect);
      const response = await fetch(flow.url, { redirect: 'manual' });
      expect(response.status, redirect).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(response.headers.get('content-type')).toMatch(/text\/html/);
    }
    const unknown = new URL(`${issuer}/oauth2/authorize?client_id=nobody&redirect_uri=${encodeURIComponent(`${RP}/cb`)}&response_type=code&scope=openid`);
    const response = await fetch(unknown, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
  });

  it('sends every other bad request back to the client as an error with the state and iss', async () => {
    const base = {
      client_id: 'spa',
      redirect_uri: `${RP}/cb`,
      response_type: 'code',
      scope: 'openid',
      state: 's-1',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
    };
    const cases: [Record<string, string | undefined>, string][] = [
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ scope: 'email' }, 'invalid_scope'],
      [{ code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'],
      [{ prompt: 'none login' }, 'invalid_request'],
      [{ request: 'eyJhbGciOiJub25lIn0.e30.' }, 'request_not_supported'],
      [{ request_uri: 'https://evil.example/r' }, 'request_uri_not_supported'],
      [{ resource: 'https://elsewhere.example.com' }, 'invalid_target'],
      [{ max_age: '-1' }, 'invalid_request'],
      [{ response_mode: 'fragment' }, 'invalid_request'],
    ];
    for (const [change, error] of cases) {
      const params = Object.entries({ ...base, ...change }).filter((e): e is [string, string] => e[1] !== undefined);
      const response = await fetch(`${issuer}/oauth2/authorize?${new URLSearchParams(params).toString()}`, { redirect: 'manual' });
      expect(response.status, JSON.stringify(change)).toBe(302);
      const location = new URL(response.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe(`${RP}/cb`);
      expect(location.searchParams.get('error'), JSON.stringify(change)).toBe(error);
      expect(location.searchParams.get('state')).toBe('s-1');
      expect(location.searchParams.get('iss')).toBe(issuer);
    }
    // A repeated parameter, as RFC 6749 §3.1 says.
    const repeated = await fetch(`${issuer}/oauth2/authorize?${new URLSearchParams(Object.entries(base)).toString()}&scope=openid`, { redirect: 'manual' });
    expect(new URL(repeated.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  it('takes the authorization request as a cross-site form post too', async () => {
    const pages = await signedInBrowser();
    await authorizeThroughPages(pages, (await startFlow(publicConfig, `${RP}/cb`)).url, { consent: 'allow' });
    const flow = await startFlow(publicConfig, `${RP}/cb`);
    const reply = await pages.post('/oauth2/authorize', Object.fromEntries(flow.url.searchParams), { origin: RP, 'sec-fetch-site': 'cross-site' });
    expect(reply.status).toBe(303);
    const { location } = await authorizeThroughPages(pages, new URL(reply.location!, issuer));
    const tokens = await client.authorizationCodeGrant(publicConfig, location, {
      pkceCodeVerifier: flow.verifier,
      expectedNonce: flow.nonce,
      expectedState: flow.state,
    });
    expect(tokens.access_token).toBeTypeOf('string');
  });

  describe('the code', () => {
    async function freshCode(config = publicConfig, redirect = `${RP}/cb`, extra: Record<string, string> = {}) {
      const pages = await signedInBrowser();
      const flow = await startFlow(config, redirect, extra);
      const { location } = await authorizeThroughPages(pages, flow.url, { consent: 'allow' });
      return { ...flow, location, pages };
    }

    it('is refused with a wrong or a missing PKCE verifier', async () => {
      const flow = await freshCode();
      await expect(
        client.authorizationCodeGrant(publicConfig, flow.location, {
          pkceCodeVerifier: client.randomPKCECodeVerifier(),
          expectedNonce: flow.nonce,
          expectedState: flow.state,
        }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
      const other = await freshCode();
      const reply = await fetch(`${issuer}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: other.location.searchParams.get('code')!,
          redirect_uri: `${RP}/cb`,
          client_id: 'spa',
        }),
      });
      expect(reply.status).toBe(400);
      expect(await reply.json()).toMatchObject({ error: 'invalid_grant' });
      // Neither failure spent the code: the rightful holder still redeems it.
      const tokens = await client.authorizationCodeGrant(publicConfig, other.location, {
        pkceCodeVerifier: other.verifier,
        expectedNonce: other.nonce,
        expectedState: other.state,
      });
      expect(tokens.access_token).toBeTypeOf('string');
    });

    it('refuses a verifier for a code issued without a challenge (PKCE downgrade), with oauth4webapi', async () => {
      const pages = await signedInBrowser();
      const as = await oauth.processDiscoveryResponse(
        new URL(issuer),
        await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oidc', [oauth.allowInsecureRequests]: true }),
      );
      const wiki: oauth.Client = { client_id: 'wiki' };
      const url = new URL(as.authorization_endpoint!);
      url.search = new URLSearchParams({ client_id: 'wiki', redirect_uri: `${RP}/wiki/cb`, response_type: 'code', scope: 'openid', state: 'st' }).toString();
      const { location } = await authorizeThroughPages(pages, url, { consent: 'allow' });
      const params = oauth.validateAuthResponse(as, wiki, location, 'st');
      const response = await oauth.authorizationCodeGrantRequest(
        as,
        wiki,
        oauth.ClientSecretBasic(confidential.secret),
        params,
        `${RP}/wiki/cb`,
        oauth.generateRandomCodeVerifier(),
        {
          [oauth.allowInsecureRequests]: true,
        },
      );
      await expect(oauth.processAuthorizationCodeResponse(as, wiki, response)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('works once; used again it ends what it issued (RFC 6749 §4.1.2)', async () => {
      const flow = await freshCode(publicConfig, `${RP}/cb`, { scope: 'openid offline_access', prompt: 'consent' });
      const tokens = await client.authorizationCodeGrant(publicConfig, flow.location, {
        pkceCodeVerifier: flow.verifier,
        expectedNonce: flow.nonce,
        expectedState: flow.state,
      });
      expect(tokens.refresh_token).toBeTypeOf('string');
      await expect(
        client.authorizationCodeGrant(publicConfig, flow.location, { pkceCodeVerifier: flow.verifier, expectedNonce: flow.nonce, expectedState: flow.state }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(client.refreshTokenGrant(publicConfig, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      const sid = decodeJwt(tokens.access_token).sid as string;
      expect((await server.call('GET', '/auth/revocations')).body.sessions).toContain(sid);
    });

    it('issues tokens to one of two concurrent redemptions, and then ends them too', async () => {
      const flow = await freshCode();
      const body = new URLSearchParams({
        grant_type: 'authorization_code',
        code: flow.location.searchParams.get('code')!,
        redirect_uri: `${RP}/cb`,
        client_id: 'spa',
        code_verifier: flow.verifier,
      });
      const replies = await Promise.all(
        Array.from({ length: 6 }, () =>
          fetch(`${issuer}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }),
        ),
      );
      const statuses = replies.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 400)).toHaveLength(5);
      const bodies = (await Promise.all(replies.map((r) => r.json()))) as { access_token?: string }[];
      const winner = bodies.find((b) => b.access_token !== undefined)!;
      await server.signet.services.oidc.logout.settle();
      expect((await server.call('GET', '/auth/revocations')).body.sessions).toContain(decodeJwt(winner.access_token!).sid);
    });

    it('expires after a minute', async () => {
      const flow = await freshCode();
      server.clock.advance(61);
      await expect(
        client.authorizationCodeGrant(publicConfig, flow.location, { pkceCodeVerifier: flow.verifier, expectedNonce: flow.nonce, expectedState: flow.state }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('is bound to its client and its redirect URI', async () => {
      const flow = await freshCode();
      const other = await client.discovery(new URL(issuer), 'portal', undefined, client.None(), { execute: [client.allowInsecureRequests] });
      await expect(
        client.authorizationCodeGrant(other, new URL(flow.location.href.replace('/cb?', '/portal/cb?')), {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
        }),
      ).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      await expect(
        client.authorizationCodeGrant(publicConfig, new URL(flow.location.href.replace('/cb?', '/cc?')), {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
        }),
      ).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    });

    it('carries the nonce, which the client checks', async () => {
      const flow = await freshCode();
      await expect(
        client.authorizationCodeGrant(publicConfig, flow.location, {
          pkceCodeVerifier: flow.verifier,
          expectedNonce: 'another-nonce',
          expectedState: flow.state,
        }),
      ).rejects.toMatchObject({
        code: 'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
      });
    });
  });

  describe('a confidential client', () => {
    it('authenticates with client_secret_basic, refreshes with offline_access (new ID token, same auth_time, no nonce)', async () => {
      const pages = await signedInBrowser();
      const flow = await startFlow(confidential.config, `${RP}/wiki/cb`, { scope: 'openid email offline_access', prompt: 'consent' });
      const { location } = await authorizeThroughPages(pages, flow.url, { consent: 'allow' });
      const tokens = await client.authorizationCodeGrant(confidential.config, location, {
        pkceCodeVerifier: flow.verifier,
        expectedNonce: flow.nonce,
        expectedState: flow.state,
      });
      const first = tokens.claims()!;
      server.clock.advance(30);
      const refreshed = await client.refreshTokenGrant(confidential.config, tokens.refresh_token!);
      const again = refreshed.claims()!;
      expect(again.sub).toBe(first.sub);
      expect(again.auth_time).toBe(first.auth_time);
      expect(again.nonce).toBeUndefined();
      expect(again.iat).toBeGreaterThan(first.iat);
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
      // The old token again, past the grace window: the grant ends.
      server.clock.advance(30);
      await expect(client.refreshTokenGrant(confidential.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(client.refreshTokenGrant(confidential.config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('is refused without its secret, with a wrong one, or with another method than registered', async () => {
      const token = (headers: Record<string, string>, body: Record<string, string>) =>
        fetch(`${issuer}/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x'.repeat(43), redirect_uri: `${RP}/wiki/cb`, ...body }),
        });
      const basic = (id: string, secret: string) => ({
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      });
      for (const [headers, body] of [
        [{}, { client_id: 'wiki' }],
        [basic('wiki', 'wrong'), {}],
        [{}, { client_id: 'wiki', client_secret: confidential.secret }],
        [{}, { client_id: 'spa', client_secret: 'anything' }],
        [basic('nobody', 'secret'), {}],
      ] as [Record<string, string>, Record<string, string>][]) {
        const reply = await token(headers, body);
        expect(reply.status, JSON.stringify(body)).toBe(401);
        expect(reply.headers.get('www-authenticate')).toMatch(/^Basic/);
        expect(await reply.json()).toMatchObject({ error: 'invalid_client' });
      }
      // The right secret gets as far as the (bogus) code.
      expect(await (await token(basic('wiki', confidential.secret), {})).json()).toMatchObject({ error: 'invalid_grant' });
    });

    it("keeps one client's refresh token from working for another, or at the first-party refresh route", async () => {
      const pages = await signedInBrowser();
      const flow = await startFlow(publicConfig, `${RP}/cb`, { scope: 'openid offline_access', prompt: 'consent' });
      const { location } = await authorizeThroughPages(pages, flow.url, { consent: 'allow' });
      const tokens = await client.authorizationCodeGrant(publicConfig, location, {
        pkceCodeVerifier: flow.verifier,
        expectedNonce: flow.nonce,
        expectedState: flow.state,
      });
      await expect(client.refreshTokenGrant(firstParty, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await server.call('POST', '/auth/token/refresh', { body: { refreshToken: tokens.refresh_token } })).status).toBe(401);
      const form = await fetch(`${issuer}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
      });
      expect(form.status).toBe(400);
      // Still good for its own client.
      expect((await client.refreshTokenGrant(publicConfig, tokens.refresh_token!)).access_token).toBeTypeOf('string');
    });
  });

  describe('UserInfo', () => {
    it('refuses a missing, foreign or first-party token the RFC 6750 way', async () => {
      const none = await fetch(`${issuer}/oauth2/userinfo`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="signet"');
      const firstPartyToken = (await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).body.token as string;
      const foreign = await fetch(`${issuer}/oauth2/userinfo`, { headers: { authorization: `Bearer ${firstPartyToken}` } });
      expect(foreign.status).toBe(401);
      expect(foreign.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
      const garbage = await fetch(`${issuer}/oauth2/userinfo`, { method: 'POST', headers: { authorization: 'Bearer abc.def.ghi' } });
      expect(garbage.status).toBe(401);
    });
  });

  describe('signing out', () => {
    async function wikiSession(scope = 'openid email') {
      const pages = await signedInBrowser();
      const flow = await startFlow(confidential.config, `${RP}/wiki/cb`, { scope, prompt: 'consent' });
      const { location } = await authorizeThroughPages(pages, flow.url, { consent: 'allow' });
      const tokens = await client.authorizationCodeGrant(confidential.config, location, {
        pkceCodeVerifier: flow.verifier,
        expectedNonce: flow.nonce,
        expectedState: flow.state,
      });
      return { pages, tokens };
    }

    it('ends the Signet session at the client’s request, redirects to its registered URI, and tells it over the back channel', async () => {
      const { pages, tokens } = await wikiSession();
      const url = client.buildEndSessionUrl(confidential.config, {
        id_token_hint: tokens.id_token!,
        post_logout_redirect_uri: `${RP}/wiki/bye`,
        state: 'bye-1',
      });
      const reply = await pages.get(url.pathname + url.search);
      expect(reply.status).toBe(302);
      expect(reply.location).toBe(`${RP}/wiki/bye?state=bye-1`);
      // Signed out: the account page sends the browser to sign in.
      expect((await pages.get('/account')).location).toMatch(/^\/sign-in/);

      const logoutToken = await backchannel.tokenFor(tokens.claims()!.sid as string);
      const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(logoutToken, jwks, {
        issuer,
        audience: 'wiki',
        typ: 'logout+jwt',
        requiredClaims: ['iat', 'exp', 'jti', 'events', 'sid'],
      });
      expect(payload.events).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
      expect(payload.nonce).toBeUndefined();
      const idClaims = tokens.claims()!;
      expect(payload.sid).toBe(idClaims.sid);
      expect(payload.sub).toBe(idClaims.sub);
      expect(decodeProtectedHeader(logoutToken).typ).toBe('logout+jwt');
    });

    it('asks the user first without a valid hint, and never redirects to an unregistered URI', async () => {
      const first = await wikiSession();
      const { pages } = first;
      const asked = await pages.get(`/oauth2/logout?client_id=wiki&post_logout_redirect_uri=${encodeURIComponent(`${RP}/wiki/bye`)}&state=s`);
      expect(asked.status).toBe(200);
      expect(asked.text).toContain('action="/oauth2/logout/confirm"');
      expect((await pages.get('/account')).status).toBe(200);
      const confirmed = await pages.post('/oauth2/logout/confirm', { client_id: 'wiki', post_logout_redirect_uri: `${RP}/wiki/bye`, state: 's' });
      expect(confirmed.location).toBe(`${RP}/wiki/bye?state=s`);
      await backchannel.tokenFor(first.tokens.claims()!.sid as string);

      const other = await wikiSession();
      const url = client.buildEndSessionUrl(confidential.config, { id_token_hint: other.tokens.id_token!, post_logout_redirect_uri: `${RP}/wiki/byee` });
      const reply = await other.pages.get(url.pathname + url.search);
      expect(reply.location).toBeNull();
      expect(reply.status).toBe(200);
      await backchannel.tokenFor(other.tokens.claims()!.sid as string);
    });

    it('keeps an offline grant working after the browser session ends', async () => {
      const { pages, tokens } = await wikiSession('openid offline_access');
      await pages.post('/sign-out', {});
      await backchannel.tokenFor(tokens.claims()!.sid as string);
      expect((await client.refreshTokenGrant(confidential.config, tokens.refresh_token!)).access_token).toBeTypeOf('string');
    });

    it('ends the grants when the user removes the app on the account page', async () => {
      const { pages, tokens } = await wikiSession('openid offline_access');
      const accountPage = await pages.get('/account');
      expect(accountPage.text).toContain('Team Wiki');
      const removed = await pages.post('/account/apps/wiki/remove', {});
      expect(removed.location).toBe('/account?notice=app-removed');
      await backchannel.tokenFor(tokens.claims()!.sid as string);
      await expect(client.refreshTokenGrant(confidential.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(client.fetchUserInfo(confidential.config, tokens.access_token, client.skipSubjectCheck)).rejects.toBeDefined();
    });
  });
});
