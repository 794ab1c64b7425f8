import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret, TOTP } from 'otpauth';
import { DIALECTS, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';

/**
 * TOTP two-factor authentication (issue 5 §4; contract: the /auth/mfa/* rows and
 * the paragraph under the routes table). Codes are always computed at the
 * SERVER's clock, and time moves only through server.clock.
 *
 * One thing to know when reading these tests: a TOTP step, once accepted (by
 * enable or by verify), is never accepted again for that user. So every test
 * that needs a fresh code moves the clock on by one 30-second step first.
 */

const STEP = 30;
const MFA_TOKEN_TTL = 5 * 60;

interface MfaUser {
  email: string;
  password: string;
  userId: string;
  /** A bearer token from sign-up (MFA does not end existing sessions). */
  token: string;
  secret: string;
  recoveryCodes: string[];
}

function totp(secret: string): TOTP {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: STEP });
}

/** The code of the current step at the server's clock (or `steps` steps away). */
function codeAt(server: TestServer, secret: string, steps = 0): string {
  return totp(secret).generate({ timestamp: server.clock.now() + steps * STEP * 1000 });
}

/** A well-formed six-digit code that is not valid in any step the server might accept now. */
function wrongCode(server: TestServer, secret: string): string {
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => codeAt(server, secret, d)));
  let n = Number(codeAt(server, secret));
  let candidate: string;
  do {
    n = (n + 7919) % 1_000_000;
    candidate = String(n).padStart(6, '0');
  } while (valid.has(candidate));
  return candidate;
}

function expectError(response: { status: number; body: any }, status: number, code: string): void {
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.body).toEqual(expect.objectContaining({ statusCode: status, code, error: expect.any(String), message: expect.any(String) }));
}

function expectSessionResponse(body: any, email: string): void {
  expect(body).toEqual({
    token: expect.any(String),
    tokenType: 'Bearer',
    expiresIn: expect.any(Number),
    refreshToken: expect.any(String),
    refreshExpiresIn: expect.any(Number),
    user: expect.objectContaining({ email, mfaEnabled: true }),
  });
  expect(body.token.split('.')).toHaveLength(3);
}

async function signUp(server: TestServer): Promise<{ email: string; password: string; userId: string; token: string }> {
  const account = newAccount();
  const response = await server.call('POST', '/auth/signup', { body: account });
  expect(response.status).toBe(201);
  return { email: account.email, password: account.password, userId: response.body.user.id, token: response.body.token };
}

/** Signs up, sets up and enables TOTP, then moves the clock past the step used to enable it. */
async function mfaUser(server: TestServer): Promise<MfaUser> {
  const user = await signUp(server);
  const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
  expect(setup.status).toBe(200);
  const enable = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: codeAt(server, setup.body.secret) } });
  expect(enable.status).toBe(200);
  server.clock.advance(STEP);
  return { ...user, secret: setup.body.secret, recoveryCodes: enable.body.recoveryCodes };
}

async function signIn(server: TestServer, user: { email: string; password: string }) {
  return server.call('POST', '/auth/signin', { body: { email: user.email, password: user.password } });
}

/** Signs in an MFA user and returns the mfaToken of the challenge. */
async function challenge(server: TestServer, user: { email: string; password: string }): Promise<string> {
  const response = await signIn(server, user);
  expect(response.status).toBe(200);
  expect(response.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['totp'] });
  return response.body.mfaToken;
}

async function verify(server: TestServer, body: Record<string, unknown>) {
  return server.call('POST', '/auth/mfa/verify', { body });
}

async function me(server: TestServer, token: string) {
  return server.call('GET', '/auth/me', { token });
}

describe.each(DIALECTS)('TOTP two-factor authentication on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect);
  });
  afterAll(async () => {
    await server?.close();
  });

  describe('setup and enable', () => {
    it('setup needs a bearer token', async () => {
      const response = await server.call('POST', '/auth/mfa/totp/setup', { body: { password: 'whatever-password' } });
      expectError(response, 401, 'missing_token');
    });

    it('setup re-authenticates: a wrong password is 401 invalid_credentials and no secret is handed out', async () => {
      const user = await signUp(server);
      const response = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: `${user.password}x` } });
      expectError(response, 401, 'invalid_credentials');
      expect(response.body.secret).toBeUndefined();
      // No pending secret either: enabling has nothing to confirm.
      const enable = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: '123456' } });
      expectError(enable, 401, 'invalid_code');
    });

    it('setup returns a base32 secret, an otpauth:// URI with issuer and a QR code as SVG', async () => {
      const user = await signUp(server);
      const response = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.body).toEqual({ secret: expect.any(String), otpauthUri: expect.any(String), qrSvg: expect.any(String) });
      const { secret, otpauthUri, qrSvg } = response.body;
      expect(secret).toMatch(/^[A-Z2-7]+=*$/);
      // RFC 4226 §4: at least 128 bits of shared secret.
      expect(Secret.fromBase32(secret).bytes.length).toBeGreaterThanOrEqual(16);
      expect(otpauthUri).toMatch(/^otpauth:\/\/totp\//);
      const uri = new URL(otpauthUri);
      expect(uri.searchParams.get('secret')).toBe(secret);
      expect(uri.searchParams.get('issuer')).toBeTruthy();
      expect(otpauthUri).toContain('issuer=');
      expect(decodeURIComponent(uri.pathname)).toContain(user.email);
      for (const [param, value] of [
        ['algorithm', 'SHA1'],
        ['digits', '6'],
        ['period', '30'],
      ]) {
        const given = uri.searchParams.get(param);
        if (given !== null) expect(given).toBe(value);
      }
      expect(qrSvg.trimStart()).toMatch(/^<svg[\s>]/);
      expect(qrSvg.trimEnd()).toMatch(/<\/svg>$/);
      // Setup alone does not turn two-factor on.
      const profile = await me(server, user.token);
      expect(profile.body.user.mfaEnabled).toBe(false);
      const signin = await signIn(server, user);
      expect(signin.status).toBe(200);
      expect(signin.body.token).toEqual(expect.any(String));
    });

    it('enable refuses wrong (401 invalid_code) and malformed (400 validation_failed) codes, accepts the right one and returns ten distinct recovery codes', async () => {
      const user = await signUp(server);
      const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
      expect(setup.status).toBe(200);
      const secret: string = setup.body.secret;

      const wrong = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: wrongCode(server, secret) } });
      expectError(wrong, 401, 'invalid_code');

      for (const code of ['12345', 'abcdef', '1234567', '12 345', '', 123456]) {
        const malformed = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code } });
        expectError(malformed, 400, 'validation_failed');
        expect(malformed.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'code' })]));
      }
      const missing = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: {} });
      expectError(missing, 400, 'validation_failed');

      expect((await me(server, user.token)).body.user.mfaEnabled).toBe(false);

      const enable = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: codeAt(server, secret) } });
      expect(enable.status).toBe(200);
      expect(enable.headers.get('cache-control')).toBe('no-store');
      expect(enable.body).toEqual({ recoveryCodes: expect.any(Array) });
      const codes: string[] = enable.body.recoveryCodes;
      expect(codes).toHaveLength(10);
      for (const code of codes) {
        expect(typeof code).toBe('string');
        expect(code.length).toBeGreaterThanOrEqual(8);
      }
      expect(new Set(codes).size).toBe(10);

      const profile = await me(server, user.token);
      expect(profile.status).toBe(200);
      expect(profile.body.user.mfaEnabled).toBe(true);

      const again = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
      expectError(again, 409, 'mfa_already_enabled');
      expect(again.body.secret).toBeUndefined();

      // Enabling twice is refused too: nothing is pending any more.
      server.clock.advance(STEP);
      const twice = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: codeAt(server, secret) } });
      expectError(twice, 401, 'invalid_code');
    });
  });

  describe('sign-in with two-factor', () => {
    it('sign-in answers {mfaRequired, mfaToken, methods} with no token; verify issues a working session; the mfaToken is single-use', async () => {
      const user = await mfaUser(server);
      const signin = await signIn(server, user);
      expect(signin.status).toBe(200);
      expect(signin.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['totp'] });
      expect(signin.body.token).toBeUndefined();
      expect(signin.body.refreshToken).toBeUndefined();
      expect(signin.headers.getSetCookie().filter((c) => /signet-(access|refresh)=/.test(c))).toEqual([]);
      const mfaToken: string = signin.body.mfaToken;

      const ok = await verify(server, { mfaToken, code: codeAt(server, user.secret) });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('cache-control')).toBe('no-store');
      expectSessionResponse(ok.body, user.email);
      const profile = await me(server, ok.body.token);
      expect(profile.status).toBe(200);
      expect(profile.body.user).toEqual(expect.objectContaining({ id: user.userId, mfaEnabled: true }));

      // Single use: the same mfaToken, even with a brand-new valid code.
      server.clock.advance(STEP);
      const reused = await verify(server, { mfaToken, code: codeAt(server, user.secret) });
      expectError(reused, 401, 'invalid_mfa_token');
      expect(reused.body.token).toBeUndefined();
    });

    it('a TOTP code cannot be replayed on a new mfaToken within its window; the next step’s code works', async () => {
      const user = await mfaUser(server);
      const code = codeAt(server, user.secret);
      const first = await verify(server, { mfaToken: await challenge(server, user), code });
      expect(first.status).toBe(200);

      const second = await challenge(server, user);
      const replay = await verify(server, { mfaToken: second, code });
      expectError(replay, 401, 'invalid_code');
      expect(replay.body.token).toBeUndefined();

      server.clock.advance(STEP);
      const next = codeAt(server, user.secret);
      expect(next).not.toBe(code);
      const ok = await verify(server, { mfaToken: second, code: next });
      expect(ok.status).toBe(200);
      expectSessionResponse(ok.body, user.email);
    });

    it('an mfaToken lives 5 minutes: still good after 4 min 59 s, dead after 5 min 1 s', async () => {
      const user = await mfaUser(server);
      const young = await challenge(server, user);
      server.clock.advance(MFA_TOKEN_TTL - 1);
      const ok = await verify(server, { mfaToken: young, code: codeAt(server, user.secret) });
      expect(ok.status).toBe(200);

      const old = await challenge(server, user);
      server.clock.advance(MFA_TOKEN_TTL + 1);
      const expired = await verify(server, { mfaToken: old, code: codeAt(server, user.secret) });
      expectError(expired, 401, 'invalid_mfa_token');
      expect(expired.body.token).toBeUndefined();
    });

    it('an mfaToken dies after 5 wrong codes (then even the right code is 401 invalid_mfa_token); 4 wrong codes do not kill it', async () => {
      const user = await mfaUser(server);
      const mfaToken = await challenge(server, user);
      for (let i = 0; i < 5; i++) {
        const wrong = await verify(server, { mfaToken, code: wrongCode(server, user.secret) });
        expectError(wrong, 401, 'invalid_code');
      }
      const right = codeAt(server, user.secret);
      const dead = await verify(server, { mfaToken, code: right });
      expectError(dead, 401, 'invalid_mfa_token');
      expect(dead.body.token).toBeUndefined();
      // The refusal was the token's death, not the code: a new challenge takes the same code.
      const fresh = await verify(server, { mfaToken: await challenge(server, user), code: right });
      expect(fresh.status).toBe(200);

      server.clock.advance(STEP);
      const survivor = await challenge(server, user);
      for (let i = 0; i < 4; i++) {
        expectError(await verify(server, { mfaToken: survivor, code: wrongCode(server, user.secret) }), 401, 'invalid_code');
      }
      const ok = await verify(server, { mfaToken: survivor, code: codeAt(server, user.secret) });
      expect(ok.status).toBe(200);
      expectSessionResponse(ok.body, user.email);
    });

    it('an unknown or malformed mfaToken is 401 invalid_mfa_token', async () => {
      const user = await mfaUser(server);
      const code = codeAt(server, user.secret);
      expectError(await verify(server, { mfaToken: randomBytes(32).toString('base64url'), code }), 401, 'invalid_mfa_token');
      expectError(await verify(server, { mfaToken: 'not-a-token', code }), 401, 'invalid_mfa_token');
      // The code was not spent by those refusals.
      expect((await verify(server, { mfaToken: await challenge(server, user), code })).status).toBe(200);
    });

    it('a recovery code works once; a second use is 401 invalid_code', async () => {
      const user = await mfaUser(server);
      const [first, second] = user.recoveryCodes;
      const ok = await verify(server, { mfaToken: await challenge(server, user), recoveryCode: first });
      expect(ok.status).toBe(200);
      expectSessionResponse(ok.body, user.email);
      expect((await me(server, ok.body.token)).status).toBe(200);

      const mfaToken = await challenge(server, user);
      const reused = await verify(server, { mfaToken, recoveryCode: first });
      expectError(reused, 401, 'invalid_code');
      expect(reused.body.token).toBeUndefined();
      expectError(await verify(server, { mfaToken, recoveryCode: 'aaaaa-bbbbb-ccccc-ddddd-eeeee' }), 401, 'invalid_code');

      // Another, unused code still works (on the same challenge, after those failures).
      const other = await verify(server, { mfaToken, recoveryCode: second });
      expect(other.status).toBe(200);
      expectSessionResponse(other.body, user.email);
    });

    it('verify takes exactly one of code and recoveryCode, and only six-digit codes: otherwise 400 validation_failed (the token survives)', async () => {
      const user = await mfaUser(server);
      const mfaToken = await challenge(server, user);
      const code = codeAt(server, user.secret);
      const bad: Record<string, unknown>[] = [
        { mfaToken, code, recoveryCode: user.recoveryCodes[0] },
        { mfaToken },
        { mfaToken, code: '12345' },
        { mfaToken, code: 'abcdef' },
        { mfaToken, code: '1234567' },
        { mfaToken, code: 123456 },
        { code },
      ];
      for (const body of bad) {
        const response = await verify(server, body);
        expectError(response, 400, 'validation_failed');
        expect(response.body.details).toEqual(expect.any(Array));
        expect(response.body.token).toBeUndefined();
      }
      // More than five refusals, none of them counted against the token or the recovery code.
      const ok = await verify(server, { mfaToken, code });
      expect(ok.status).toBe(200);
      expectSessionResponse(ok.body, user.email);
      const recovery = await verify(server, { mfaToken: await challenge(server, user), recoveryCode: user.recoveryCodes[0] });
      expect(recovery.status).toBe(200);
    });

    it('the OAuth password grant refuses a two-factor user: 400 invalid_grant, no tokens, no session', async () => {
      const user = await mfaUser(server);
      const before = await server.call('GET', '/auth/sessions', { token: user.token });
      expect(before.status).toBe(200);

      const form = new URLSearchParams({ grant_type: 'password', username: user.email, password: user.password }).toString();
      const response = await server.call('POST', '/auth/token', { body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
      expect(response.headers.get('cache-control')).toBe('no-store');

      const asJson = await server.call('POST', '/auth/token', { body: { grant_type: 'password', username: user.email, password: user.password } });
      expect(asJson.status).toBe(400);
      expect(asJson.body).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });

      const after = await server.call('GET', '/auth/sessions', { token: user.token });
      expect(after.body.sessions).toHaveLength(before.body.sessions.length);
    });

    it('disable needs the password (wrong → 401 invalid_credentials); afterwards sign-in gives a session directly and pending mfaTokens die', async () => {
      const user = await mfaUser(server);
      const wrong = await server.call('POST', '/auth/mfa/totp/disable', { token: user.token, body: { password: `${user.password}x` } });
      expectError(wrong, 401, 'invalid_credentials');
      expect((await me(server, user.token)).body.user.mfaEnabled).toBe(true);
      expectError(await server.call('POST', '/auth/mfa/totp/disable', { body: { password: user.password } }), 401, 'missing_token');

      const pending = await challenge(server, user);
      const disable = await server.call('POST', '/auth/mfa/totp/disable', { token: user.token, body: { password: user.password } });
      expect(disable.status).toBe(204);
      expect((await me(server, user.token)).body.user.mfaEnabled).toBe(false);

      const signin = await signIn(server, user);
      expect(signin.status).toBe(200);
      expect(signin.body).toEqual(expect.objectContaining({ token: expect.any(String), tokenType: 'Bearer', refreshToken: expect.any(String) }));
      expect(signin.body.mfaRequired).toBeUndefined();
      expect(signin.body.user.mfaEnabled).toBe(false);
      expect((await me(server, signin.body.token)).status).toBe(200);

      server.clock.advance(STEP);
      expectError(await verify(server, { mfaToken: pending, code: codeAt(server, user.secret) }), 401, 'invalid_mfa_token');
      expectError(await verify(server, { mfaToken: pending, recoveryCode: user.recoveryCodes[0] }), 401, 'invalid_mfa_token');

      // Two-factor can be set up again afterwards.
      const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
      expect(setup.status).toBe(200);
      expect(setup.body.secret).not.toBe(user.secret);
    });
  });

  describe('storage', () => {
    it('recovery codes are stored hashed: no code_hash equals or contains a code', async () => {
      const user = await mfaUser(server);
      const rows = await server.signet.services.db.kysely.selectFrom('mfa_recovery_codes').selectAll().where('user_id', '=', user.userId).execute();
      expect(rows).toHaveLength(10);
      expect(new Set(rows.map((r) => r.code_hash)).size).toBe(10);
      const forms = user.recoveryCodes.flatMap((c) => [c, c.toLowerCase(), c.toUpperCase(), c.replace(/[^A-Za-z0-9]/g, '').toLowerCase()]);
      for (const row of rows) {
        for (const form of forms) {
          expect(row.code_hash).not.toBe(form);
          expect(row.code_hash.toLowerCase()).not.toContain(form.toLowerCase());
        }
      }
      // ASVS 6.5.2: a fast hash is only acceptable for codes with at least 112 bits of entropy.
      const passwordHash = rows.every((r) => /^\$(argon2|2[aby]\$|scrypt)/.test(r.code_hash));
      if (!passwordHash) {
        for (const code of user.recoveryCodes) expect(code.replace(/[^A-Za-z0-9]/g, '').length * 5).toBeGreaterThanOrEqual(112);
      }
    });

    it('without SIGNET_SECRET the TOTP secret is still sealed at rest, with the key file of the data directory', async () => {
      expect(server.signet.services.config.masterSecret).toBeUndefined();
      const user = await mfaUser(server);
      const row = await server.signet.services.db.kysely.selectFrom('mfa_totp').selectAll().where('user_id', '=', user.userId).executeTakeFirstOrThrow();
      expect(row.secret.startsWith('v1.')).toBe(true);
      expect(row.secret.toLowerCase()).not.toContain(user.secret.toLowerCase());
    });
  });
});

describe.each(DIALECTS)('TOTP secrets encrypted at rest with a master secret on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { masterSecret: randomBytes(48).toString('base64') });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('the mfa_totp.secret column holds a "v1." sealed value without the base32 secret, pending and enabled; codes still verify', async () => {
    const user = await signUp(server);
    const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: user.token, body: { password: user.password } });
    expect(setup.status).toBe(200);
    const secret: string = setup.body.secret;
    const read = () => server.signet.services.db.kysely.selectFrom('mfa_totp').selectAll().where('user_id', '=', user.userId).executeTakeFirstOrThrow();

    const pending = await read();
    expect(pending.secret.startsWith('v1.')).toBe(true);
    expect(pending.secret).not.toContain(secret);
    expect(pending.secret.toLowerCase()).not.toContain(secret.toLowerCase());
    expect(pending.secret).not.toContain(Secret.fromBase32(secret).hex);

    const enable = await server.call('POST', '/auth/mfa/totp/enable', { token: user.token, body: { code: codeAt(server, secret) } });
    expect(enable.status).toBe(200);
    const enabled = await read();
    expect(enabled.secret.startsWith('v1.')).toBe(true);
    expect(enabled.secret).not.toContain(secret);

    server.clock.advance(STEP);
    const ok = await verify(server, { mfaToken: await challenge(server, user), code: codeAt(server, secret) });
    expect(ok.status).toBe(200);
    expectSessionResponse(ok.body, user.email);
  });
});

describe.each(DIALECTS)('MFA code guessing is throttled per client on %s', (dialect: DialectName) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(dialect, { rateLimits: true });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('after 30 verify attempts from one client the next is 429 rate_limited with Retry-After, even with the right code', async () => {
    const user = await mfaUser(server);
    let attempts = 0;
    while (attempts < 30) {
      const mfaToken = await challenge(server, user);
      for (let i = 0; i < 5 && attempts < 30; i++, attempts++) {
        const response = await verify(server, { mfaToken, code: wrongCode(server, user.secret) });
        expectError(response, 401, 'invalid_code');
      }
    }
    const mfaToken = await challenge(server, user);
    const throttled = await verify(server, { mfaToken, code: codeAt(server, user.secret) });
    expectError(throttled, 429, 'rate_limited');
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(throttled.body.token).toBeUndefined();
  });
});
