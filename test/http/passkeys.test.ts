import { decodeJwt } from 'jose';
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, eventCount, newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import { startSmtpServer } from '../support/smtp.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Passkeys over the JSON API, without a browser (test/e2e/passkeys.test.ts has
 * the browser): a software authenticator answers Signet's options, and is told
 * to get things wrong for every refusal the relying party must make (W3C
 * WebAuthn Level 3 §7.1, §7.2). The test server's public URL is
 * http://signet.test, so the RP ID is signet.test and the one origin is
 * http://signet.test.
 */

const RP_ID = 'signet.test';
const ORIGIN = 'http://signet.test';

interface Account {
  email: string;
  password: string;
  userId: string;
  token: string;
}

function expectError(response: { status: number; body: any }, status: number, code: string): void {
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.body).toEqual(expect.objectContaining({ statusCode: status, code, error: expect.any(String), message: expect.any(String) }));
}

describe.each(DIALECTS)('passkeys over the JSON API on %s', (dialect: DialectName) => {
  let server: TestServer;
  let smtp: TestSmtpServer;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    server = await startTestServer(dialect, { smtpUrl: smtp.url, emailVerification: 'optional' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  async function signUp(): Promise<Account> {
    const account = newAccount();
    const response = await server.call('POST', '/auth/signup', { body: account });
    expect(response.status).toBe(201);
    return { email: account.email, password: account.password, userId: response.body.user.id, token: response.body.token };
  }

  /** Registers a passkey of `authenticator` for `account` (whose session is fresh); returns the credential ID. */
  async function register(account: Account, authenticator: SoftAuthenticator, name?: string): Promise<string> {
    const options = await server.call('POST', '/auth/passkeys/register/options', { token: account.token });
    expect(options.status).toBe(200);
    const verify = await server.call('POST', '/auth/passkeys/register/verify', {
      token: account.token,
      body: { response: authenticator.register(options.body), ...(name !== undefined ? { name } : {}) },
    });
    expect(verify.status).toBe(201);
    return verify.body.passkey.id;
  }

  const signInOptions = async () => {
    const options = await server.call('POST', '/auth/passkeys/signin/options');
    expect(options.status).toBe(200);
    return options.body;
  };
  const signInWith = async (response: unknown, headers: Record<string, string> = {}) =>
    server.call('POST', '/auth/passkeys/signin/verify', { body: { response }, headers });

  const authenticator = (options: Partial<ConstructorParameters<typeof SoftAuthenticator>[0]> = {}) =>
    new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, ...options });

  describe('registration', () => {
    it('hands out creation options for a discoverable, user-verified credential without attestation', async () => {
      const account = await signUp();
      const options = await server.call('POST', '/auth/passkeys/register/options', { token: account.token });
      expect(options.status).toBe(200);
      expect(options.body).toMatchObject({
        rp: { id: RP_ID, name: 'Signet' },
        user: { name: expect.any(String), displayName: account.email },
        attestation: 'none',
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        excludeCredentials: [],
      });
      expect(options.body.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // The user handle is 32 random bytes, never the user id.
      expect(Buffer.from(options.body.user.id, 'base64url')).toHaveLength(32);
      expect(options.body.user.id).not.toContain(account.userId);
    });

    it('registers, names, lists and renames a passkey; the next options exclude it', async () => {
      const account = await signUp();
      const soft = authenticator({ backupEligible: true, backedUp: true });
      const id = await register(account, soft, '  Work laptop  ');
      const list = await server.call('GET', '/auth/passkeys', { token: account.token });
      expect(list.status).toBe(200);
      expect(list.body).toEqual({
        passkeys: [
          { id, name: 'Work laptop', createdAt: expect.any(String), lastUsedAt: null, deviceType: 'multiDevice', backedUp: true, transports: ['internal'] },
        ],
      });
      const renamed = await server.call('PATCH', `/auth/passkeys/${id}`, { token: account.token, body: { name: 'Phone' } });
      expect(renamed.status).toBe(200);
      expect(renamed.body.passkey.name).toBe('Phone');
      const cleared = await server.call('PATCH', `/auth/passkeys/${id}`, { token: account.token, body: { name: null } });
      expect(cleared.body.passkey.name).toBeNull();
      const again = await server.call('POST', '/auth/passkeys/register/options', { token: account.token });
      expect(again.body.excludeCredentials).toEqual([{ id, type: 'public-key', transports: ['internal'] }]);
    });

    it('needs a sign-in within 10 minutes, or the password (checked behind the re-authentication budget)', async () => {
      const account = await signUp();
      server.clock.advance(11 * 60);
      expectError(await server.call('POST', '/auth/passkeys/register/options', { token: account.token }), 403, 'reauthentication_required');
      expectError(await server.call('POST', '/auth/passkeys/register/options', { token: account.token, body: {} }), 403, 'reauthentication_required');
      expectError(
        await server.call('POST', '/auth/passkeys/register/options', { token: account.token, body: { password: 'not the password' } }),
        401,
        'invalid_credentials',
      );
      const ok = await server.call('POST', '/auth/passkeys/register/options', { token: account.token, body: { password: account.password } });
      expect(ok.status).toBe(200);
      const soft = authenticator();
      const verify = await server.call('POST', '/auth/passkeys/register/verify', { token: account.token, body: { response: soft.register(ok.body) } });
      expect(verify.status).toBe(201);
    });

    it('refuses a registration made on another origin, for another RP ID, without user verification, or against a used challenge', async () => {
      const account = await signUp();
      const cases = [
        { tamper: { origin: 'https://evil.example' }, status: 401, code: 'invalid_passkey' },
        { tamper: { origin: 'http://signet.test:8080' }, status: 401, code: 'invalid_passkey' },
        { tamper: { rpId: 'evil.example' }, status: 401, code: 'invalid_passkey' },
        { tamper: { uv: false }, status: 401, code: 'invalid_passkey' },
        { tamper: { type: 'webauthn.get' }, status: 401, code: 'invalid_passkey' },
      ];
      for (const { tamper, status, code } of cases) {
        const options = await server.call('POST', '/auth/passkeys/register/options', { token: account.token });
        const response = authenticator().register(options.body, tamper);
        expectError(await server.call('POST', '/auth/passkeys/register/verify', { token: account.token, body: { response } }), status, code);
        // The challenge went with the refusal: the good response is refused now too.
        const good = authenticator().register(options.body);
        expectError(await server.call('POST', '/auth/passkeys/register/verify', { token: account.token, body: { response: good } }), 400, 'challenge_expired');
      }
      expect((await server.call('GET', '/auth/passkeys', { token: account.token })).body.passkeys).toEqual([]);
    });

    it("refuses another user's registration challenge", async () => {
      const alice = await signUp();
      const bob = await signUp();
      const options = await server.call('POST', '/auth/passkeys/register/options', { token: alice.token });
      const response = authenticator().register(options.body);
      expectError(await server.call('POST', '/auth/passkeys/register/verify', { token: bob.token, body: { response } }), 400, 'challenge_expired');
    });
  });

  describe('sign-in with a passkey (first factor)', () => {
    it('signs in with a discoverable credential: a session whose tokens say two factors (amr), kept across a refresh', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const options = await signInOptions();
      expect(options).toEqual({
        rpId: RP_ID,
        challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        timeout: expect.any(Number),
        userVerification: 'required',
      });
      expect(options.allowCredentials).toBeUndefined();
      const signIn = await signInWith(soft.authenticate(options, id));
      expect(signIn.status).toBe(200);
      expect(signIn.body).toEqual(
        expect.objectContaining({ token: expect.any(String), refreshToken: expect.any(String), user: expect.objectContaining({ id: account.userId }) }),
      );
      expect(decodeJwt(signIn.body.token).amr).toEqual(['hwk', 'user', 'mfa']);
      const refreshed = await server.call('POST', '/auth/token/refresh', { body: { refreshToken: signIn.body.refreshToken } });
      expect(decodeJwt(refreshed.body.token).amr).toEqual(['hwk', 'user', 'mfa']);
      expect((await server.call('GET', '/auth/me', { token: refreshed.body.token })).status).toBe(200);
      const [passkey] = (await server.call('GET', '/auth/passkeys', { token: account.token })).body.passkeys;
      expect(passkey.lastUsedAt).not.toBeNull();
      // Password sign-ins say pwd, as before.
      const password = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
      expect(password.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['webauthn'] });
      expect(decodeJwt(account.token).amr).toEqual(['pwd']);
    });

    it('says swk for a passkey that may be synced, and records its backup state', async () => {
      const account = await signUp();
      const soft = authenticator({ backupEligible: true, backedUp: true });
      const id = await register(account, soft);
      const signIn = await signInWith(soft.authenticate(await signInOptions(), id));
      expect(decodeJwt(signIn.body.token).amr).toEqual(['swk', 'user', 'mfa']);
    });

    it('starts a cookie session only from an allowed origin (login CSRF)', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const foreign = await signInWith(soft.authenticate(await signInOptions(), id), { 'x-session-mode': 'cookie', origin: 'https://evil.example' });
      expectError(foreign, 403, 'csrf_failed');
      const own = await signInWith(soft.authenticate(await signInOptions(), id), { 'x-session-mode': 'cookie', origin: ORIGIN });
      expect(own.status).toBe(200);
      expect(own.body.tokenType).toBe('cookie');
    });

    it('refuses another origin, another RP ID, a missing user verification and another user handle, and audits why', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const failedBefore = await eventCount(server, 'auth.signin_failed');
      for (const tamper of [
        { origin: 'https://evil.example' },
        { origin: 'https://signet.test' },
        { rpId: 'evil.example' },
        { uv: false },
        { userHandle: Buffer.alloc(32, 7).toString('base64url') },
        { userHandle: undefined },
      ]) {
        expectError(await signInWith(soft.authenticate(await signInOptions(), id, tamper)), 401, 'invalid_passkey');
      }
      expect(await eventCount(server, 'auth.signin_failed')).toBe(failedBefore + 6);
      await server.signet.services.audit.flush();
      const { body } = await server.call('GET', '/auth/audit?limit=20', { token: account.token });
      const reasons = body.events.filter((e: any) => e.event === 'auth.signin_failed').map((e: any) => e.details.reason);
      expect(reasons).toEqual(expect.arrayContaining(['origin', 'rp_id', 'user_verification', 'user_handle']));
      // None of it spent the passkey: it still signs in.
      expect((await signInWith(soft.authenticate(await signInOptions(), id))).status).toBe(200);
    });

    it('refuses a replayed assertion, and a second signature over a used challenge', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const options = await signInOptions();
      const assertion = soft.authenticate(options, id);
      expect((await signInWith(assertion)).status).toBe(200);
      expectError(await signInWith(assertion), 400, 'challenge_expired');
      expectError(await signInWith(soft.authenticate(options, id)), 400, 'challenge_expired');
    });

    it('lets exactly one of a burst of requests presenting one challenge through', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const options = await signInOptions();
      const assertion = soft.authenticate(options, id);
      const answers = await Promise.all(Array.from({ length: 12 }, () => signInWith(assertion)));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      for (const refused of answers.filter((a) => a.status !== 200)) expectError(refused, 400, 'challenge_expired');
    });

    it('refuses an expired challenge (5 minutes), and a registration challenge used to sign in', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const options = await signInOptions();
      server.clock.advance(5 * 60 + 1);
      expectError(await signInWith(soft.authenticate(options, id)), 400, 'challenge_expired');
      const fresh = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
      expect(fresh.status).toBe(200);
      const registration = await server.call('POST', '/auth/passkeys/register/options', { token: (await signUp()).token });
      expectError(await signInWith(soft.authenticate({ challenge: registration.body.challenge, rpId: RP_ID }, id)), 400, 'challenge_expired');
    });

    it('answers unknown_passkey for a credential it does not have (never registered, or removed)', async () => {
      const stranger = authenticator();
      stranger.register({ challenge: 'x'.repeat(43), user: { id: Buffer.alloc(32, 1).toString('base64url') } });
      expectError(await signInWith(stranger.authenticate(await signInOptions(), stranger.only)), 401, 'unknown_passkey');

      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const removed = await server.call('DELETE', `/auth/passkeys/${id}`, { token: account.token });
      expect(removed.status).toBe(204);
      expectError(await signInWith(soft.authenticate(await signInOptions(), id)), 401, 'unknown_passkey');
      expectError(await server.call('DELETE', `/auth/passkeys/${id}`, { token: account.token }), 404, 'passkey_not_found');
    });

    it('refuses a signature counter that does not move forward (a cloned authenticator), and says so in the audit log', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      expect((await signInWith(soft.authenticate(await signInOptions(), id))).status).toBe(200); // counter 1
      expect((await signInWith(soft.authenticate(await signInOptions(), id))).status).toBe(200); // counter 2
      const before = await eventCount(server, 'security.passkey_counter_regression');
      expectError(await signInWith(soft.authenticate(await signInOptions(), id, { signCount: 2 })), 401, 'invalid_passkey');
      expectError(await signInWith(soft.authenticate(await signInOptions(), id, { signCount: 1 })), 401, 'invalid_passkey');
      expect(await eventCount(server, 'security.passkey_counter_regression')).toBe(before + 2);
      expect((await signInWith(soft.authenticate(await signInOptions(), id, { signCount: 7 }))).status).toBe(200);
    });

    it('refuses a passkey whose backup eligibility changed since it was registered (WebAuthn §7.2)', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      expectError(await signInWith(soft.authenticate(await signInOptions(), id, { backupEligible: true })), 401, 'invalid_passkey');
    });

    it('answers bad input with 400 or 401, never 500', async () => {
      const options = await signInOptions();
      for (const response of [null, 'x', {}, { id: 'a', rawId: 'a', type: 'public-key' }, { id: '!!', rawId: '!!', type: 'public-key', response: {} }]) {
        expectError(await signInWith(response), 400, 'validation_failed');
      }
      const garbage = {
        id: 'AAAA',
        rawId: 'AAAA',
        type: 'public-key',
        response: { clientDataJSON: 'AAAA', authenticatorData: 'AAAA', signature: 'AAAA', userHandle: 'AAAA' },
      };
      expectError(await signInWith(garbage), 400, 'challenge_expired');
      // A registered passkey's assertion with unreadable authenticator data and signature: refused, not a crash.
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      const real = soft.authenticate(options, id);
      const broken = { ...real, response: { ...real.response, authenticatorData: 'AAAA', signature: 'AA' } };
      expectError(await signInWith(broken), 401, 'invalid_passkey');
      const options2 = await signInOptions();
      const badSignature = soft.authenticate(options2, id);
      badSignature.response.signature = Buffer.from('not a signature').toString('base64url');
      expectError(await signInWith(badSignature), 401, 'invalid_passkey');
      expectError(await server.call('PATCH', '/auth/passkeys/%20', { token: (await signUp()).token, body: { name: 'x' } }), 404, 'passkey_not_found');
    });

    it('refuses a passkey sign-in of a disabled account', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      await server.signet.services.db.kysely.updateTable('users').set({ disabled_at: Date.now() }).where('id', '=', account.userId).execute();
      expectError(await signInWith(soft.authenticate(await signInOptions(), id)), 401, 'invalid_passkey');
    });
  });

  describe('passkey as the second factor', () => {
    async function mfaToken(account: Account, methods: string[]): Promise<string> {
      const signIn = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
      expect(signIn.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods });
      return signIn.body.mfaToken;
    }
    const secondFactorOptions = async (token: string) => {
      const options = await server.call('POST', '/auth/mfa/webauthn/options', { body: { mfaToken: token } });
      expect(options.status).toBe(200);
      return options.body;
    };

    it('asks a password user with a passkey for it, lists only their passkeys, and needs presence only', async () => {
      const account = await signUp();
      const soft = authenticator({ uv: false });
      const options = await server.call('POST', '/auth/passkeys/register/options', { token: account.token });
      // Registration itself needs user verification (the passkey may later sign in alone).
      expectError(
        await server.call('POST', '/auth/passkeys/register/verify', { token: account.token, body: { response: soft.register(options.body) } }),
        401,
        'invalid_passkey',
      );
      const verified = authenticator();
      const id = await register(account, verified);
      const token = await mfaToken(account, ['webauthn']);
      const request = await secondFactorOptions(token);
      expect(request).toMatchObject({ rpId: RP_ID, userVerification: 'discouraged', allowCredentials: [{ id, type: 'public-key', transports: ['internal'] }] });
      const done = await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, webauthn: verified.authenticate(request, id, { uv: false }) } });
      expect(done.status).toBe(200);
      expect(decodeJwt(done.body.token).amr).toEqual(['pwd', 'hwk', 'mfa']);
      // The mfaToken is used up.
      expectError(await server.call('POST', '/auth/mfa/webauthn/options', { body: { mfaToken: token } }), 401, 'invalid_mfa_token');
      // The password grant never bypasses it.
      const grant = await server.call('POST', '/auth/token', { body: { grant_type: 'password', username: account.email, password: account.password } });
      expect(grant.status).toBe(400);
      expect(grant.body.error).toBe('invalid_grant');
    });

    it("refuses another user's passkey, a sign-in challenge, and another sign-in's challenge", async () => {
      const alice = await signUp();
      const bob = await signUp();
      const aliceKey = authenticator();
      const bobKey = authenticator();
      const aliceId = await register(alice, aliceKey);
      const bobId = await register(bob, bobKey);
      const token = await mfaToken(alice, ['webauthn']);
      const request = await secondFactorOptions(token);
      expectError(
        await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, webauthn: bobKey.authenticate(request, bobId) } }),
        401,
        'invalid_passkey',
      );
      // A first-factor challenge is not a second-factor one.
      const signInChallenge = await signInOptions();
      expectError(
        await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, webauthn: aliceKey.authenticate(signInChallenge, aliceId) } }),
        400,
        'challenge_expired',
      );
      // Nor is the challenge of another password sign-in of the same user.
      const other = await mfaToken(alice, ['webauthn']);
      const otherRequest = await secondFactorOptions(other);
      expectError(
        await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, webauthn: aliceKey.authenticate(otherRequest, aliceId) } }),
        400,
        'challenge_expired',
      );
      // Each refusal spent one of the mfaToken's five attempts; two are left.
      const last = await secondFactorOptions(token);
      expect((await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, webauthn: aliceKey.authenticate(last, aliceId) } })).status).toBe(200);
    });

    it('offers TOTP and the passkey side by side; either completes the sign-in', async () => {
      const account = await signUp();
      const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: account.token, body: { password: account.password } });
      const totp = new TOTP({ secret: Secret.fromBase32(setup.body.secret), algorithm: 'SHA1', digits: 6, period: 30 });
      expect(
        (await server.call('POST', '/auth/mfa/totp/enable', { token: account.token, body: { code: totp.generate({ timestamp: server.clock.now() }) } })).status,
      ).toBe(200);
      const soft = authenticator();
      const id = await register(account, soft);
      server.clock.advance(30);
      const byCode = await server.call('POST', '/auth/mfa/verify', {
        body: { mfaToken: await mfaToken(account, ['totp', 'webauthn']), code: totp.generate({ timestamp: server.clock.now() }) },
      });
      expect(decodeJwt(byCode.body.token).amr).toEqual(['pwd', 'otp', 'mfa']);
      const token = await mfaToken(account, ['totp', 'webauthn']);
      const byPasskey = await server.call('POST', '/auth/mfa/verify', {
        body: { mfaToken: token, webauthn: soft.authenticate(await secondFactorOptions(token), id) },
      });
      expect(decodeJwt(byPasskey.body.token).amr).toEqual(['pwd', 'hwk', 'mfa']);
      expectError(
        await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: token, code: '123456', webauthn: soft.authenticate(await signInOptions(), id) } }),
        400,
        'validation_failed',
      );
    });

    it('answers passkey_not_found for options of a user without a passkey, and a code for a passkey-only user is invalid_code', async () => {
      const account = await signUp();
      const setup = await server.call('POST', '/auth/mfa/totp/setup', { token: account.token, body: { password: account.password } });
      const totp = new TOTP({ secret: Secret.fromBase32(setup.body.secret), algorithm: 'SHA1', digits: 6, period: 30 });
      await server.call('POST', '/auth/mfa/totp/enable', { token: account.token, body: { code: totp.generate({ timestamp: server.clock.now() }) } });
      expectError(await server.call('POST', '/auth/mfa/webauthn/options', { body: { mfaToken: await mfaToken(account, ['totp']) } }), 404, 'passkey_not_found');

      const passkeyOnly = await signUp();
      await register(passkeyOnly, authenticator());
      expectError(
        await server.call('POST', '/auth/mfa/verify', { body: { mfaToken: await mfaToken(passkeyOnly, ['webauthn']), code: '123456' } }),
        401,
        'invalid_code',
      );
    });
  });

  describe('removal', () => {
    it('needs a sign-in within 10 minutes; a new sign-in (with the passkey itself) counts', async () => {
      const account = await signUp();
      const soft = authenticator();
      const id = await register(account, soft);
      server.clock.advance(11 * 60);
      expectError(await server.call('DELETE', `/auth/passkeys/${id}`, { token: account.token }), 403, 'reauthentication_required');
      const fresh = await signInWith(soft.authenticate(await signInOptions(), id));
      expect((await server.call('DELETE', `/auth/passkeys/${id}`, { token: fresh.body.token })).status).toBe(204);
      // Without a passkey (and without TOTP) the password signs in alone again.
      const signIn = await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } });
      expect(signIn.body.token).toEqual(expect.any(String));
    });

    it("cannot touch another user's passkey", async () => {
      const alice = await signUp();
      const bob = await signUp();
      const id = await register(alice, authenticator());
      expectError(await server.call('DELETE', `/auth/passkeys/${id}`, { token: bob.token }), 404, 'passkey_not_found');
      expectError(await server.call('PATCH', `/auth/passkeys/${id}`, { token: bob.token, body: { name: 'mine' } }), 404, 'passkey_not_found');
      expect((await server.call('GET', '/auth/passkeys', { token: alice.token })).body.passkeys).toHaveLength(1);
    });
  });

  it('removes at a password reset the passkeys added before the address was proven, and keeps later ones', async () => {
    const resetByMail = async (email: string, password: string) => {
      const seen = new Set(smtp.messages);
      expect((await server.call('POST', '/auth/password/forgot', { body: { email } })).status).toBe(202);
      await server.signet.services.lifecycle.settle();
      await server.signet.services.mailer.flush();
      const mail = await smtp.waitFor((m) => !seen.has(m) && m.rcptTo.includes(email.toLowerCase()) && /reset-password\?token=/.test(m.text));
      const token = /reset-password\?token=([A-Za-z0-9_-]{43})/.exec(mail.text)![1];
      expect((await server.call('POST', '/auth/password/reset', { body: { token, password } })).status).toBe(204);
    };
    // A squatter signs up with someone else's address and adds a passkey; the owner resets the password.
    const squatter = await signUp();
    await register(squatter, authenticator());
    await resetByMail(squatter.email, `${squatter.password}-owner`);
    const owner = await server.call('POST', '/auth/signin', { body: { email: squatter.email, password: `${squatter.password}-owner` } });
    expect(owner.body.token).toEqual(expect.any(String));
    // A passkey added once the address is proven (the reset proved it) stays through the next reset.
    const fresh = { ...squatter, password: `${squatter.password}-owner`, token: owner.body.token };
    await register(fresh, authenticator());
    await resetByMail(squatter.email, `${squatter.password}-again`);
    const again = await server.call('POST', '/auth/signin', { body: { email: squatter.email, password: `${squatter.password}-again` } });
    expect(again.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['webauthn'] });
  });
});

describe('passkeys switched off', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('sqlite', { publicUrl: 'http://127.0.0.1:3999', audience: 'http://127.0.0.1:3999' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers passkeys_disabled when PUBLIC_URL is on an IP address and no WEBAUTHN_RP_ID is set', async () => {
    expect(server.signet.services.config.webauthnRpId).toBeUndefined();
    expectError(await server.call('POST', '/auth/passkeys/signin/options'), 404, 'passkeys_disabled');
    const account = newAccount();
    const signUp = await server.call('POST', '/auth/signup', { body: account });
    expectError(await server.call('POST', '/auth/passkeys/register/options', { token: signUp.body.token }), 404, 'passkeys_disabled');
    expect((await server.call('GET', '/auth/passkeys', { token: signUp.body.token })).body).toEqual({ passkeys: [] });
  });
});
