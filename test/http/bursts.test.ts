import argon2 from '@node-rs/argon2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LIMIT_RULES } from '../../src/core/limits.js';
import { DIALECTS, eventCount } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';
import { Client, ipClient, knownDevice, limited, signedUp, totpFor, unknownEmail, wrongCode } from '../support/attack.js';
import type { Reply } from '../support/attack.js';
import { redisScope } from '../support/redis.js';
import type { RedisScope } from '../support/redis.js';

/**
 * Issue 8 §1–2: attackers send requests at the same time. Every budget is
 * spent before the check it guards, so a burst sent at once gets exactly as
 * many checks as the budget allows, never "all of them, because none had
 * failed yet". Each burst here is sent concurrently (one Promise.all), against
 * a real server, on each database, and with the limits in Redis.
 *
 * Hashes are made slow (one worker, tens of ms each) so a burst is still being
 * hashed when the request that must be refused arrives; the number of hashes a
 * burst cost is read from the hash pool.
 */

const redisUrl = inject('redisUrl');
const ACCOUNT_MINUTE = LIMIT_RULES['signin.account.minute'].points;
const IP_FAILURES = LIMIT_RULES['signin.ip.failures'].points;
const DEVICE = LIMIT_RULES['signin.device'].points;
const REAUTH_USER = LIMIT_RULES['reauth.user'].points;
const MFA_ACCOUNT = LIMIT_RULES['mfa.account'].points;
const CHALLENGE_ATTEMPTS = 5;

const SLOW = { hashConcurrency: 1, argon2: { memoryCost: 8192, timeCost: 3, parallelism: 1 } };

const BACKENDS: { name: string; dialect: DialectName; redis: boolean }[] = [
  ...DIALECTS.map((dialect) => ({ name: dialect, dialect, redis: false })),
  ...(redisUrl ? [{ name: `${DIALECTS.at(-1)} with limits in Redis`, dialect: DIALECTS.at(-1)!, redis: true }] : []),
];

const statuses = (replies: Reply[]) => replies.map((r) => r.status).sort((a, b) => a - b);
const count = (replies: Reply[], status: number, code?: string) =>
  replies.filter((r) => r.status === status && (code === undefined || r.body?.code === code)).length;

describe.each(BACKENDS)('bursts on $name', ({ dialect, redis }) => {
  let server: TestServer;
  let scope: RedisScope | undefined;
  const hashes = () => server.signet.services.pool.stats().completed;
  const inFlight = () => server.signet.services.pool.stats().queued + server.signet.services.pool.stats().busy;
  const idle = async () => {
    const deadline = Date.now() + 20_000;
    while (inFlight() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  /** Waits until the server has taken `n` requests of a burst past admission: hashing, throttled or refused. */
  const admitted = async (n: number, before: { hashes: number; throttled: number }) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const throttled = (await eventCount(server, 'security.signin_throttled')) - before.throttled;
      if (inFlight() + (hashes() - before.hashes) + throttled >= n || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  beforeAll(async () => {
    scope = redis ? redisScope(redisUrl!) : undefined;
    server = await limited(dialect, { ...SLOW, hashQueueBudgetMs: 60_000, ...(scope ? { redisUrl: scope.url, redisPrefix: scope.prefix } : {}) });
    if (scope) await scope.ready(server);
  });
  afterAll(async () => {
    await server?.close();
    await scope?.drop();
  });

  it(`checks exactly ${ACCOUNT_MINUTE} passwords of 40 wrong ones sent at once from 40 addresses, and refuses the right one sent while they are checked`, async () => {
    const account = await signedUp(server);
    await idle();
    const before = { hashes: hashes(), throttled: await eventCount(server, 'security.signin_throttled') };
    const burst = Promise.all(Array.from({ length: 40 }, (_, i) => ipClient(server).signIn({ email: account.email, password: `wrong-${i}-guess` })));
    await admitted(40, before);
    const right = await ipClient(server).signIn({ email: account.email, password: account.password });
    const wrong = await burst;
    expect(right.status, 'the right password inside an over-budget burst').toBe(401);
    expect(right.body.code).toBe('invalid_credentials');
    expect(statuses(wrong)).toEqual(Array(40).fill(401));
    await idle();
    expect(hashes() - before.hashes, 'passwords checked').toBe(ACCOUNT_MINUTE);
  });

  it(`checks ${IP_FAILURES} of 60 failures sent at once from one address, and answers the rest 429`, async () => {
    const attacker = ipClient(server);
    await idle();
    const before = hashes();
    const replies = await Promise.all(Array.from({ length: 60 }, () => attacker.signIn({ email: unknownEmail(), password: 'stuffed-password' })));
    expect(count(replies, 401, 'invalid_credentials')).toBe(IP_FAILURES);
    expect(count(replies, 429, 'rate_limited')).toBe(60 - IP_FAILURES);
    await idle();
    expect(hashes() - before, 'passwords checked').toBe(IP_FAILURES);
  });

  it(`checks ${DEVICE} passwords of 25 wrong ones sent at once from a known device`, async () => {
    const account = await signedUp(server);
    const device = await knownDevice(server, account);
    await idle();
    const before = hashes();
    // Each request from its own address with the device's cookie: the device budget is what counts.
    const replies = await Promise.all(
      Array.from({ length: 25 }, (_, i) => new Client(server, undefined, device.deviceCookie).signIn({ email: account.email, password: `typo-${i}-password` })),
    );
    expect(statuses(replies)).toEqual(Array(25).fill(401));
    await idle();
    expect(hashes() - before, 'passwords checked').toBe(DEVICE);
  });

  it(`checks ${CHALLENGE_ATTEMPTS} of 100 codes sent at once for one mfaToken from 100 addresses; the right code after them is refused`, async () => {
    const { mfaToken, totp } = await mfaChallenge(server);
    const before = await eventCount(server, 'auth.mfa_failed');
    const code = totp.generate();
    const replies = await Promise.all(
      Array.from({ length: 100 }, () => ipClient(server).call('POST', '/auth/mfa/verify', { body: { mfaToken, code: wrongCode(code) } })),
    );
    expect(count(replies, 401, 'invalid_code'), 'codes checked').toBe(CHALLENGE_ATTEMPTS);
    expect(count(replies, 401, 'invalid_mfa_token')).toBe(100 - CHALLENGE_ATTEMPTS);
    expect((await eventCount(server, 'auth.mfa_failed')) - before).toBe(CHALLENGE_ATTEMPTS);
    const right = await ipClient(server).call('POST', '/auth/mfa/verify', { body: { mfaToken, code } });
    expect(right.status).toBe(401);
    expect(right.body.code).toBe('invalid_mfa_token');
  });

  it(`checks ${MFA_ACCOUNT} codes per account across mfaTokens when bursts for three tokens arrive at once`, async () => {
    const first = await mfaChallenge(server);
    const tokens = [first.mfaToken, await signInToChallenge(server, first.account), await signInToChallenge(server, first.account)];
    const before = await eventCount(server, 'security.mfa_throttled');
    const code = wrongCode(first.totp.generate());
    const replies = await Promise.all(
      tokens.flatMap((mfaToken) =>
        Array.from({ length: CHALLENGE_ATTEMPTS }, () => ipClient(server).call('POST', '/auth/mfa/verify', { body: { mfaToken, code } })),
      ),
    );
    expect(count(replies, 401, 'invalid_code')).toBe(3 * CHALLENGE_ATTEMPTS);
    expect((await eventCount(server, 'security.mfa_throttled')) - before, 'codes refused unchecked by the account budget').toBe(
      3 * CHALLENGE_ATTEMPTS - MFA_ACCOUNT,
    );
  });

  it(`checks ${REAUTH_USER} of 30 re-authentications sent at once with a wrong password, and answers the rest 429`, async () => {
    const account = await signedUp(server);
    const session = (await ipClient(server).signIn({ email: account.email, password: account.password })).body;
    await idle();
    const before = hashes();
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        ipClient(server).call('POST', '/auth/password/change', {
          token: session.token,
          body: { currentPassword: `not-it-${i}-at-all`, newPassword: 'a brand new staple' },
        }),
      ),
    );
    expect(count(replies, 401, 'invalid_credentials')).toBe(REAUTH_USER);
    expect(count(replies, 429, 'rate_limited')).toBe(30 - REAUTH_USER);
    await idle();
    expect(hashes() - before, 'passwords checked').toBe(REAUTH_USER);
  });
});

describe.each(BACKENDS)('one account cannot starve sign-in on $name', ({ dialect, redis }) => {
  let server: TestServer;
  let scope: RedisScope | undefined;
  beforeAll(async () => {
    scope = redis ? redisScope(redisUrl!) : undefined;
    // Like production: admission control sheds unknown-device hashes once the queue would wait longer than its budget.
    // The budget fits the work this test lets in (the flood's re-authentication budget and the 8 others) three times
    // over at this machine's current hash speed, and stays far below the ~200 hashes an unlimited flood would queue.
    const hashMs = await hashMillis(SLOW.argon2);
    const hashQueueBudgetMs = Math.max(400, Math.ceil(3 * (REAUTH_USER + 8) * hashMs));
    server = await limited(dialect, { ...SLOW, hashQueueBudgetMs, ...(scope ? { redisUrl: scope.url, redisPrefix: scope.prefix } : {}) });
    if (scope) await scope.ready(server);
  });
  afterAll(async () => {
    await server?.close();
    await scope?.drop();
  });

  it('keeps sign-up and sign-in from other addresses working while one account floods password change and TOTP setup', async () => {
    const attacker = await signedUp(server);
    const token = (await ipClient(server).signIn({ email: attacker.email, password: attacker.password })).body.token as string;
    const users = await Promise.all(Array.from({ length: 4 }, () => signedUp(server)));
    const hashesBefore = server.signet.services.pool.stats().completed;

    // 300 requests at once from one signed-in account, each a valid re-authentication:
    // a weak new password, a wrong current one, or TOTP setup with the right one.
    const flood = Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const client = ipClient(server);
        if (i % 3 === 0)
          return client.call('POST', '/auth/password/change', { token, body: { currentPassword: attacker.password, newPassword: 'password123' } });
        if (i % 3 === 1)
          return client.call('POST', '/auth/password/change', { token, body: { currentPassword: `wrong-${i}-current`, newPassword: 'a brand new staple' } });
        return client.call('POST', '/auth/mfa/totp/setup', { token, body: { password: attacker.password } });
      }),
    );
    // Meanwhile everybody else: new accounts and first sign-ins from new addresses (no device cookie).
    const others = await Promise.all([
      ...Array.from({ length: 4 }, () => ipClient(server).call('POST', '/auth/signup', { body: newSignUp() })),
      ...users.map((u) => ipClient(server).signIn({ email: u.email, password: u.password })),
    ]);
    const floodReplies = await flood;

    expect(
      others.map((r) => r.status),
      JSON.stringify(others.filter((r) => r.status >= 300).map((r) => r.body)),
    ).toEqual([201, 201, 201, 201, 200, 200, 200, 200]);
    // The flood bought at most one account's re-authentication budget of hashes.
    expect(count(floodReplies, 400, 'weak_password')).toBe(100);
    expect(count(floodReplies, 503)).toBe(0);
    const hashed = server.signet.services.pool.stats().completed - hashesBefore;
    expect(hashed, 'hashes spent on the flood and the 8 others').toBeLessThanOrEqual(REAUTH_USER + 8);
  });
});

/** The slowest of three Argon2id hashes with `params`, ms, on this machine as loaded now. */
async function hashMillis(params: { memoryCost: number; timeCost: number; parallelism: number }): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await argon2.hash(`calibration-${i}`, params);
    slowest = Math.max(slowest, performance.now() - started);
  }
  return slowest;
}

let seq = 0;
function newSignUp() {
  seq++;
  return { email: `burst.${seq}.${unknownEmail()}`, password: `fresh-signup-${seq}-lamp`, username: undefined };
}

/** An account with TOTP on, signed in with its password: the mfaToken of the second step. */
async function mfaChallenge(server: TestServer) {
  const account = await signedUp(server);
  const session = (await ipClient(server).signIn({ email: account.email, password: account.password })).body;
  const setup = await ipClient(server).call('POST', '/auth/mfa/totp/setup', { token: session.token, body: { password: account.password } });
  expect(setup.status, JSON.stringify(setup.body)).toBe(200);
  const totp = totpFor(setup.body.secret);
  const enabled = await ipClient(server).call('POST', '/auth/mfa/totp/enable', { token: session.token, body: { code: totp.generate() } });
  expect(enabled.status, JSON.stringify(enabled.body)).toBe(200);
  return { account, totp, mfaToken: await signInToChallenge(server, account) };
}

async function signInToChallenge(server: TestServer, account: { email: string; password: string }): Promise<string> {
  const reply = await ipClient(server).signIn({ email: account.email, password: account.password });
  expect(reply.body.mfaRequired, JSON.stringify(reply.body)).toBe(true);
  return reply.body.mfaToken as string;
}
