// A small web app that signs its users in with Signet over OpenID Connect,
// through openid-client: the authorization code flow with PKCE, a nonce and a
// state, the ID token's claims, UserInfo, RP-initiated logout and back-channel
// logout. Sessions live in memory: this is an example, not a session store.
import { randomBytes } from 'node:crypto';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as client from 'openid-client';

/**
 * @param {{ issuer: string, clientId: string, clientSecret: string, appUrl: string }} options
 *   issuer: Signet's PUBLIC_URL; appUrl: where this app is reached (its redirect URI is appUrl + '/callback').
 */
export async function createExampleApp({ issuer, clientId, clientSecret, appUrl }) {
  const issuerUrl = new URL(issuer);
  // Plain http only for a Signet on this machine (development); https everywhere else.
  const execute = issuerUrl.protocol === 'http:' ? [client.allowInsecureRequests] : [];
  const config = await client.discovery(issuerUrl, clientId, undefined, client.ClientSecretBasic(clientSecret), { execute });
  const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
  const redirectUri = `${appUrl}/callback`;

  /** Signed-in sessions by cookie, and sign-ins under way by their own cookie. */
  const sessions = new Map();
  const pending = new Map();
  /** What the back channel reported, for the curious (and the tests). */
  const loggedOut = [];

  const app = express();
  app.use(express.urlencoded({ extended: false }));

  app.get('/', (req, res) => {
    const session = sessions.get(cookie(req, 'app-session'));
    res.type('html').send(
      layout(
        session
          ? `<p>Signed in as <strong id="email">${escape(session.claims.email ?? session.claims.sub)}</strong>.</p>
<p><a href="/profile">What Signet tells this app about you</a></p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>`
          : `<p>You are not signed in.</p><p><a id="sign-in" href="/login">Sign in with Signet</a></p>`,
      ),
    );
  });

  app.get('/login', async (req, res) => {
    const key = randomBytes(16).toString('base64url');
    const verifier = client.randomPKCECodeVerifier();
    const flow = { verifier, state: client.randomState(), nonce: client.randomNonce() };
    pending.set(key, flow);
    setTimeout(() => pending.delete(key), 10 * 60 * 1000).unref();
    res.cookie('app-auth', key, { httpOnly: true, sameSite: 'lax', maxAge: 10 * 60 * 1000 });
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    res.redirect(url.href);
  });

  app.get('/callback', async (req, res) => {
    const key = cookie(req, 'app-auth');
    const flow = pending.get(key);
    pending.delete(key);
    res.clearCookie('app-auth');
    if (!flow) return void res.status(400).type('html').send(layout('<p>That sign-in expired. <a href="/login">Try again</a>.</p>'));
    try {
      const tokens = await client.authorizationCodeGrant(config, new URL(req.originalUrl, appUrl), {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
      });
      const id = randomBytes(24).toString('base64url');
      sessions.set(id, { claims: tokens.claims(), idToken: tokens.id_token, accessToken: tokens.access_token });
      res.cookie('app-session', id, { httpOnly: true, sameSite: 'lax' });
      res.redirect('/');
    } catch (error) {
      // access_denied (the user said no), login_required, …: say so without a stack trace.
      res
        .status(400)
        .type('html')
        .send(layout(`<p>Signing in did not work: ${escape(error.error ?? error.code ?? 'error')}.</p><p><a href="/login">Try again</a></p>`));
    }
  });

  app.get('/profile', async (req, res) => {
    const session = sessions.get(cookie(req, 'app-session'));
    if (!session) return void res.redirect('/');
    const info = await client.fetchUserInfo(config, session.accessToken, session.claims.sub);
    res.type('html').send(layout(`<pre id="userinfo">${escape(JSON.stringify(info, null, 2))}</pre><p><a href="/">Back</a></p>`));
  });

  // RP-initiated logout: forget the local session, then let Signet end its own and come back here.
  app.post('/logout', (req, res) => {
    const id = cookie(req, 'app-session');
    const session = sessions.get(id);
    sessions.delete(id);
    res.clearCookie('app-session');
    if (!session) return void res.redirect('/');
    res.redirect(client.buildEndSessionUrl(config, { id_token_hint: session.idToken, post_logout_redirect_uri: `${appUrl}/` }).href);
  });

  // Back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.6): Signet says a sign-in ended elsewhere.
  app.post('/backchannel-logout', async (req, res) => {
    try {
      const { payload } = await jwtVerify(String(req.body.logout_token ?? ''), jwks, {
        issuer: config.serverMetadata().issuer,
        audience: clientId,
        typ: 'logout+jwt',
        requiredClaims: ['iat', 'exp', 'jti', 'events', 'sid'],
      });
      if (!payload.events?.['http://schemas.openid.net/event/backchannel-logout'] || 'nonce' in payload) throw new Error('not a logout token');
      for (const [id, session] of sessions) if (session.claims.sid === payload.sid) sessions.delete(id);
      loggedOut.push({ sid: payload.sid, sub: payload.sub });
      res.status(200).set('cache-control', 'no-store').end();
    } catch {
      res.status(400).set('cache-control', 'no-store').end();
    }
  });

  return { app, loggedOut, sessions };
}

function cookie(req, name) {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]);
}

function layout(body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Example app</title></head><body><h1>Example app</h1>${body}</body></html>`;
}
