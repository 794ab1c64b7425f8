import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignetError } from '../../src/errors.js';
import { DIALECTS, eventCount, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { PageClient } from '../support/pages.js';
import { authorizeThroughPages, backchannelReceiver, codeRequest, redeemCode } from '../support/oidc.js';

const RP = 'http://127.0.0.1:9';

/** Registration rules, client-specific settings and the OpenID endpoints' edges, on each database. */
describe.each(DIALECTS)('OpenID Connect clients on %s', (dialect) => {
  let server: TestServer;
  let issuer: string;
  const account = newAccount();

  beforeAll(async () => {
    const probe = await startTestServer(dialect);
    const port = new URL(probe.url).port;
    await probe.close();
    issuer = `http://127.0.0.1:${port}`;
    server = await startTestServer(dialect, { port: Number(port), publicUrl: issuer, audience: issuer, corsOrigins: [] });
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
  });
  afterAll(async () => {
    await server.close();
  });

  const clients = () => server.signet.services.oidc.clients;

  async function rejected(promise: Promise<unknown>): Promise<string[]> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SignetError);
    return ((error as SignetError).details ?? []).map((d) => d.field);
  }

  it('checks every field of a registration and reports them all at once', async () => {
    const fields = await rejected(
      clients().register({
        id: '-bad id-',
        name: '',
        type: 'confidential',
        redirectUris: ['http://app.example.com/cb', 'https://app.example.com/cb#x', 'https://user:pw@app.example.com/cb', 'javascript:alert(1)'],
        scopes: ['email', 'admin'],
        grantTypes: ['password', 'implicit'],
        accessTokenTtl: 999_999,
        refreshTokenTtl: 10,
      }),
    );
    expect(new Set(fields)).toEqual(new Set(['id', 'name', 'redirectUris', 'scopes', 'grantTypes', 'accessTokenTtl', 'refreshTokenTtl']));
  });

  it('allows https, http on loopback and a native app scheme, and nothing needs a secret but a confidential client', async () => {
    const { client, secret } = await clients().register({
      name: 'Native',
      type: 'public',
      redirectUris: ['com.example.app:/oauth', 'http://localhost:8123/cb', 'http://[::1]:8123/cb', 'https://app.example.com/cb'],
    });
    expect(secret).toBeUndefined();
    expect(client.authMethod).toBe('none');
    expect(client.id).toMatch(/^c_[0-9a-f]{16}$/);
    expect(await rejected(clients().register({ id: client.id, name: 'Twin', type: 'public', redirectUris: ['https://a.example/cb'] }))).toEqual(['id']);
  });

  it('shows a secret once, stores only its hash, and rotates it', async () => {
    const { client, secret } = await clients().register({
      id: 'rotating',
      name: 'Rotating',
      type: 'confidential',
      authMethod: 'client_secret_post',
      redirectUris: [`${RP}/cb`],
    });
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await server.signet.services.db.kysely.selectFrom('oauth_clients').selectAll().where('id', '=', client.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(await clients().authenticate({ bodyId: 'rotating', bodySecret: secret })).toMatchObject({ id: 'rotating' });
    const next = await clients().rotateSecret('rotating');
    await expect(clients().authenticate({ bodyId: 'rotating', bodySecret: secret })).rejects.toMatchObject({ error: 'invalid_client' });
    expect(await clients().authenticate({ bodyId: 'rotating', bodySecret: next })).toMatchObject({ id: 'rotating' });
  });

  it('refuses a disabled client everywhere and ends what it held; enabling lets it start again', async () => {
    await clients().register({
      id: 'paused',
      name: 'Paused',
      type: 'public',
      firstParty: true,
      redirectUris: [`${RP}/cb`],
      scopes: ['openid', 'offline_access'],
    });
    const request = codeRequest(issuer, 'paused', `${RP}/cb`, 'openid offline_access');
    const { location } = await authorizeThroughPages(new PageClient(issuer), request.url, { login: { identifier: account.email, password: account.password } });
    const { body } = await redeemCode(issuer, 'paused', `${RP}/cb`, location, request.verifier);
    expect(body.refresh_token).toBeTypeOf('string');
    await clients().setDisabled('paused', true);
    const refused = await fetch(request.url, { redirect: 'manual' });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('location')).toBeNull();
    const refresh = await fetch(`${issuer}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: body.refresh_token, client_id: 'paused' }),
    });
    expect(refresh.status).toBe(401);
    expect((await server.call('GET', '/auth/revocations')).body.sessions).toContain(decodeJwt(body.access_token).sid);
    await clients().setDisabled('paused', false);
    expect((await fetch(request.url, { redirect: 'manual' })).status).toBe(303);
  });

  it('lets a registered first-party client use the password grant only if allowed, and names it in the token', async () => {
    await clients().register({
      id: 'cli-app',
      name: 'CLI',
      type: 'public',
      firstParty: true,
      redirectUris: [`${RP}/cb`],
      grantTypes: ['password', 'refresh_token'],
    });
    await clients().register({ id: 'web-only', name: 'Web', type: 'public', redirectUris: [`${RP}/cb`] });
    const grant = (clientId: string) =>
      fetch(`${issuer}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: account.email, password: account.password, client_id: clientId }),
      });
    const allowed = await grant('cli-app');
    expect(allowed.status).toBe(200);
    const tokens = (await allowed.json()) as { access_token: string; refresh_token: string };
    expect(decodeJwt(tokens.access_token).client_id).toBe('cli-app');
    // A registered client's token without the openid scope: UserInfo says which scope it lacks (RFC 6750 §3.1).
    const info = await fetch(`${issuer}/oauth2/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(info.status).toBe(403);
    expect(info.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    const refused = await grant('web-only');
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: 'unauthorized_client' });
    // An unregistered label is Signet's own first-party client, as before clients were registered.
    const label = await grant('some-label');
    expect(decodeJwt(((await label.json()) as { access_token: string }).access_token).client_id).toBe('signet');
    // The refresh token is the registered client's: it needs the client to say so.
    const bare = await fetch(`${issuer}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    });
    expect(bare.status).toBe(400);
  });

  it("gives a client's access tokens its shorter lifetime, and never a longer one than ACCESS_TOKEN_TTL", async () => {
    await clients().register({ id: 'short', name: 'Short', type: 'public', firstParty: true, redirectUris: [`${RP}/cb`], accessTokenTtl: 120 });
    const request = codeRequest(issuer, 'short', `${RP}/cb`);
    const { location } = await authorizeThroughPages(new PageClient(issuer), request.url, { login: { identifier: account.email, password: account.password } });
    const { status, body } = await redeemCode(issuer, 'short', `${RP}/cb`, location, request.verifier);
    expect(status).toBe(200);
    expect(body.expires_in).toBe(120);
    // UserInfo also takes the token as a form field of a POST (RFC 6750 §2.2).
    const info = await fetch(`${issuer}/oauth2/userinfo`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ access_token: body.access_token }),
    });
    expect(await info.json()).toMatchObject({ sub: decodeJwt(body.access_token).sub });
    const claims = decodeJwt(body.access_token);
    expect(claims.exp! - claims.iat!).toBe(120);
    expect(await rejected(clients().update('short', { accessTokenTtl: 3600 }))).toEqual(['accessTokenTtl']);
  });

  it('answers CORS preflights at the token endpoint and UserInfo for registered web origins only, without cookies', async () => {
    await clients().register({ id: 'spa-cors', name: 'SPA', type: 'public', redirectUris: ['https://spa.example.com/callback'] });
    const preflight = (path: string, origin: string) =>
      fetch(`${issuer}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    for (const path of ['/auth/token', '/oauth2/userinfo']) {
      const ok = await preflight(path, 'https://spa.example.com');
      expect(ok.headers.get('access-control-allow-origin')).toBe('https://spa.example.com');
      expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
      expect((await preflight(path, 'https://evil.example.com')).headers.get('access-control-allow-origin')).toBeNull();
    }
    const discovery = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { origin: 'https://anyone.example' } });
    expect(discovery.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('audits a back-channel delivery the client refuses, without holding the sign-out up', async () => {
    const failing = await backchannelReceiver(500);
    try {
      await clients().register({ id: 'flaky', name: 'Flaky', type: 'public', firstParty: true, redirectUris: [`${RP}/cb`], backchannelLogoutUri: failing.url });
      const pages = new PageClient(issuer);
      const request = codeRequest(issuer, 'flaky', `${RP}/cb`);
      const { location } = await authorizeThroughPages(pages, request.url, { login: { identifier: account.email, password: account.password } });
      expect((await redeemCode(issuer, 'flaky', `${RP}/cb`, location, request.verifier)).status).toBe(200);
      const before = await eventCount(server, 'oidc.backchannel_logout_failed');
      await pages.get('/account');
      expect((await pages.post('/sign-out', {})).status).toBe(303);
      await server.signet.services.oidc.logout.settle();
      expect(failing.tokens).toHaveLength(1);
      expect(await eventCount(server, 'oidc.backchannel_logout_failed')).toBe(before + 1);
    } finally {
      await failing.close();
    }
  });

  it('has no OpenID endpoints with JWT_SECRET (HS256 cannot sign ID tokens for others), and refuses to register clients', async () => {
    const hs = await startTestServer(dialect, { jwtSecret: 'a'.repeat(40) });
    try {
      const meta = (await hs.call('GET', '/.well-known/openid-configuration')).body;
      expect(meta.authorization_endpoint).toBeUndefined();
      expect(meta.response_types_supported).toEqual([]);
      expect((await hs.call('GET', '/oauth2/authorize?client_id=x')).status).toBe(404);
      await expect(hs.signet.services.oidc.clients.register({ name: 'X', type: 'public', redirectUris: ['https://a.example/cb'] })).rejects.toBeInstanceOf(
        SignetError,
      );
    } finally {
      await hs.close();
    }
  });

  it('prunes finished authorization requests and old codes', async () => {
    const { db } = server.signet.services;
    const old = Date.now() - 400 * 86400 * 1000;
    await db.kysely.insertInto('oauth_requests').values({ id: 'old-request', client_id: 'x', params: '{}', created_at: old, expires_at: old }).execute();
    await server.signet.services.retention.run();
    expect(await db.kysely.selectFrom('oauth_requests').select('id').where('id', '=', 'old-request').executeTakeFirst()).toBeUndefined();
  });
});
