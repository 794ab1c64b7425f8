import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { SignJWT, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from '../../src/verify/index.js';
import type { AccessTokenClaims, Verifier } from '../../src/verify/index.js';
import { newAccount, startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

const AUDIENCE = 'https://api.example.com';

/** Counts the JWKS fetches a verifier makes. */
function countingFetch() {
  const counter = { jwks: 0, revocations: 0 };
  const wrapped = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.endsWith('/jwks.json')) counter.jwks++;
    if (new URL(url).pathname.endsWith('/revocations')) counter.revocations++;
    return fetch(input, init);
  }) as typeof fetch;
  return { counter, fetch: wrapped };
}

describe('signet/verify against a running Signet', () => {
  let server: TestServer;
  let issuer: string;
  let account: ReturnType<typeof newAccount>;

  beforeAll(async () => {
    const probe = await startTestServer('sqlite');
    const port = Number(new URL(probe.url).port);
    await probe.close();
    issuer = `http://127.0.0.1:${port}`;
    server = await startTestServer('sqlite', { port, publicUrl: issuer, audience: AUDIENCE, keyRotationOverlap: 0 });
    account = newAccount();
    await server.call('POST', '/auth/signup', { body: account });
  });
  afterAll(async () => {
    await server.close();
  });

  const signIn = async () =>
    (await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).body as { token: string; refreshToken: string };

  it('refuses to be constructed without issuer, audience and an algorithm allow-list', () => {
    expect(() => createVerifier({} as never)).toThrow(TypeError);
    expect(() => createVerifier({ issuer, algorithms: ['RS256'] } as never)).toThrow(/audience/);
    expect(() => createVerifier({ issuer, audience: AUDIENCE } as never)).toThrow(/algorithms/);
    expect(() => createVerifier({ issuer, audience: AUDIENCE, algorithms: [] })).toThrow(/algorithms/);
    expect(() => createVerifier({ issuer, audience: AUDIENCE, algorithms: ['none' as never] })).toThrow(/unsupported/);
    expect(() => createVerifier({ issuer, audience: AUDIENCE, algorithms: ['HS256'] })).toThrow(/secret/);
  });

  it('verifies a Signet token and pins issuer, audience and algorithm', async () => {
    const { token } = await signIn();
    const verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'] });
    const claims = await verifier.verify(token);
    expect(claims.iss).toBe(issuer);
    expect(claims.sid).toBeTypeOf('string');
    await expect(createVerifier({ issuer, audience: 'https://other.example.com', algorithms: ['RS256'] }).verify(token)).rejects.toMatchObject({
      code: 'invalid_token',
      reason: 'audience',
    });
    await expect(
      createVerifier({ issuer: 'https://evil.example.com', audience: AUDIENCE, algorithms: ['RS256'], jwksUri: `${issuer}/.well-known/jwks.json` }).verify(
        token,
      ),
    ).rejects.toMatchObject({ reason: 'issuer' });
    await expect(createVerifier({ issuer, audience: AUDIENCE, algorithms: ['ES256'] }).verify(token)).rejects.toMatchObject({
      reason: 'algorithm not allowed',
    });
  });

  it('still checks expiry on a cache hit', async () => {
    const { token } = await signIn();
    let now = Date.now();
    const verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'], now: () => now });
    await verifier.verify(token);
    await verifier.verify(token);
    now += (900 + 31) * 1000;
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'expired' });
  });

  it('refetches the JWKS once for an unknown kid, not once per request', async () => {
    const { counter, fetch } = countingFetch();
    const verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'], fetch });
    await verifier.verify((await signIn()).token);
    expect(counter.jwks).toBe(1);
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT({ sid: 'x' })
      .setProtectedHeader({ alg: 'RS256', kid: 'unknown-kid', typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(AUDIENCE)
      .setSubject('u')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => verifier.verify(forged)));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    // Within the cooldown after the first fetch: no refetch at all.
    expect(counter.jwks).toBe(1);
  });

  it('picks up a rotated key through one refetch when the cooldown allows it', async () => {
    const { counter, fetch } = countingFetch();
    const verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'], fetch, jwksCooldownMs: 0 });
    const before = await signIn();
    await verifier.verify(before.token);
    await server.signet.services.keyring.rotate();
    const after = await signIn();
    expect(JSON.parse(Buffer.from(after.token.split('.')[0], 'base64url').toString()).kid).not.toBe(
      JSON.parse(Buffer.from(before.token.split('.')[0], 'base64url').toString()).kid,
    );
    await expect(verifier.verify(after.token)).resolves.toMatchObject({ iss: issuer });
    await expect(verifier.verify(before.token)).resolves.toMatchObject({ iss: issuer });
    expect(counter.jwks).toBe(2);
  });

  it('refuses tokens of ended sessions once the revocation list is refreshed (opt-in)', async () => {
    const { counter, fetch } = countingFetch();
    const verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'], fetch, revocation: { intervalMs: 60_000 } });
    const { token } = await signIn();
    await expect(verifier.verify(token)).resolves.toBeDefined();
    expect((await server.call('POST', '/auth/signout', { token })).status).toBe(204);
    // Until the next poll the token is still accepted: the documented bounded delay.
    await expect(verifier.verify(token)).resolves.toBeDefined();
    await verifier.refresh();
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'session ended' });
    expect(counter.revocations).toBe(2);
    verifier.close();
  });

  describe('middleware', () => {
    let verifier: Verifier;
    beforeAll(() => {
      verifier = createVerifier({ issuer, audience: AUDIENCE, algorithms: ['RS256'] });
    });

    async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; close: () => Promise<void> }> {
      const http = createServer(handler);
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, close: () => new Promise((resolve) => http.close(() => resolve())) };
    }

    async function expectProtects(url: string): Promise<void> {
      const missing = await fetch(`${url}/private`);
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="signet"');
      expect(await missing.json()).toMatchObject({ statusCode: 401, code: 'missing_token' });
      const invalid = await fetch(`${url}/private`, { headers: { authorization: 'Bearer not.a.token' } });
      expect(invalid.status).toBe(401);
      expect(invalid.headers.get('www-authenticate')).toBe('Bearer realm="signet", error="invalid_token"');
      const { token } = await signIn();
      const ok = await fetch(`${url}/private`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ sub: expect.any(String) });
    }

    it('protects a node:http server', async () => {
      const guard = verifier.node();
      const app = await listen((req, res) => guard(req, res, () => res.end(JSON.stringify({ sub: (req as { auth?: AccessTokenClaims }).auth?.sub }))));
      await expectProtects(app.url);
      await app.close();
    });

    it('protects an Express app', async () => {
      const app = express();
      app.get('/private', verifier.express() as express.RequestHandler, (req, res) => {
        res.json({ sub: (req as unknown as { auth: AccessTokenClaims }).auth.sub });
      });
      const running = await listen(app);
      await expectProtects(running.url);
      await running.close();
    });

    it('protects a Fastify app', async () => {
      const app = Fastify();
      app.get('/private', { preHandler: verifier.fastify() }, (request) => ({ sub: (request as unknown as { auth: AccessTokenClaims }).auth.sub }));
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      await expectProtects(address);
      await app.close();
    });

    it('protects a Hono app', async () => {
      const app = new Hono<{ Variables: { auth: AccessTokenClaims } }>();
      app.use('/private', verifier.hono());
      app.get('/private', (c) => c.json({ sub: c.get('auth').sub }));
      const base = 'http://hono.test';
      const missing = await app.request(`${base}/private`);
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="signet"');
      const { token } = await signIn();
      const ok = await app.request(`${base}/private`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
    });
  });
});

describe('signet/verify with an HS256 deployment', () => {
  const secret = 'a-shared-secret-of-at-least-32-bytes!!';
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('sqlite', { jwtSecret: secret, jwtAlgorithm: 'HS256' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('verifies with the shared secret and refuses another secret', async () => {
    const account = newAccount();
    const { token } = (await server.call('POST', '/auth/signup', { body: account })).body;
    const claims = await createVerifier({ issuer: 'http://signet.test', audience: 'http://signet.test', algorithms: ['HS256'], secret }).verify(token);
    expect(claims.email).toBe(account.email);
    await expect(
      createVerifier({ issuer: 'http://signet.test', audience: 'http://signet.test', algorithms: ['HS256'], secret: 'x'.repeat(40) }).verify(token),
    ).rejects.toMatchObject({ reason: 'signature' });
    expect((await server.call('GET', '/.well-known/jwks.json')).body).toEqual({ keys: [] });
  });

  it('an RS256 verifier refuses an HS256 token before fetching any key', async () => {
    const { counter, fetch } = countingFetch();
    const token = (await server.call('POST', '/auth/signup', { body: newAccount() })).body.token;
    const verifier = createVerifier({ issuer: 'http://signet.test', audience: 'http://signet.test', algorithms: ['RS256'], fetch });
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'algorithm not allowed' });
    expect(counter.jwks).toBe(0);
  });
});
