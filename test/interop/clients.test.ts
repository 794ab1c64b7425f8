import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Independent, strict libraries consume Signet as real clients would, with no
 * special-casing. The issuer is the server's real URL so discovery matches.
 */
describe.each(DIALECTS)('interoperability with widely used clients on %s', (dialect) => {
  let server: TestServer;
  let issuer: string;
  let account: ReturnType<typeof newAccount>;

  beforeAll(async () => {
    // The public URL must be the address clients reach, so start once to learn the port.
    const probe = await startTestServer(dialect);
    const port = new URL(probe.url).port;
    await probe.close();
    issuer = `http://127.0.0.1:${port}`;
    server = await startTestServer(dialect, { port: Number(port), publicUrl: issuer, audience: 'https://api.example.com' });
    account = newAccount();
    expect((await server.call('POST', '/auth/signup', { body: account })).status).toBe(201);
  });
  afterAll(async () => {
    await server.close();
  });

  async function signIn(): Promise<string> {
    const response = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    return response.body.token as string;
  }

  it("verifies with jose's createRemoteJWKSet + jwtVerify, everything pinned", async () => {
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(await signIn(), jwks, {
      issuer,
      audience: 'https://api.example.com',
      algorithms: ['RS256'],
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'sub', 'sid', 'jti', 'client_id'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(payload.email).toBe(account.email);
  });

  it('verifies with jsonwebtoken + jwks-rsa', async () => {
    const token = await signIn();
    const client = jwksRsa({ jwksUri: `${issuer}/.well-known/jwks.json` });
    const key = await client.getSigningKey(decodeProtectedHeader(token).kid);
    const payload = jwt.verify(token, key.getPublicKey(), { algorithms: ['RS256'], issuer, audience: 'https://api.example.com' }) as jwt.JwtPayload;
    expect(payload.sub).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves oauth4webapi the discovery document and both grants', async () => {
    const issuerUrl = new URL(issuer);
    const discovery = await oauth.discoveryRequest(issuerUrl, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true });
    const as = await oauth.processDiscoveryResponse(issuerUrl, discovery);
    expect(as.token_endpoint).toBe(`${issuer}/auth/token`);
    expect(as.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'password']);
    expect(as.id_token_signing_alg_values_supported).toEqual(['RS256']);

    const client: oauth.Client = { client_id: 'first-party-app' };
    const auth = oauth.None();
    const options = { [oauth.allowInsecureRequests]: true };
    const passwordResponse = await oauth.genericTokenEndpointRequest(
      as,
      client,
      auth,
      'password',
      new URLSearchParams({ username: account.email, password: account.password }),
      options,
    );
    const tokens = await oauth.processGenericTokenEndpointResponse(as, client, passwordResponse);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.expires_in).toBe(900);
    expect(tokens.refresh_token).toBeTypeOf('string');

    const refreshResponse = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, options);
    const refreshed = await oauth.processRefreshTokenResponse(as, client, refreshResponse);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    const me = await server.call('GET', '/auth/me', { token: refreshed.access_token });
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe(account.email);

    const wrong = await oauth.genericTokenEndpointRequest(
      as,
      client,
      auth,
      'password',
      new URLSearchParams({ username: account.email, password: 'not the password' }),
      options,
    );
    await expect(oauth.processGenericTokenEndpointResponse(as, client, wrong)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});
