import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import { startGithubStandIn } from '../support/github-stand-in.js';
import { PageClient } from '../support/pages.js';

/**
 * "Sign in with GitHub" through Signet's real client code (openid-client's
 * OAuth 2.0 code flow with PKCE, then GitHub's REST API), against a local
 * stand-in for GitHub's endpoints (test/support/github-stand-in.ts): github.com
 * is unreachable here.
 */
describe.each(DIALECTS)('federation with GitHub (local stand-in) on %s', (dialect) => {
  let github: Awaited<ReturnType<typeof startGithubStandIn>>;
  let server: TestServer;
  let base: string;
  const client = { id: 'Iv1.signet', secret: 'stand-in-secret' };

  beforeAll(async () => {
    github = await startGithubStandIn(client);
    const probe = await startTestServer('sqlite');
    const port = Number(new URL(probe.url).port);
    await probe.close();
    base = `http://127.0.0.1:${port}`;
    server = await startTestServer(dialect, {
      port,
      publicUrl: base,
      audience: base,
      dev: true,
      federationProviders: [
        {
          type: 'github',
          id: 'github',
          clientId: client.id,
          clientSecret: client.secret,
          trustEmail: true,
          authorizeUrl: `${github.base}/login/oauth/authorize`,
          tokenUrl: `${github.base}/login/oauth/access_token`,
          apiUrl: github.base,
        },
      ] as never,
    });
  });
  afterAll(async () => {
    await server?.close();
    await github?.close();
  });

  async function signInWithGithub(browser: PageClient) {
    const start = await browser.get('/auth/federation/github/start');
    expect(start.status).toBe(303);
    const authorize = new URL(start.location!);
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${base}/auth/federation/github/callback`);
    const upstream = await fetch(authorize, { redirect: 'manual' });
    expect(upstream.status).toBe(302);
    const back = new URL(upstream.headers.get('location')!);
    return browser.get(back.pathname + back.search);
  }

  it('creates an account from the primary verified address, and signs the same GitHub user in again', async () => {
    const email = newAccount().email;
    github.signInAs({ id: 1001 + DIALECTS.indexOf(dialect), login: 'octo', name: 'Octo Cat', emails: [{ email, primary: true, verified: true }] });
    const browser = new PageClient(base);
    const back = await signInWithGithub(browser);
    expect(back.status).toBe(303);
    const claims = decodeJwt(browser.cookies.get('signet-access')!);
    expect(claims.amr).toEqual(['fed']);
    const me = await server.call('GET', '/auth/me', { token: browser.cookies.get('signet-access')! });
    expect(me.body.user).toMatchObject({ email, emailVerified: true, name: 'Octo Cat' });
    const again = new PageClient(base);
    expect((await signInWithGithub(again)).status).toBe(303);
    expect(decodeJwt(again.cookies.get('signet-access')!).sub).toBe(claims.sub);
    expect(github.requests).toContain('GET /user/emails');
  });

  it('does not link an unverified primary address to the existing account', async () => {
    const local = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: local })).status).toBe(201);
    github.signInAs({ id: 2001 + DIALECTS.indexOf(dialect), login: 'mallory', name: null, emails: [{ email: local.email, primary: true, verified: false }] });
    const browser = new PageClient(base);
    const back = await signInWithGithub(browser);
    expect(back.status).toBe(409);
    expect(browser.cookies.has('signet-access')).toBe(false);
  });

  it('refuses a code the token endpoint rejects (a wrong PKCE verifier)', async () => {
    github.signInAs({ id: 3001 + DIALECTS.indexOf(dialect), login: 'eve', name: null, emails: [{ email: newAccount().email, primary: true, verified: true }] });
    const browser = new PageClient(base);
    const start = await browser.get('/auth/federation/github/start');
    const authorize = new URL(start.location!);
    // Another challenge than the one Signet sent: the verifier Signet holds no longer matches.
    authorize.searchParams.set('code_challenge', 'A'.repeat(43));
    const upstream = await fetch(authorize, { redirect: 'manual' });
    const back = new URL(upstream.headers.get('location')!);
    expect((await browser.get(back.pathname + back.search)).status).toBe(400);
  });
});
