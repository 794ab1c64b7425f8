import bcrypt from '@node-rs/bcrypt';

const bcryptHash = (password: string, options: { cost: number }) => bcrypt.hashSync(password, options.cost);
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { HashPool, HashPoolClosedError } from '../../src/core/hash-pool.js';
import type { HashTask } from '../../src/core/hash-pool.js';
import { PasswordHasher, assertNotWeak, normalizePassword, parseHash, passwordLength } from '../../src/core/passwords.js';
import { SignetError } from '../../src/errors.js';
import { FAST_ARGON2 } from '../helpers.js';

/** The error `fn` throws, or undefined when it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Characters valid in the salt-and-hash part of a bcrypt string. */
const BCRYPT_CHARS = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function fakeBcrypt(cost: number): string {
  let tail = '';
  for (let i = 0; i < 53; i++) tail += BCRYPT_CHARS[(i * 7 + 3) % BCRYPT_CHARS.length];
  return `$2b$${String(cost).padStart(2, '0')}$${tail}`;
}

/** A well-formed Argon2 PHC string with the given parameters (salt and digest are arbitrary). */
function fakeArgon2(variant: string, m: number, t: number, p: number): string {
  return `$${variant}$v=19$m=${m},t=${t},p=${p}$c29tZXNhbHRzb21lc2FsdA$Hm8PqNzJeKNJNkhL2zWEbOTnS8Zdq3cZ3Tq6nMqgDzs`;
}

/** A task that keeps a worker busy for tens of milliseconds. */
const SLOW: HashTask = { op: 'hash', password: 'slow', options: { memoryCost: 32768, timeCost: 3, parallelism: 1 } };
const QUICK: HashTask = { op: 'hash', password: 'quick', options: FAST_ARGON2 };

describe('normalizePassword', () => {
  it('returns the NFKC form: compatibility characters fold, combining marks compose', () => {
    expect(normalizePassword('\uFB01sh')).toBe('fish'); // "ﬁ" ligature
    expect(normalizePassword('ＡＢＣ１２３')).toBe('ABC123'); // full-width forms
    expect(normalizePassword('cafe\u0301')).toBe('caf\u00e9');
    expect(normalizePassword('caf\u00e9')).toBe(normalizePassword('cafe\u0301'));
  });

  it('keeps white space and case as given (passwords are never trimmed)', () => {
    expect(normalizePassword('  Tidy Otter  ')).toBe('  Tidy Otter  ');
  });
});

describe('passwordLength', () => {
  it('counts code points, so an emoji outside the BMP counts as one', () => {
    expect('😀'.length).toBe(2);
    expect(passwordLength('😀')).toBe(1);
    expect(passwordLength('a😀b')).toBe(3);
    expect(passwordLength('😀'.repeat(8))).toBe(8);
  });

  it('counts every code point of a joined emoji sequence (code points, not graphemes)', () => {
    expect(passwordLength('👨\u200d👩\u200d👧')).toBe(5);
  });
});

describe('assertNotWeak', () => {
  it.each(['password123', 'qwertyuiop', 'PASSWORD123', 'QwErTyUiOp'])('refuses the common password %j with weak_password', (password) => {
    const error = thrown(() => assertNotWeak(password));
    expect(error).toBeInstanceOf(SignetError);
    expect((error as SignetError).code).toBe('weak_password');
  });

  it('refuses a password equal to the email, its local part or the username, in any case', () => {
    const context = { email: 'ada.lovelace@example.com', username: 'countess_ada' };
    for (const password of ['ada.lovelace@example.com', 'ADA.LOVELACE@EXAMPLE.COM', 'ada.lovelace', 'Ada.Lovelace', 'countess_ada', 'COUNTESS_ADA']) {
      const error = thrown(() => assertNotWeak(password, context));
      expect(error, password).toBeInstanceOf(SignetError);
      expect((error as SignetError).code, password).toBe('weak_password');
    }
  });

  it('accepts an uncommon password that is not the account’s own identifier', () => {
    expect(() => assertNotWeak('tidy-otter-lamp-42x', { email: 'ada@example.com', username: 'ada' })).not.toThrow();
    expect(() => assertNotWeak('tidy-otter-lamp-42x', { email: 'ada@example.com', username: null })).not.toThrow();
    expect(() => assertNotWeak('tidy-otter-lamp-42x')).not.toThrow();
  });
});

describe('parseHash', () => {
  it('reads the variant and parameters of Argon2 PHC strings', () => {
    expect(parseHash(fakeArgon2('argon2id', 19456, 2, 1))).toEqual({ kind: 'argon2', variant: 'argon2id', m: 19456, t: 2, p: 1 });
    expect(parseHash(fakeArgon2('argon2i', 4096, 3, 2))).toEqual({ kind: 'argon2', variant: 'argon2i', m: 4096, t: 3, p: 2 });
  });

  it('reads the cost of a bcrypt string', () => {
    expect(parseHash(bcryptHash('correct horse', { cost: 4 }))).toEqual({ kind: 'bcrypt', cost: 4 });
    expect(parseHash(fakeBcrypt(16))).toEqual({ kind: 'bcrypt', cost: 16 });
  });

  it.each([
    ['empty', ''],
    ['plain text', 'hunter2'],
    ['argon2 without parameters', '$argon2id$v=19$c29tZXNhbHQ$aGFzaA'],
    ['argon2 with a non-numeric cost', '$argon2id$v=19$m=abc,t=2,p=1$c29tZXNhbHQ$aGFzaA'],
    ['unknown algorithm', '$scrypt$ln=15,r=8,p=1$c29tZXNhbHQ$aGFzaA'],
    ['bcrypt that is too short', '$2b$10$abc'],
    ['bcrypt with trailing text', `${fakeBcrypt(10)}x`],
    ['bcrypt with a trailing newline', `${fakeBcrypt(10)}\n`],
  ])('returns undefined for %s', (_label, hash) => {
    expect(parseHash(hash)).toBeUndefined();
  });
});

describe('PasswordHasher', () => {
  let pool: HashPool;
  let hasher: PasswordHasher;
  const refused: string[] = [];

  beforeAll(() => {
    pool = new HashPool(2);
    hasher = new PasswordHasher({ pool, params: FAST_ARGON2, onRefusedHash: (reason) => refused.push(reason) });
  });
  afterAll(async () => {
    await pool.close();
  });

  /** Runs `fn` and returns the refusal reasons it reported. */
  async function refusalsDuring(fn: () => Promise<unknown>): Promise<string[]> {
    const before = refused.length;
    await fn();
    return refused.slice(before);
  }

  it('hashes to an Argon2id PHC string with the configured parameters, salted', async () => {
    const a = await hasher.hash('tidy-otter-lamp');
    const b = await hasher.hash('tidy-otter-lamp');
    expect(a).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(b).not.toBe(a);
  });

  it('verifies the right password, with no rehash needed', async () => {
    const stored = await hasher.hash('tidy-otter-lamp');
    expect(await hasher.verify('tidy-otter-lamp', stored)).toEqual({ ok: true, needsRehash: false });
  });

  it('answers false for a wrong password', async () => {
    const stored = await hasher.hash('tidy-otter-lamp');
    expect(await hasher.verify('tidy-otter-lamP', stored)).toEqual({ ok: false, needsRehash: false });
    expect(await hasher.verify('', stored)).toEqual({ ok: false, needsRehash: false });
  });

  it('asks for a rehash when the stored parameters differ from the configured ones', async () => {
    const stored = await hasher.hash('tidy-otter-lamp'); // timeCost 1
    const stronger = new PasswordHasher({ pool, params: { ...FAST_ARGON2, timeCost: 2 } });
    expect(stronger.needsRehash(stored)).toBe(true);
    expect(await stronger.verify('tidy-otter-lamp', stored)).toEqual({ ok: true, needsRehash: true });
    // A failed verification never triggers an upgrade.
    expect(await stronger.verify('wrong password', stored)).toEqual({ ok: false, needsRehash: false });
    expect(new PasswordHasher({ pool, params: { ...FAST_ARGON2, memoryCost: 2048 } }).needsRehash(stored)).toBe(true);
    expect(new PasswordHasher({ pool, params: { ...FAST_ARGON2, parallelism: 2 } }).needsRehash(stored)).toBe(true);
    expect(hasher.needsRehash(stored)).toBe(false);
  });

  it('asks for a rehash of bcrypt and non-id Argon2 hashes', () => {
    expect(hasher.needsRehash(bcryptHash('tidy-otter-lamp', { cost: 4 }))).toBe(true);
    expect(hasher.needsRehash(fakeArgon2('argon2i', 1024, 1, 1))).toBe(true);
    expect(hasher.needsRehash(fakeArgon2('argon2d', 1024, 1, 1))).toBe(true);
  });

  it('verifies an imported bcrypt hash and asks for it to be upgraded', async () => {
    const stored = bcryptHash('tidy-otter-lamp', { cost: 4 });
    expect(await hasher.verify('tidy-otter-lamp', stored)).toEqual({ ok: true, needsRehash: true });
    expect(await hasher.verify('tidy-otter-lamP', stored)).toEqual({ ok: false, needsRehash: false });
  });

  it('refuses to verify a bcrypt hash with cost above 15, without spending its cost', async () => {
    const started = performance.now();
    let result: unknown;
    const reasons = await refusalsDuring(async () => {
      result = await hasher.verify('tidy-otter-lamp', fakeBcrypt(16));
    });
    const elapsed = performance.now() - started;
    expect(result).toEqual({ ok: false, needsRehash: false });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/cost 16/);
    // bcrypt at cost 16 takes seconds; a refusal costs one fast dummy verification.
    expect(elapsed).toBeLessThan(1500);
  });

  it.each([
    ['memory 1048576 KiB', fakeArgon2('argon2id', 1048576, 1, 1)],
    ['time cost 21', fakeArgon2('argon2id', 1024, 21, 1)],
    ['parallelism 17', fakeArgon2('argon2id', 1024, 1, 17)],
  ])('refuses to verify an Argon2 hash with %s', async (_label, stored) => {
    const started = performance.now();
    let result: unknown;
    const reasons = await refusalsDuring(async () => {
      result = await hasher.verify('tidy-otter-lamp', stored);
    });
    expect(result).toEqual({ ok: false, needsRehash: false });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/exceed/);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it.each([
    ['a salt shorter than the minimum', '$argon2id$v=19$m=1024,t=1,p=1$c29t$aGFzaA'],
    ['memory below the minimum', fakeArgon2('argon2id', 1, 1, 1)],
    ['zero passes', fakeArgon2('argon2id', 1024, 0, 1)],
    ['zero lanes', fakeArgon2('argon2id', 1024, 1, 0)],
  ])('answers false, as a refusal, for a stored Argon2 string with %s (never throws)', async (_label, stored) => {
    let result: unknown;
    const reasons = await refusalsDuring(async () => {
      result = await hasher.verify('tidy-otter-lamp', stored).catch((error: unknown) => `threw: ${(error as Error).message}`);
    });
    expect(result).toEqual({ ok: false, needsRehash: false });
    expect(reasons).toHaveLength(1);
  });

  it('refuses a password longer than 72 bytes against a bcrypt hash instead of comparing a truncated prefix', async () => {
    const prefix = 'x'.repeat(72);
    const stored = bcryptHash(prefix, { cost: 4 });
    // bcrypt itself would say yes: everything past byte 72 is ignored.
    const reasons = await refusalsDuring(async () => {
      expect(await hasher.verify(`${prefix}-and-more`, stored)).toEqual({ ok: false, needsRehash: false });
    });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).not.toContain(prefix);
  });

  it('counts the 72-byte bcrypt limit in UTF-8 bytes, not characters', async () => {
    const emoji = '😀'.repeat(19); // 19 code points, 76 bytes
    const stored = bcryptHash(emoji, { cost: 4 });
    const reasons = await refusalsDuring(async () => {
      expect(await hasher.verify(emoji, stored)).toEqual({ ok: false, needsRehash: false });
    });
    expect(reasons).toHaveLength(1);
    const fits = '😀'.repeat(18); // 72 bytes
    expect(await hasher.verify(fits, bcryptHash(fits, { cost: 4 }))).toEqual({ ok: true, needsRehash: true });
  });

  it('refuses a stored hash in an unrecognised format without leaking the password in the reason', async () => {
    let result: unknown;
    const reasons = await refusalsDuring(async () => {
      result = await hasher.verify('tidy-otter-lamp', 'tidy-otter-lamp');
    });
    expect(result).toEqual({ ok: false, needsRehash: false });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).not.toContain('tidy-otter-lamp');
  });

  it('answers false from the dummy verification used for unknown users', async () => {
    expect(await hasher.verifyDummy('tidy-otter-lamp')).toBe(false);
    expect(await hasher.verifyDummy('')).toBe(false);
  });

  it('hashes with the production defaults (OWASP: 19 MiB, 2 passes, 1 lane) when nothing is configured', async () => {
    const { argon2 } = loadConfig({});
    expect(argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const production = new PasswordHasher({ pool, params: argon2 });
    const stored = await production.hash('tidy-otter-lamp');
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await production.verify('tidy-otter-lamp', stored)).toEqual({ ok: true, needsRehash: false });
  });
});

describe('HashPool', () => {
  it('runs as many tasks at once as it has workers and queues the rest', async () => {
    const pool = new HashPool(2);
    try {
      const jobs = Array.from({ length: 5 }, () => pool.run(SLOW));
      expect(pool.stats()).toMatchObject({ size: 2, busy: 2, queued: 3, completed: 0 });
      expect(pool.expectedWaitMs()).toBeGreaterThanOrEqual(0);
      const results = await Promise.all(jobs);
      expect(results.every((r) => typeof r === 'string' && r.startsWith('$argon2id$v=19$m=32768,t=3,p=1$'))).toBe(true);
      const stats = pool.stats();
      expect(stats).toMatchObject({ size: 2, busy: 0, queued: 0, completed: 5 });
      expect(stats.medianMs).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('starts queued high-priority jobs before queued normal ones', async () => {
    const pool = new HashPool(1);
    try {
      const order: string[] = [];
      const track = (name: string, job: Promise<unknown>) => job.then(() => order.push(name));
      const jobs = [
        track('running', pool.run(SLOW, 'normal')),
        track('normal-1', pool.run(QUICK, 'normal')),
        track('normal-2', pool.run(QUICK, 'normal')),
        track('high', pool.run(QUICK, 'high')),
      ];
      expect(pool.stats()).toMatchObject({ busy: 1, queued: 3 });
      await Promise.all(jobs);
      expect(order).toEqual(['running', 'high', 'normal-1', 'normal-2']);
    } finally {
      await pool.close();
    }
  });

  it('rejects queued jobs when closed, and refuses new ones, as 503 unavailable (never a wrong password)', async () => {
    const pool = new HashPool(1);
    const running = pool.run(SLOW);
    running.catch(() => undefined);
    const queued = pool.run(QUICK);
    const queuedResult = queued.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await pool.close();
    expect(await queuedResult).toBeInstanceOf(HashPoolClosedError);
    expect(await queuedResult).toMatchObject({ code: 'unavailable', status: 503 });
    await expect(pool.run(QUICK)).rejects.toBeInstanceOf(HashPoolClosedError);
  });

  it('lets a closed pool surface from PasswordHasher.verify as unavailable, not as a failed check', async () => {
    const pool = new HashPool(1);
    const hasher = new PasswordHasher({ pool, params: FAST_ARGON2 });
    const stored = await hasher.hash('correct horse battery');
    await pool.close();
    await expect(hasher.verify('correct horse battery', stored)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('settles the job a worker is running when the pool is closed (no promise left hanging)', async () => {
    const pool = new HashPool(1);
    const running = pool.run(SLOW).then(
      () => 'resolved',
      () => 'rejected',
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    await pool.close();
    const outcome = await Promise.race([running, new Promise((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2000))]);
    expect(outcome).not.toBe('still pending after 2 s');
  });
});
