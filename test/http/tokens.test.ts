import { createPublicKey, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompactSign, SignJWT, createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { CompactJWSHeaderParameters, JWK } from 'jose';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { DIALECTS, newAccount, startTestServer, testConfig } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Access tokens (contract: "Access tokens", "Bearer routes"). Every forgery is
 * built from a real, live token, so the only thing wrong with it is the thing
 * the test names: a server that skipped that one check would answer 200.
 */

const ISSUER = 'http://signet.test';
const AUDIENCE = 'http://signet.test';
const HS_SECRET = 'test-only-hs256-secret-0123456789-abcdefghijklmnop';
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="signet", error="invalid_token"';

type Claims = Record<string, unknown>;

interface Real {
  token: string;
  header: Record<string, unknown>;
  payload: Claims;
  kid: string;
  jwks: { keys: JWK[] };
  /** A second user's live token: for splicing and swapping claims. */
  other: { token: string; payload: Claims };
}

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const segments = (token: string): [string, string, string] => token.split('.') as [string, string, string];
const bytes = (text: string | Buffer): Uint8Array => new Uint8Array(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);

async function signUp(server: TestServer): Promise<{ token: string; body: any }> {
  const response = await server.call('POST', '/auth/signup', { body: newAccount() });
  expect(response.status).toBe(201);
  return { token: response.body.token, body: response.body };
}

async function me(server: TestServer, token: string) {
  return server.call('GET', '/auth/me', { token });
}

async function expectInvalidToken(server: TestServer, token: string): Promise<void> {
  const response = await me(server, token);
  expect(response.status).toBe(401);
  expect(response.body).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String), code: 'invalid_token' });
  expect(response.body.message).not.toContain(token);
  expect(response.headers.get('www-authenticate')).toBe(INVALID_TOKEN_CHALLENGE);
}

/** Signs any header and payload with jose (no claim defaults, no header checks beyond jose's own). */
async function signWith(
  key: Parameters<CompactSign['sign']>[0],
  header: CompactJWSHeaderParameters,
  payload: Claims,
  crit?: Record<string, boolean>,
): Promise<string> {
  return new CompactSign(bytes(JSON.stringify(payload))).setProtectedHeader(header).sign(key, crit ? { crit } : undefined);
}

const attackerRsa = generateKeyPair('RS256', { extractable: true });
const attackerEc = generateKeyPair('ES256', { extractable: true });

async function attackerRs256(header: Partial<CompactJWSHeaderParameters>, payload: Claims): Promise<string> {
  const { privateKey } = await attackerRsa;
  return signWith(privateKey, { alg: 'RS256', typ: 'at+jwt', ...header }, payload);
}

async function attackerPublicJwk(): Promise<JWK> {
  return { ...(await exportJWK((await attackerRsa).publicKey)), alg: 'RS256', use: 'sig' };
}

/** Server's RSA public key in the encodings an alg-confusion attack would feed to HMAC. */
function publicKeyEncodings(jwk: JWK): [string, Uint8Array][] {
  const key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  return [
    ['its SPKI PEM', bytes(key.export({ type: 'spki', format: 'pem' }))],
    ['its PKCS#1 PEM', bytes(key.export({ type: 'pkcs1', format: 'pem' }))],
    ['its SPKI DER', bytes(key.export({ type: 'spki', format: 'der' }))],
    ['its JWK JSON', bytes(JSON.stringify(jwk))],
    ['its modulus bytes', bytes(Buffer.from(jwk.n!, 'base64url'))],
  ];
}

type Forge = (real: Real) => string | Promise<string>;

const forgeries: [string, Forge][] = [
  ...['none', 'None', 'NONE', 'nOnE'].map((alg): [string, Forge] => [
    `alg "${alg}" with an empty signature`,
    (r) => `${b64({ ...r.header, alg })}.${segments(r.token)[1]}.`,
  ]),
  ['alg "none" keeping the original signature', (r) => `${b64({ ...r.header, alg: 'none' })}.${segments(r.token)[1]}.${segments(r.token)[2]}`],
  ...[0, 1, 2, 3, 4].map((i): [string, Forge] => [
    `HS256 keyed with the server's RSA public key (encoding #${i + 1}: PEM, PKCS#1 PEM, DER, JWK JSON, modulus)`,
    async (r) => {
      const jwk = r.jwks.keys.find((k) => k.kid === r.kid)!;
      const [, secret] = publicKeyEncodings(jwk)[i];
      return signWith(secret, { alg: 'HS256', typ: 'at+jwt', kid: r.kid }, r.payload);
    },
  ]),
  ["RS256 signed by a different RSA key under the server's kid", (r) => attackerRs256({ kid: r.kid }, r.payload)],
  [
    "ES256 signed by another key under the server's kid (an algorithm other than the configured one)",
    async (r) => signWith((await attackerEc).privateKey, { alg: 'ES256', typ: 'at+jwt', kid: r.kid }, r.payload),
  ],
  ['an unknown kid', (r) => attackerRs256({ kid: 'unknown-kid-0000' }, r.payload)],
  [
    'the real token with its kid header changed to an unknown one',
    (r) => `${b64({ ...r.header, kid: 'unknown-kid-0000' })}.${segments(r.token)[1]}.${segments(r.token)[2]}`,
  ],
  ['a header-embedded jwk of the signing (attacker) key', async (r) => attackerRs256({ kid: r.kid, jwk: await attackerPublicJwk() }, r.payload)],
  ["a jku pointing at the attacker's key set", (r) => attackerRs256({ kid: r.kid, jku: 'https://attacker.example/jwks.json' }, r.payload)],
  ["an x5u pointing at the attacker's certificate", (r) => attackerRs256({ kid: r.kid, x5u: 'https://attacker.example/cert.pem' }, r.payload)],
  ["an x5c carrying the attacker's certificate chain", (r) => attackerRs256({ kid: r.kid, x5c: ['MIIBszCCAVmgAwIBAgIUQ2F0dGFja2VyIGNlcnQ='] }, r.payload)],
  [
    "a tampered payload (another user's sub, signature kept)",
    (r) => `${segments(r.token)[0]}.${b64({ ...r.payload, sub: r.other.payload.sub })}.${segments(r.token)[2]}`,
  ],
  [
    "a tampered payload (another user's sub and sid, signature kept)",
    (r) => `${segments(r.token)[0]}.${b64({ ...r.payload, sub: r.other.payload.sub, sid: r.other.payload.sid })}.${segments(r.token)[2]}`,
  ],
  [
    'a tampered payload (email_verified flipped, signature kept)',
    (r) => `${segments(r.token)[0]}.${b64({ ...r.payload, email_verified: true })}.${segments(r.token)[2]}`,
  ],
  [
    'a tampered payload (exp pushed out a year, signature kept)',
    (r) => `${segments(r.token)[0]}.${b64({ ...r.payload, exp: (r.payload.exp as number) + 365 * 86400 })}.${segments(r.token)[2]}`,
  ],
  [
    "another valid token's signature spliced onto this header and payload",
    (r) => `${segments(r.token)[0]}.${segments(r.token)[1]}.${segments(r.other.token)[2]}`,
  ],
  ['a truncated signature', (r) => r.token.slice(0, -10)],
  ['a signature cut by one character', (r) => r.token.slice(0, -1)],
  ['an empty signature', (r) => `${segments(r.token)[0]}.${segments(r.token)[1]}.`],
  ['a token truncated inside the payload', (r) => r.token.slice(0, segments(r.token)[0].length + 1 + 20)],
  ['two segments (header.payload)', (r) => `${segments(r.token)[0]}.${segments(r.token)[1]}`],
  ['four segments (a real token with an extra segment)', (r) => `${r.token}.${segments(r.token)[2]}`],
  ['four segments (an empty fourth segment)', (r) => `${r.token}.`],
  ['a single segment', (r) => segments(r.token)[1]],
  [
    'the standard base64 alphabet (+ and /) instead of base64url',
    (r) =>
      r.token
        .split('.')
        .map((s) => s.replace(/-/g, '+').replace(/_/g, '/'))
        .join('.'),
  ],
  ['base64 "=" padding on the signature', (r) => `${r.token}==`],
  [
    'a "!" inside the payload segment',
    (r) => `${segments(r.token)[0]}.${segments(r.token)[1].slice(0, 10)}!${segments(r.token)[1].slice(10)}.${segments(r.token)[2]}`,
  ],
  ['a non-ASCII character inside the signature', (r) => `${r.token.slice(0, -5)}é${r.token.slice(-4)}`],
  ['a header that is not JSON', (r) => `${b64('not json')}.${segments(r.token)[1]}.${segments(r.token)[2]}`],
  ['plain garbage', () => 'not-a-jwt'],
];

describe.each(DIALECTS)('access tokens (RS256) on %s', (dialect) => {
  let server: TestServer;
  let real: Real;

  beforeAll(async () => {
    server = await startTestServer(dialect);
    const first = await signUp(server);
    const second = await signUp(server);
    const jwks = await server.call('GET', '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    real = {
      token: first.token,
      header: decodeProtectedHeader(first.token),
      payload: decodeJwt(first.token),
      kid: decodeProtectedHeader(first.token).kid!,
      jwks: jwks.body,
      other: { token: second.token, payload: decodeJwt(second.token) },
    };
  });
  afterAll(async () => {
    await server.close();
  });

  it('issues an RFC 9068 token: typ at+jwt, alg RS256, a kid listed in the JWKS', () => {
    expect(real.header).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: expect.any(String) });
    expect(real.jwks.keys.map((k) => k.kid)).toContain(real.kid);
    const jwk = real.jwks.keys.find((k) => k.kid === real.kid)!;
    expect(jwk).toMatchObject({ kty: 'RSA', alg: 'RS256' });
    expect(jwk).not.toHaveProperty('d');
    expect(jwk).not.toHaveProperty('p');
  });

  it('carries iss, aud, sub, client_id, iat, exp = iat + 900, jti, sid, email and email_verified', async () => {
    const account = newAccount();
    const signup = await server.call('POST', '/auth/signup', { body: account });
    const claims = decodeJwt(signup.body.token);
    expect(claims).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: signup.body.user.id,
      client_id: expect.any(String),
      iat: expect.any(Number),
      exp: expect.any(Number),
      jti: expect.any(String),
      sid: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      email: account.email,
      email_verified: false,
    });
    expect(claims.exp).toBe(claims.iat! + 900);
    expect(signup.body.expiresIn).toBe(900);
    const again = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect(decodeJwt(again.body.token).jti).not.toBe(claims.jti);
  });

  it('issues a token that jose verifies against the published JWKS with issuer, audience, typ and algorithm pinned', async () => {
    const { payload, protectedHeader } = await jwtVerify(real.token, createLocalJWKSet(real.jwks), {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['RS256'],
      requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'sid'],
      currentDate: new Date(server.clock.now()),
    });
    expect(protectedHeader.kid).toBe(real.kid);
    expect(payload.sub).toBe(real.payload.sub);
  });

  it('accepts the unmodified real tokens on /auth/me (the control for every forgery below)', async () => {
    const first = await me(server, real.token);
    expect(first.status).toBe(200);
    expect(first.body.user.id).toBe(real.payload.sub);
    const second = await me(server, real.other.token);
    expect(second.status).toBe(200);
    expect(second.body.user.id).toBe(real.other.payload.sub);
  });

  it.each(forgeries)('refuses a token with %s: 401 invalid_token', async (_name, forge) => {
    const forged = await forge(real);
    expect(forged).not.toBe(real.token);
    await expectInvalidToken(server, forged);
  });

  it('refuses a valid token at once after its session is ended by POST /auth/signout', async () => {
    const { token } = await signUp(server);
    expect((await me(server, token)).status).toBe(200);
    const signout = await server.call('POST', '/auth/signout', { token });
    expect(signout.status).toBe(204);
    await expectInvalidToken(server, token);
  });

  it('refuses a valid token whose session was ended by another session of the same user (DELETE /auth/sessions/:id)', async () => {
    const account = newAccount();
    const a = await server.call('POST', '/auth/signup', { body: account });
    const b = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
    expect((await me(server, a.body.token)).status).toBe(200);
    const sid = decodeJwt(a.body.token).sid as string;
    expect((await server.call('DELETE', `/auth/sessions/${sid}`, { token: b.body.token })).status).toBe(204);
    await expectInvalidToken(server, a.body.token);
    expect((await me(server, b.body.token)).status).toBe(200);
  });
});

describe.each(DIALECTS)('access-token expiry on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server.close();
  });

  it('accepts a token up to the 60 s leeway past exp (iat + 900) and refuses it after', async () => {
    const verifiedBefore = await signUp(server);
    const neverSeen = await signUp(server);
    expect((await me(server, verifiedBefore.token)).status).toBe(200);

    server.clock.advance(900 + 50);
    expect((await me(server, verifiedBefore.token)).status).toBe(200);

    server.clock.advance(15); // 965 s after issue: past exp + 60 s
    await expectInvalidToken(server, verifiedBefore.token);
    await expectInvalidToken(server, neverSeen.token);
  });
});

describe.each(DIALECTS)('access-token claim checks in HS256 mode (JWT_SECRET) on %s', (dialect) => {
  let server: TestServer;
  let kid: string;
  let live: Claims;
  const secret = bytes(HS_SECRET);

  /** Complete, valid claims for a live session, fresh jti, times from the server's clock. */
  function claims(): Claims {
    const now = Math.floor(server.clock.now() / 1000);
    return {
      iss: live.iss,
      aud: live.aud,
      sub: live.sub,
      client_id: live.client_id,
      sid: live.sid,
      email: live.email,
      email_verified: live.email_verified,
      iat: now,
      exp: now + 900,
      jti: randomUUID(),
    };
  }

  function without(object: Claims, name: string): Claims {
    const copy = { ...object };
    delete copy[name];
    return copy;
  }

  const header = (): CompactJWSHeaderParameters => ({ alg: 'HS256', typ: 'at+jwt', kid });

  beforeAll(async () => {
    server = await startTestServer(dialect, { jwtSecret: HS_SECRET });
    const { token } = await signUp(server);
    kid = decodeProtectedHeader(token).kid!;
    live = decodeJwt(token);
  });
  afterAll(async () => {
    await server.close();
  });

  it('signs HS256 access tokens (typ at+jwt, a kid) and publishes an empty JWKS', async () => {
    const { token } = await signUp(server);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'at+jwt', kid: expect.any(String) });
    await expect(
      jwtVerify(token, secret, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['HS256'], currentDate: new Date(server.clock.now()) }),
    ).resolves.toBeTruthy();
    const jwks = await server.call('GET', '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    expect(jwks.body).toEqual({ keys: [] });
  });

  it('accepts a token it did not issue when it is signed with the secret and carries complete claims (the control for the checks below)', async () => {
    const token = await new SignJWT(claims()).setProtectedHeader(header()).sign(secret);
    const response = await me(server, token);
    expect(response.status).toBe(200);
    expect(response.body.user.id).toBe(live.sub);
  });

  it('accepts nbf up to 60 s in the future and exp up to 60 s in the past (leeway)', async () => {
    const now = Math.floor(server.clock.now() / 1000);
    const earlyNbf = await signWith(secret, header(), { ...claims(), nbf: now + 30 });
    expect((await me(server, earlyNbf)).status).toBe(200);
    const lateExp = await signWith(secret, header(), { ...claims(), iat: now - 930, exp: now - 30 });
    expect((await me(server, lateExp)).status).toBe(200);
  });

  const cases: [string, () => Promise<string>][] = [
    ['a wrong iss', () => signWith(secret, header(), { ...claims(), iss: 'http://evil.test' })],
    ['no iss', () => signWith(secret, header(), without(claims(), 'iss'))],
    ['an iss that differs by a trailing slash', () => signWith(secret, header(), { ...claims(), iss: `${ISSUER}/` })],
    ['a wrong aud', () => signWith(secret, header(), { ...claims(), aud: 'http://other.test' })],
    ['no aud', () => signWith(secret, header(), without(claims(), 'aud'))],
    ["an aud list without Signet's audience", () => signWith(secret, header(), { ...claims(), aud: ['http://other.test', 'http://third.test'] })],
    ['no exp', () => signWith(secret, header(), without(claims(), 'exp'))],
    ['a non-numeric exp', () => signWith(secret, header(), { ...claims(), exp: String((claims().exp as number) + 0) })],
    ['no iat', () => signWith(secret, header(), without(claims(), 'iat'))],
    ['no sub', () => signWith(secret, header(), without(claims(), 'sub'))],
    ['no sid', () => signWith(secret, header(), without(claims(), 'sid'))],
    [
      'exp more than 60 s in the past',
      () => {
        const now = Math.floor(server.clock.now() / 1000);
        return signWith(secret, header(), { ...claims(), iat: now - 1000, exp: now - 65 });
      },
    ],
    ['nbf more than 60 s in the future', () => signWith(secret, header(), { ...claims(), nbf: Math.floor(server.clock.now() / 1000) + 65 })],
    ['typ "JWT"', () => signWith(secret, { ...header(), typ: 'JWT' }, claims())],
    ['no typ', () => signWith(secret, { alg: 'HS256', kid }, claims())],
    ['a crit header', () => signWith(secret, { ...header(), crit: ['urn:signet:test'], 'urn:signet:test': true }, claims(), { 'urn:signet:test': true })],
    ['a jwk header', async () => signWith(secret, { ...header(), jwk: await attackerPublicJwk() }, claims())],
    [
      'a jwk header holding the secret as an oct key',
      () =>
        signWith(
          secret,
          { ...header(), jwk: { kty: 'oct', k: Buffer.from(HS_SECRET).toString('base64url') } } as unknown as CompactJWSHeaderParameters,
          claims(),
        ),
    ],
    ['a jku header', () => signWith(secret, { ...header(), jku: 'https://attacker.example/jwks.json' }, claims())],
    ['an x5u header', () => signWith(secret, { ...header(), x5u: 'https://attacker.example/cert.pem' }, claims())],
    ['an x5c header', () => signWith(secret, { ...header(), x5c: ['MIIBszCCAVmgAwIBAgIUQ2F0dGFja2VyIGNlcnQ='] }, claims())],
    ['an unknown kid (signed with the right secret)', () => signWith(secret, { ...header(), kid: 'hs256-unknownkid' }, claims())],
    ['alg HS384 (signed with the right secret)', () => signWith(secret, { ...header(), alg: 'HS384' }, claims())],
    ['alg HS512 (signed with the right secret)', () => signWith(secret, { ...header(), alg: 'HS512' }, claims())],
    ['alg "none" with an empty signature', () => Promise.resolve(`${b64({ ...header(), alg: 'none' })}.${b64(claims())}.`)],
    ['a signature made with another secret', () => signWith(bytes(`${HS_SECRET}-other`), header(), claims())],
  ];

  it.each(cases)('refuses a correctly signed token with %s: 401 invalid_token', async (_name, build) => {
    await expectInvalidToken(server, await build());
  });
});

describe('JWT_SECRET', () => {
  it('refuses to load a JWT_SECRET shorter than 32 bytes, naming the variable', () => {
    for (const value of ['short', 'x'.repeat(31), 'é'.repeat(15) + 'x' /* 16 characters, 31 bytes */]) {
      expect(() => loadConfig({ JWT_SECRET: value })).toThrow(ConfigError);
      expect(() => loadConfig({ JWT_SECRET: value })).toThrow(/JWT_SECRET/);
    }
  });

  it('switches to HS256 with a JWT_SECRET of 32 bytes or more', () => {
    expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).jwtAlgorithm).toBe('HS256');
    expect(loadConfig({ JWT_SECRET: 'é'.repeat(16) }).jwtAlgorithm).toBe('HS256');
  });

  it('refuses to start a server when the environment holds a JWT_SECRET shorter than 32 bytes', async () => {
    const saved = process.env.JWT_SECRET;
    process.env.JWT_SECRET = 'x'.repeat(31);
    try {
      await expect(startServer({ config: testConfig(), sqlitePath: ':memory:' })).rejects.toThrow(/JWT_SECRET/);
    } finally {
      if (saved === undefined) delete process.env.JWT_SECRET;
      else process.env.JWT_SECRET = saved;
    }
  });

  it('refuses to start a server given a JWT_SECRET shorter than 32 bytes in code', async () => {
    const start = startServer({ config: { ...testConfig(), jwtSecret: 'x'.repeat(31) }, sqlitePath: ':memory:' });
    let running: Awaited<typeof start> | undefined;
    try {
      running = await start;
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/JWT_SECRET/);
      return;
    } finally {
      await running?.close();
    }
    expect.fail('the server started with a 31-byte JWT_SECRET');
  });
});
