import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMIT_RULES } from '../../src/core/limits.js';
import { DIALECTS, eventCount, metricsText, newAccount } from '../helpers.js';
import type { TestServer } from '../helpers.js';
import {
  Client,
  INVALID_CREDENTIALS,
  deviceCookieOf,
  expectInvalidCredentials,
  expectRateLimited,
  expectRetryAfter,
  expectSameAnswer,
  flip,
  headerSet,
  freshIp,
  ipClient,
  knownDevice,
  limited,
  signedUp,
  totpFor,
  unknownEmail,
  wrongCode,
} from '../support/attack.js';
import type { Reply } from '../support/attack.js';
import { startSmtpServer } from '../support/smtp.js';
import type { TestSmtpServer } from '../support/smtp.js';

/**
 * Sign-in defences over HTTP (issue 5 §1 rate limits, §2 brute force without
 * lockout-DoS, §3 hash admission control, §7 enumeration resistance, "Bad
 * input and abuse"): a scripted attack, credential stuffing, per-route limits,
 * MFA code guessing, the OAuth password grant, a sign-in flood above hashing
 * capacity, enumeration with EMAIL_VERIFICATION=required, and device-cookie
 * tampering.
 *
 * Rate limits are on in every server here (the production default). Each
 * client is its own address (X-Forwarded-For from the trusted loopback proxy),
 * so per-IP budgets never leak between tests. Limit windows run on real time
 * (rate-limiter-flexible), so the tests count attempts and never wait a window out.
 */

const ACCOUNT_MINUTE = LIMIT_RULES['signin.account.minute'].points;
const IP_FAILURES = LIMIT_RULES['signin.ip.failures'].points;

async function metric(server: TestServer, name: string): Promise<number> {
  const text = await metricsText(server);
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} missing`);
  return Number(line.split(' ').pop());
}

describe.each(DIALECTS)('sign-in defences on %s', (dialect) => {
  // Sibling suites, each with its own server: never two servers of this file alive at once.
  describe('brute force, credential stuffing, per-route limits, MFA guessing, password grant, cookie tampering', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await limited(dialect);
    });
    afterAll(async () => {
      await server?.close();
    });

    it('scripted attack: 30+ wrong passwords from 12 addresses throttle the account, never its real user on a known device', async () => {
      const account = await signedUp(server);
      const device = await knownDevice(server, account);
      const cookie = deviceCookieOf(await device.signIn({ email: account.email, password: account.password }))!;
      // OWASP device cookie: HttpOnly, Secure, __Host- (Path=/, no Domain), not sent cross-site.
      expect(cookie.attributes).toEqual(expect.arrayContaining(['HttpOnly', 'Secure', 'Path=/', 'SameSite=Strict']));
      expect(cookie.attributes.some((a) => /^domain=/i.test(a))).toBe(false);
      device.deviceCookie = cookie.value;

      const attackers = Array.from({ length: 12 }, () => ipClient(server));
      const wrong = (i: number) => ({ email: account.email, password: `guess-${i}-${randomBytes(4).toString('hex')}` });

      // Phase 1: 24 guesses at once from 12 addresses while the real user signs in three times.
      const guesses = attackers.flatMap((a, i) => [a.signIn(wrong(2 * i)), a.signIn(wrong(2 * i + 1))]);
      const legit = [device, new Client(server, freshIp(), device.deviceCookie), device].map((d) =>
        d.signIn({ email: account.email, password: account.password }),
      );
      const [attack, real] = await Promise.all([Promise.all(guesses), Promise.all(legit)]);
      for (const reply of attack) expectInvalidCredentials(reply);
      for (const reply of real) {
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.user.id).toBe(account.id);
      }

      // Phase 2: the attack goes on (8 more, 32 in all), one at a time.
      for (let i = 0; i < 8; i++) expectInvalidCredentials(await attackers[i].signIn(wrong(100 + i)));

      // From a new address without the device cookie, the right password answers exactly like a wrong one.
      const right = await ipClient(server).signIn({ email: account.email, password: account.password });
      const wrongAgain = await ipClient(server).signIn(wrong(200));
      expectInvalidCredentials(right);
      expectSameAnswer(right, wrongAgain);
      // One account, one throttle: switching to the username buys the attacker nothing.
      expectInvalidCredentials(await ipClient(server).signIn({ username: account.username.toUpperCase(), password: account.password }));

      // The real user on the known device still gets in, from wherever the device is, while the attack goes on.
      const [home, attackerMeanwhile] = await Promise.all([
        device.signIn({ email: account.email, password: account.password }),
        attackers[11].signIn(wrong(300)),
      ]);
      expect(home.status, JSON.stringify(home.body)).toBe(200);
      expectInvalidCredentials(attackerMeanwhile);
      const me = await device.call('GET', '/auth/me', { token: home.body.token });
      expect(me.status).toBe(200);
      expect(me.body.user.email).toBe(account.email);
    });

    it('keeps the account throttled for other sources after its real user signs in from a known device', async () => {
      const account = await signedUp(server);
      const device = await knownDevice(server, account);
      for (let i = 0; i < ACCOUNT_MINUTE + 1; i++)
        expectInvalidCredentials(await ipClient(server).signIn({ email: account.email, password: `wrong-${i}-password` }));
      expectInvalidCredentials(await ipClient(server).signIn({ email: account.email, password: account.password }));

      expect((await device.signIn({ email: account.email, password: account.password })).status).toBe(200);
      // The known device's success proves nothing about the guesses from elsewhere:
      // it must not hand the attacker a fresh budget (else every sign-in of the victim resets the slow-down).
      expectInvalidCredentials(await ipClient(server).signIn({ email: account.email, password: account.password }));
    });

    it('throttles an unknown identifier at the same failure count, with the same answers, as a real account', async () => {
      const account = await signedUp(server);
      const targets = { real: account.email, unknown: unknownEmail() };
      const firstThrottled: Record<string, number | undefined> = {};
      const answers: Record<string, Reply[]> = { real: [], unknown: [] };
      for (const [kind, email] of Object.entries(targets)) {
        for (let attempt = 1; attempt <= ACCOUNT_MINUTE + 3; attempt++) {
          const before = await eventCount(server, 'security.signin_throttled');
          const reply = await ipClient(server).signIn({ email, password: `wrong-${attempt}-password` });
          const after = await eventCount(server, 'security.signin_throttled');
          answers[kind].push(reply);
          if (after > before && firstThrottled[kind] === undefined) firstThrottled[kind] = attempt;
        }
      }
      expect(firstThrottled).toEqual({ real: ACCOUNT_MINUTE + 1, unknown: ACCOUNT_MINUTE + 1 });
      answers.real.forEach((reply, i) => {
        expectInvalidCredentials(reply);
        expectSameAnswer(answers.unknown[i], reply);
      });
      // Throttled, the real account refuses its right password too.
      expectInvalidCredentials(await ipClient(server).signIn({ email: account.email, password: account.password }));
      // An unknown username is throttled like an unknown email.
      const name = `ghost_${randomBytes(4).toString('hex')}`;
      const before = await eventCount(server, 'security.signin_throttled');
      for (let i = 0; i < ACCOUNT_MINUTE; i++) expectInvalidCredentials(await ipClient(server).signIn({ username: name, password: `wrong-${i}-password` }));
      expect(await eventCount(server, 'security.signin_throttled')).toBe(before);
      expectInvalidCredentials(await ipClient(server).signIn({ username: name, password: 'wrong-x-password' }));
      expect(await eventCount(server, 'security.signin_throttled')).toBe(before + 1);
    });

    it('credential stuffing: one address spraying many accounts gets 429 past the per-IP failure budget; others are unaffected', async () => {
      const victims = [await signedUp(server), await signedUp(server), await signedUp(server)];
      const stuffer = ipClient(server);
      for (let i = 0; i < IP_FAILURES; i++) {
        const login: Record<string, string> =
          i < victims.length
            ? { email: victims[i].email, password: 'leaked-other-site-pw' }
            : i % 2
              ? { email: unknownEmail(), password: 'leaked-other-site-pw' }
              : { username: `leak_${i}_${randomBytes(3).toString('hex')}`, password: 'leaked-other-site-pw' };
        expectInvalidCredentials(await stuffer.signIn(login));
      }
      // Past the budget: 429 for the source, even with a right password (which says nothing about the account).
      const blocked = await stuffer.signIn({ email: victims[0].email, password: victims[0].password });
      expectRateLimited(blocked, 'signin.ip.failures');
      expectRateLimited(await stuffer.signIn({ email: unknownEmail(), password: 'leaked-other-site-pw' }), 'signin.ip.failures');
      // Another address is unaffected, and so are the sprayed accounts (one failure each).
      const other = ipClient(server);
      expectInvalidCredentials(await other.signIn({ email: victims[1].email, password: 'leaked-other-site-pw' }));
      for (const victim of victims) expect((await other.signIn({ email: victim.email, password: victim.password })).status).toBe(200);
    });

    it('contract minimum: one client makes 20 sign-ups and 20 successful sign-ins for distinct accounts within a minute, no 429', async () => {
      const client = ipClient(server);
      const started = Date.now();
      const accounts = Array.from({ length: 20 }, () => newAccount());
      for (const account of accounts) {
        const reply = await client.call('POST', '/auth/signup', { body: account });
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(reply.headers.get('ratelimit-limit')).toBe(String(LIMIT_RULES['signup.ip'].points));
      }
      for (const account of accounts) {
        const reply = await client.signIn({ email: account.email, password: account.password });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      }
      expect(Date.now() - started).toBeLessThan(60_000);
    });

    it('sign-up per address: 429 rate_limited past signup.ip, RateLimit-* headers counting down; another address is unaffected', async () => {
      const client = ipClient(server);
      const points = LIMIT_RULES['signup.ip'].points;
      for (let i = 1; i <= points; i++) {
        const reply = await client.call('POST', '/auth/signup', { body: newAccount() });
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(reply.headers.get('ratelimit-limit')).toBe(String(points));
        expect(reply.headers.get('ratelimit-remaining')).toBe(String(points - i));
      }
      const account = newAccount();
      const blocked = await client.call('POST', '/auth/signup', { body: account });
      expectRateLimited(blocked, 'signup.ip');
      // Refused before any work: the account was not created.
      expect((await ipClient(server).signIn({ email: account.email, password: account.password })).status).toBe(401);
      expect((await ipClient(server).call('POST', '/auth/signup', { body: account })).status).toBe(201);
    });

    it('refresh per address: 429 rate_limited past refresh.ip, even for a valid refresh token, which stays usable elsewhere', async () => {
      const account = await signedUp(server);
      const session = (await ipClient(server).signIn({ email: account.email, password: account.password })).body;
      const client = ipClient(server);
      const points = LIMIT_RULES['refresh.ip'].points;
      for (let batch = 0; batch < points; batch += 50) {
        const replies = await Promise.all(
          Array.from({ length: Math.min(50, points - batch) }, () =>
            client.call('POST', '/auth/token/refresh', { body: { refreshToken: randomBytes(32).toString('base64url') } }),
          ),
        );
        for (const reply of replies) {
          expect(reply.status).toBe(401);
          expect(reply.body.code).toBe('invalid_refresh_token');
        }
      }
      expectRateLimited(await client.call('POST', '/auth/token/refresh', { body: { refreshToken: session.refreshToken } }), 'refresh.ip');
      const elsewhere = await ipClient(server).call('POST', '/auth/token/refresh', { body: { refreshToken: session.refreshToken } });
      expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(200);
      expect(elsewhere.body.refreshToken).not.toBe(session.refreshToken);
    });

    it('forgot/resend per address share mail.ip: 429 past the limit, with identical 202s before it', async () => {
      const account = await signedUp(server);
      const client = ipClient(server);
      const points = LIMIT_RULES['mail.ip'].points;
      let first: Reply | undefined;
      for (let i = 0; i < points; i++) {
        const path = i % 2 ? '/auth/password/forgot' : '/auth/email/resend';
        const reply = await client.call('POST', path, { body: { email: i % 4 < 2 ? account.email : unknownEmail() } });
        expect(reply.status).toBe(202);
        first ??= reply;
        expect(reply.body).toEqual(first.body);
      }
      expectRateLimited(await client.call('POST', '/auth/password/forgot', { body: { email: account.email } }), 'mail.ip');
      expectRateLimited(await client.call('POST', '/auth/email/resend', { body: { email: unknownEmail() } }), 'mail.ip');
      expect((await ipClient(server).call('POST', '/auth/password/forgot', { body: { email: account.email } })).status).toBe(202);
    });

    it('MFA guessing: five wrong codes kill the mfaToken; ten per account stop every code; one address guessing across accounts hits 429', async () => {
      // Accounts with TOTP on; their codes come from the server's clock.
      const mfaAccount = async () => {
        const account = await signedUp(server);
        const owner = ipClient(server);
        const session = (await owner.signIn({ email: account.email, password: account.password })).body;
        const setup = await owner.call('POST', '/auth/mfa/totp/setup', { token: session.token, body: { password: account.password } });
        expect(setup.status, JSON.stringify(setup.body)).toBe(200);
        const totp = totpFor(setup.body.secret);
        const enabled = await owner.call('POST', '/auth/mfa/totp/enable', {
          token: session.token,
          body: { code: totp.generate({ timestamp: server.clock.now() }) },
        });
        expect(enabled.status, JSON.stringify(enabled.body)).toBe(200);
        return { ...account, code: () => totp.generate({ timestamp: server.clock.now() }), recoveryCodes: enabled.body.recoveryCodes as string[] };
      };
      type MfaAccount = Awaited<ReturnType<typeof mfaAccount>>;
      const challenge = async (client: Client, account: MfaAccount): Promise<string> => {
        const reply = await client.signIn({ email: account.email, password: account.password });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body).toEqual({ mfaRequired: true, mfaToken: expect.any(String), methods: ['totp'] });
        expect(reply.headers.get('set-cookie')).toBeNull();
        return reply.body.mfaToken;
      };
      const verify = (client: Client, mfaToken: string, proof: Record<string, string>) =>
        client.call('POST', '/auth/mfa/verify', { body: { mfaToken, ...proof } });
      const expectInvalidCode = (reply: Reply) => {
        expect(reply.status, JSON.stringify(reply.body)).toBe(401);
        expect(reply.body.code).toBe('invalid_code');
      };

      const accounts = [await mfaAccount(), await mfaAccount(), await mfaAccount(), await mfaAccount()];
      // Move to a code step no enable call has used.
      server.clock.advance(60);
      const [a, b, c, d] = accounts;
      const guesser = ipClient(server);
      let fromGuesser = 0;
      const guess = async (account: MfaAccount, mfaToken: string) => {
        fromGuesser++;
        expectInvalidCode(await verify(guesser, mfaToken, { code: wrongCode(account.code()) }));
      };

      // Five wrong codes kill the mfaToken: the sixth is refused even with the right code.
      const first = await challenge(guesser, a);
      for (let i = 0; i < 5; i++) await guess(a, first);
      const dead = await verify(guesser, first, { code: a.code() });
      fromGuesser++;
      expect(dead.status).toBe(401);
      expect(dead.body.code).toBe('invalid_mfa_token');
      // That code was right: a new mfaToken (another address) takes it.
      const ok = await verify(ipClient(server), await challenge(ipClient(server), a), { code: a.code() });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect(ok.body.token).toEqual(expect.any(String));

      // Minting new mfaTokens does not buy more guesses: past mfa.account wrong codes, every code of the account is refused.
      const second = await challenge(guesser, a);
      for (let i = 0; i < LIMIT_RULES['mfa.account'].points - 5; i++) await guess(a, second);
      server.clock.advance(30);
      expectInvalidCode(await verify(ipClient(server), await challenge(ipClient(server), a), { code: a.code() }));
      expectInvalidCode(await verify(ipClient(server), await challenge(ipClient(server), a), { recoveryCode: a.recoveryCodes[0] }));

      // One address guessing across accounts: past mfa.ip it gets 429, whatever it sends.
      const points = LIMIT_RULES['mfa.ip'].points;
      for (const [account, count] of [
        [b, 5],
        [b, 5],
        [c, 5],
        [c, points - 26],
      ] as const) {
        const token = await challenge(guesser, account);
        for (let i = 0; i < count; i++) await guess(account, token);
      }
      expect(fromGuesser).toBe(points);
      server.clock.advance(30);
      const fresh = await challenge(guesser, d);
      expectRateLimited(await verify(guesser, fresh, { code: d.code() }), 'mfa.ip');
      expectRateLimited(await verify(guesser, randomBytes(32).toString('base64url'), { code: '123456' }), 'mfa.ip');
      // The refusal spent nothing of the mfaToken nor of the account: the user finishes from another address.
      const elsewhere = await verify(ipClient(server), fresh, { code: d.code() });
      expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(200);
      expect(elsewhere.body.user.email).toBe(d.email);
      // A replayed code is refused.
      expectInvalidCode(await verify(ipClient(server), await challenge(ipClient(server), d), { code: d.code() }));
    });

    it('the OAuth password grant shares the counters with /auth/signin, both ways, and answers 429 with an RFC 6749 body', async () => {
      const grant = (client: Client, username: string, password: string) => client.token({ grant_type: 'password', username, password });

      // Control: the grant works for a fresh account.
      const fresh = await signedUp(server);
      const issued = await grant(ipClient(server), fresh.email, fresh.password);
      expect(issued.status, JSON.stringify(issued.body)).toBe(200);
      expect(issued.body.access_token).toEqual(expect.any(String));

      // Failures via /auth/signin throttle the grant: invalid_grant even for the right password, same as a wrong one.
      const a = await signedUp(server);
      for (let i = 0; i < ACCOUNT_MINUTE; i++) expectInvalidCredentials(await ipClient(server).signIn({ email: a.email, password: `wrong-${i}-password` }));
      const throttledGrant = await grant(ipClient(server), a.email, a.password);
      expect(throttledGrant.status).toBe(400);
      expect(throttledGrant.body).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
      expect(throttledGrant.headers.get('cache-control')).toBe('no-store');
      expectSameAnswer(throttledGrant, await grant(ipClient(server), a.email, 'wrong-x-password'));

      // Failures via the grant throttle /auth/signin.
      const b = await signedUp(server);
      for (let i = 0; i < ACCOUNT_MINUTE; i++) {
        const reply = await grant(ipClient(server), b.email, `wrong-${i}-password`);
        expect(reply.status).toBe(400);
        expect(reply.body.error).toBe('invalid_grant');
      }
      expectInvalidCredentials(await ipClient(server).signIn({ email: b.email, password: b.password }));

      // One client's failures across both routes add up to the per-IP budget.
      const client = ipClient(server);
      for (let i = 0; i < IP_FAILURES; i++) {
        if (i % 2) expectInvalidCredentials(await client.signIn({ email: unknownEmail(), password: 'sprayed-password' }));
        else expect((await grant(client, unknownEmail(), 'sprayed-password')).status).toBe(400);
      }
      const blocked = await grant(client, fresh.email, fresh.password);
      expect(blocked.status).toBe(429);
      expect(blocked.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
      expectRetryAfter(blocked, LIMIT_RULES['signin.ip.failures'].duration);
      expect(blocked.headers.get('cache-control')).toBe('no-store');
      expectRateLimited(await client.signIn({ email: fresh.email, password: fresh.password }), 'signin.ip.failures');
    });

    it('cookie tampering: a modified device cookie, or one issued for another account, gives no device privilege', async () => {
      const a = await signedUp(server);
      const b = await signedUp(server);
      const deviceA = await knownDevice(server, a);
      const deviceB = await knownDevice(server, b);
      const cookieA = deviceA.deviceCookie!;
      for (const target of [a, b]) {
        for (let i = 0; i < ACCOUNT_MINUTE; i++)
          expectInvalidCredentials(await ipClient(server).signIn({ email: target.email, password: `wrong-${i}-password` }));
      }

      // A's cookie with one character changed, in the signed payload or in the MAC.
      const dot = cookieA.indexOf('.');
      for (const index of [2, dot - 2, dot + 3, cookieA.length - 2]) {
        const forged = flip(cookieA, index);
        expect(forged).not.toBe(cookieA);
        expectInvalidCredentials(await new Client(server, freshIp(), forged).signIn({ email: a.email, password: a.password }));
      }
      // Garbage, an empty value, extra parts.
      for (const junk of ['x', `${cookieA}.extra`, cookieA.split('.')[0], `.${cookieA.split('.')[1]}`]) {
        expectInvalidCredentials(await new Client(server, freshIp(), junk).signIn({ email: a.email, password: a.password }));
      }
      // A's valid cookie is no key to B.
      expectInvalidCredentials(await new Client(server, freshIp(), cookieA).signIn({ email: b.email, password: b.password }));

      // Controls: the genuine cookies still work for their own accounts.
      expect((await new Client(server, freshIp(), cookieA).signIn({ email: a.email, password: a.password })).status).toBe(200);
      expect((await deviceB.signIn({ email: b.email, password: b.password })).status).toBe(200);
    });

    it('a known device has its own failure budget: a stolen device cookie cannot be used to brute-force', async () => {
      const account = await signedUp(server);
      const device = await knownDevice(server, account);
      const points = LIMIT_RULES['signin.device'].points;
      for (let i = 0; i < points; i++) expectInvalidCredentials(await device.signIn({ email: account.email, password: `wrong-${i}-password` }));
      // The device's budget is spent: the right password from it is refused like a wrong one.
      expectInvalidCredentials(await device.signIn({ email: account.email, password: account.password }));
      expectInvalidCredentials(await new Client(server, freshIp(), device.deviceCookie).signIn({ email: account.email, password: account.password }));
    });
  });

  describe('hash admission control: a sign-in flood above hashing capacity', () => {
    let server: TestServer;
    beforeAll(async () => {
      // One hash worker and slow hashes (tens of ms), so that 40 sign-ins at once are far above capacity.
      server = await limited(dialect, { hashConcurrency: 1, argon2: { memoryCost: 16384, timeCost: 4, parallelism: 1 }, hashQueueBudgetMs: 50 });
    });
    afterAll(async () => {
      await server?.close();
    });

    const timed = async (work: () => Promise<Reply>) => {
      const started = performance.now();
      const reply = await work();
      return { reply, ms: performance.now() - started };
    };
    const pool = () => server.signet.services.pool.stats();
    const drained = async () => {
      const deadline = Date.now() + 10_000;
      while (pool().queued + pool().busy > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(pool().queued + pool().busy).toBe(0);
    };

    // First in this server, before any flood skews the hash-time average.
    it('a throttled account answers after about the time of a real password check (no timing oracle)', async () => {
      const account = await signedUp(server);
      // The throttled answer waits for the average hash time: let that average settle on this
      // machine's current speed first (it starts from the first, cold hash).
      for (let i = 0; i < 25; i++) expectInvalidCredentials(await ipClient(server).signIn({ email: unknownEmail(), password: 'settling-password' }));
      const time = async (login: Record<string, string>) => {
        const { reply, ms } = await timed(() => ipClient(server).signIn(login));
        expectInvalidCredentials(reply);
        return ms;
      };
      const wrong: number[] = [];
      for (let i = 0; i < ACCOUNT_MINUTE; i++) wrong.push(await time({ email: account.email, password: `wrong-${i}-password` }));
      const throttled: number[] = [];
      for (let i = 0; i < 5; i++) throttled.push(await time({ email: account.email, password: account.password }));
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
      const detail = `wrong ${wrong.map(Math.round).join(',')} ms, throttled ${throttled.map(Math.round).join(',')} ms`;
      expect(median(throttled), detail).toBeGreaterThan(median(wrong) * 0.5);
      expect(median(throttled), detail).toBeLessThan(median(wrong) * 3 + 25);
    });

    it('sheds anonymous sign-ins fast with 503 + Retry-After, never 500, while /healthz, /auth/me and known-device sign-ins stay fast', async () => {
      const account = await signedUp(server);
      const device = await knownDevice(server, account);
      const session = (await device.signIn({ email: account.email, password: account.password })).body;
      // Warm up the dummy hash of unknown accounts, and the average the admission decision uses.
      expectInvalidCredentials(await ipClient(server).signIn({ email: unknownEmail(), password: 'warm-up-password' }));
      await drained();
      const hashMs = (await metric(server, 'signet_hash_median_seconds')) * 1000;
      expect(hashMs).toBeGreaterThan(0);

      const flood = Array.from({ length: 40 }, (_, i) =>
        timed(() =>
          ipClient(server).signIn(i % 2 ? { email: unknownEmail(), password: 'flood-password' } : { email: account.email, password: `flood-${i}-password` }),
        ),
      );
      // Once hashes are queued, the routes that must stay fast.
      const deadline = Date.now() + 5000;
      while (pool().queued === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
      const health = Array.from({ length: 3 }, () => timed(() => ipClient(server).call('GET', '/healthz')));
      const me = Array.from({ length: 3 }, () => timed(() => ipClient(server).call('GET', '/auth/me', { token: session.token })));
      const known = device.signIn({ email: account.email, password: account.password });
      const results = await Promise.all(flood);

      const statuses = results.map((r) => r.reply.status);
      expect(
        statuses.filter((s) => s !== 401 && s !== 503),
        `statuses: ${statuses.join(',')}`,
      ).toEqual([]);
      const shed = results.filter((r) => r.reply.status === 503);
      const served = results.filter((r) => r.reply.status === 401);
      const detail = `503 in ${shed.map((r) => Math.round(r.ms)).join(',')} ms; 401 in ${served.map((r) => Math.round(r.ms)).join(',')} ms; one hash ${hashMs.toFixed(1)} ms`;
      // Far more than the budget can hold is shed; the rest is served.
      expect(shed.length, detail).toBeGreaterThanOrEqual(10);
      expect(served.length, detail).toBeGreaterThanOrEqual(1);
      for (const { reply } of shed) {
        expect(reply.body).toEqual({ statusCode: 503, error: 'Service Unavailable', message: expect.any(String), code: 'unavailable' });
        expectRetryAfter(reply, 60);
      }
      for (const { reply } of served) expect(reply.body).toEqual(INVALID_CREDENTIALS);
      // Shedding never makes a client wait for the queue: no 503 comes later than the slowest served attempt
      // (how fast a 503 comes with the queue full is measured precisely in the next test).
      expect(Math.max(...shed.map((r) => r.ms)), detail).toBeLessThan(Math.max(...served.map((r) => r.ms)) + 100);

      // Not held behind the flood's hashes (the tight bound is in the next test: here the
      // flood's own HTTP work shares this process's event loop with the server).
      for (const { reply, ms } of await Promise.all(health)) {
        expect(reply.status).toBe(200);
        expect(ms, detail).toBeLessThan(Math.max(1000, results.length * hashMs));
      }
      for (const { reply, ms } of await Promise.all(me)) {
        expect(reply.status).toBe(200);
        expect(reply.body.user.id).toBe(account.id);
        expect(ms, detail).toBeLessThan(Math.max(1000, results.length * hashMs));
      }
      const knownReply = await known;
      expect(knownReply.status, JSON.stringify(knownReply.body)).toBe(200);

      // Once the flood has drained, anonymous sign-ins are served again.
      await drained();
      expectInvalidCredentials(await ipClient(server).signIn({ email: unknownEmail(), password: 'after-the-flood' }));
    });

    it('with the hash queue over budget: sign-up and anonymous sign-in get 503 at once, a known device still signs in, /auth/me answers', async () => {
      const account = await signedUp(server);
      const device = await knownDevice(server, account);
      const session = (await device.signIn({ email: account.email, password: account.password })).body;
      await drained();
      // Saturate the hash workers as a flood would: far more queued work than the 50 ms budget.
      const hashMs = (await metric(server, 'signet_hash_median_seconds')) * 1000;
      const load = Array.from({ length: Math.max(20, Math.ceil(800 / hashMs)) }, () => server.signet.services.hasher.hash(randomBytes(12).toString('hex')));
      expect(server.signet.services.hasher.expectedWaitMs('normal')).toBeGreaterThan(50);

      const [signup, anonymous, rightPassword, known, me, health] = await Promise.all([
        timed(() => ipClient(server).call('POST', '/auth/signup', { body: newAccount() })),
        timed(() => ipClient(server).signIn({ email: unknownEmail(), password: 'some-password' })),
        timed(() => ipClient(server).signIn({ email: account.email, password: account.password })),
        timed(() => device.signIn({ email: account.email, password: account.password })),
        timed(() => ipClient(server).call('GET', '/auth/me', { token: session.token })),
        timed(() => ipClient(server).call('GET', '/healthz')),
      ]);
      const queueMs = load.length * hashMs;
      for (const { reply, ms } of [signup, anonymous, rightPassword]) {
        expect(reply.status, JSON.stringify(reply.body)).toBe(503);
        expect(reply.body.code).toBe('unavailable');
        expectRetryAfter(reply, 60);
        expect(ms).toBeLessThan(queueMs / 2);
      }
      // Known devices queue ahead of the anonymous work and are never shed.
      expect(known.reply.status, JSON.stringify(known.reply.body)).toBe(200);
      // Token checks and health never wait for the hash queue.
      expect(me.reply.status).toBe(200);
      expect(me.reply.body.user.id).toBe(account.id);
      expect(me.ms).toBeLessThan(queueMs / 2);
      expect(health.reply.status).toBe(200);
      expect(health.ms).toBeLessThan(queueMs / 2);
      await Promise.all(load);
      await drained();
      expect((await ipClient(server).call('POST', '/auth/signup', { body: newAccount() })).status).toBe(201);
    });
  });

  describe('enumeration resistance with EMAIL_VERIFICATION=required', () => {
    let server: TestServer;
    let smtp: TestSmtpServer;
    beforeAll(async () => {
      smtp = await startSmtpServer();
      server = await limited(dialect, { emailVerification: 'required', smtpUrl: smtp.url, mailFrom: 'Signet Test <no-reply@signet.test>' });
    });
    afterAll(async () => {
      await server?.close();
      await smtp?.close();
    });

    it('answers a sign-up with a registered email exactly like a new one (201 verificationRequired, no session) and mails the owner instead', async () => {
      const existing = await signedUp(server);
      const fresh = newAccount();
      const again = { ...newAccount(), email: existing.email.toUpperCase() };
      const newReply = await ipClient(server).call('POST', '/auth/signup', { body: fresh });
      const existingReply = await ipClient(server).call('POST', '/auth/signup', { body: again });
      for (const [reply, sent] of [
        [newReply, fresh],
        [existingReply, again],
      ] as const) {
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(reply.body).toEqual({
          user: {
            id: expect.any(String),
            email: sent.email,
            emailVerified: false,
            username: sent.username,
            name: null,
            mfaEnabled: false,
            createdAt: expect.any(String),
            updatedAt: expect.any(String),
          },
          verificationRequired: true,
        });
        expect(reply.body.token).toBeUndefined();
        expect(reply.headers.get('set-cookie')).toBeNull();
      }
      expect(existingReply.body.user.id).not.toBe(existing.id);
      expect(existingReply.body.user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(newReply.body.user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(headerSet(existingReply.headers).map(([k]) => k)).toEqual(headerSet(newReply.headers).map(([k]) => k));

      // The owner is told; the would-be account was not created over theirs.
      await server.signet.services.lifecycle.settle();
      await server.signet.services.mailer.flush();
      const notice = await smtp.waitFor(
        (m) => m.rcptTo.includes(existing.email.toLowerCase()) && m.subject === 'Someone tried to sign up with your address',
        5000,
      );
      expect(notice.text).not.toContain(again.password);
      const owner = await ipClient(server).signIn({ email: existing.email, password: existing.password });
      expect(owner.status).toBe(403);
      expect(owner.body.code).toBe('email_not_verified');
      expectInvalidCredentials(await ipClient(server).signIn({ email: existing.email, password: again.password }));
    });

    it('answers forgot and resend identically for an existing and an unknown address, also past the per-address mail limit', async () => {
      const existing = await signedUp(server);
      const unknown = unknownEmail();
      for (const path of ['/auth/password/forgot', '/auth/email/resend']) {
        for (let round = 0; round < LIMIT_RULES['mail.address'].points + 2; round++) {
          const known = await ipClient(server).call('POST', path, { body: { email: existing.email } });
          const other = await ipClient(server).call('POST', path, { body: { email: unknown } });
          expect(known.status).toBe(202);
          expectSameAnswer(other, known);
        }
      }
    });

    it('gives identical throttled answers for an existing and an unknown account, and never email_not_verified when throttled', async () => {
      const existing = await signedUp(server);
      const unknown = unknownEmail();
      for (let i = 0; i < ACCOUNT_MINUTE; i++) {
        const known = await ipClient(server).signIn({ email: existing.email, password: `wrong-${i}-password` });
        const other = await ipClient(server).signIn({ email: unknown, password: `wrong-${i}-password` });
        expectInvalidCredentials(known);
        expectSameAnswer(other, known);
      }
      // Throttled: the right password of the unverified account must not reveal it with 403 email_not_verified.
      const right = await ipClient(server).signIn({ email: existing.email, password: existing.password });
      const other = await ipClient(server).signIn({ email: unknown, password: existing.password });
      expectInvalidCredentials(right);
      expectSameAnswer(other, right);
      // A throttled source looks the same whichever accounts it tried.
      const sprayA = ipClient(server);
      const sprayB = ipClient(server);
      for (let i = 0; i < IP_FAILURES; i++) {
        await sprayA.signIn({ email: unknownEmail(), password: 'sprayed-password' });
        await sprayB.signIn({ email: unknownEmail(), password: 'sprayed-password' });
      }
      const limitedKnown = await sprayA.signIn({ email: existing.email, password: existing.password });
      const limitedUnknown = await sprayB.signIn({ email: unknown, password: existing.password });
      expect(limitedKnown.status).toBe(429);
      expect(limitedKnown.body.code).toBe('rate_limited');
      expect(limitedUnknown.body).toEqual(limitedKnown.body);
      expect(headerSet(limitedUnknown.headers).map(([k]) => k)).toEqual(headerSet(limitedKnown.headers).map(([k]) => k));
    });
  });
});
