import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { SignetError } from '../errors.js';
import { HashAbortedError } from './hash-pool.js';
import type { HashPool, Priority } from './hash-pool.js';

/** Who waits for a hash: known devices go first; an aborted signal drops a queued hash. */
export interface HashOptions {
  priority?: Priority;
  signal?: AbortSignal | undefined;
}

export const PASSWORD_MAX_LENGTH = 256;
/** bcrypt silently ignores bytes past 72; we refuse instead of truncating. */
const BCRYPT_MAX_BYTES = 72;

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * Stored hashes past these cost more than a sign-in is worth: refuse, never
 * verify (denial of service). bcrypt 12 takes ~250 ms here, 13 twice that; a
 * failed sign-in is answered no sooner than the slowest kind in the store takes
 * (see `failureFloorMs`), so the cap also bounds how long every failure waits.
 */
export const VERIFY_LIMITS = { argon2MemoryKiB: 256 * 1024, argon2TimeCost: 20, argon2Parallelism: 16, bcryptCost: 12 };

/** NIST SP 800-63B §3.1.1.2: what is hashed and compared is the NFKC form. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Length in Unicode code points, as the contract counts it. */
export function passwordLength(password: string): number {
  return Array.from(password).length;
}

/** The list is loaded with the first password checked, not at start (~15 MB a process need not hold until then). */
let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  if (common) return common;
  const { dictionary } = createRequire(import.meta.url)('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
  return (common = new Set(dictionary['passwords-common'].map((p) => p.toLowerCase())));
}

/**
 * Refuses passwords on the common-password list (~49 k entries from zxcvbn-ts)
 * and ones equal to the account's own email, its local part or username.
 */
export function assertNotWeak(password: string, context: { email?: string | undefined; username?: string | null | undefined } = {}): void {
  const lower = password.toLowerCase();
  const own = [context.email, context.email?.split('@')[0], context.username ?? undefined].filter((v): v is string => !!v).map((v) => v.toLowerCase());
  if (commonPasswords().has(lower) || own.includes(lower)) throw new SignetError('weak_password');
}

const ARGON2 = 'argon2';
const CALIBRATION_SAMPLES = 3;
const bcryptKind = (cost: number) => `bcrypt-${cost}`;

type ParsedHash = { kind: 'argon2'; variant: string; m: number; t: number; p: number } | { kind: 'bcrypt'; cost: number };

export function parseHash(hash: string): ParsedHash | undefined {
  const argon = /^\$(argon2(?:id|i|d))\$v=19\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/.exec(hash);
  if (argon) return { kind: 'argon2', variant: argon[1], m: Number(argon[2]), t: Number(argon[3]), p: Number(argon[4]) };
  const bcrypt = /^\$2[abxy]\$(\d{2})\$[./A-Za-z0-9]{53}$/.exec(hash);
  if (bcrypt) return { kind: 'bcrypt', cost: Number(bcrypt[1]) };
  return undefined;
}

export interface VerifyResult {
  ok: boolean;
  /** The stored hash uses another algorithm or other parameters than configured. */
  needsRehash: boolean;
}

export interface PasswordHasherEvents {
  /** A stored hash was refused without being verified (unknown format or oversized parameters). */
  onRefusedHash?: (reason: string) => void;
}

/**
 * Argon2id hashing (PHC strings carrying their parameters) on the hash pool,
 * plus verification of imported bcrypt hashes. Unknown users are verified
 * against a dummy hash so both failures take the same time.
 */
export class PasswordHasher {
  readonly #pool: HashPool;
  readonly #params: Argon2Parameters;
  readonly #events: PasswordHasherEvents;
  #dummy: Promise<string> | undefined;

  constructor(options: { pool: HashPool; params: Argon2Parameters } & PasswordHasherEvents) {
    this.#pool = options.pool;
    this.#params = options.params;
    this.#events = options;
  }

  async hash(password: string, options: HashOptions = {}): Promise<string> {
    return (await this.#pool.run({ op: 'hash', kind: ARGON2, password, options: this.#params }, options.priority, options.signal)) as string;
  }

  async verify(password: string, stored: string, options: HashOptions = {}): Promise<VerifyResult> {
    const parsed = parseHash(stored);
    const refused = parsed === undefined ? 'unrecognised hash format' : this.#refusal(parsed, password);
    if (refused) {
      this.#events.onRefusedHash?.(refused);
      // Spend the same time as a real verification: the refusal must not be observable.
      await this.verifyDummy(password, options);
      return { ok: false, needsRehash: false };
    }
    const task =
      parsed!.kind === 'argon2' ? ({ op: 'verify-argon2', password, hash: stored } as const) : ({ op: 'verify-bcrypt', password, hash: stored } as const);
    let ok: boolean;
    try {
      ok = (await this.#pool.run(task, options.priority, options.signal)) === true;
    } catch (error) {
      // Not an answer about the password: the client left, or the server is shutting down.
      if (error instanceof HashAbortedError || error instanceof SignetError) throw error;
      // A stored hash the library cannot read is refused like any other: never a 500, never an oracle.
      this.#events.onRefusedHash?.(`stored hash could not be verified (${error instanceof Error ? error.message : 'error'})`);
      await this.verifyDummy(password, options);
      return { ok: false, needsRehash: false };
    }
    return { ok, needsRehash: ok && this.needsRehash(stored) };
  }

  /** Always false, after the same work as a real verification. */
  async verifyDummy(password: string, options: HashOptions = {}): Promise<false> {
    this.#dummy ??= this.hash(randomBytes(18).toString('base64'));
    await this.#pool.run({ op: 'verify-argon2', kind: ARGON2, password, hash: await this.#dummy }, options.priority, options.signal);
    return false;
  }

  /**
   * How long a failed password check takes at least, ms: the 75th percentile
   * of the time the slowest kind of hash this process has verified or
   * calibrated takes. Unknown accounts are checked against an Argon2id dummy,
   * accounts imported with bcrypt take longer to verify; answering every
   * failure no sooner than this keeps the three (and a throttled attempt)
   * alike. Above the median, so that most checks of the slowest kind end
   * before the floor too, and its own jitter does not stand out.
   */
  failureFloorMs(): number {
    let floor = 0;
    for (const ms of this.#pool.percentileMs(0.75).values()) floor = Math.max(floor, ms);
    return floor;
  }

  /** Waits until `failureFloorMs` has passed since `startedAt` (a `performance.now()` value). */
  async padFailure(startedAt: number): Promise<void> {
    const left = startedAt + this.failureFloorMs() - performance.now();
    if (left > 0) await sleep(left);
  }

  /**
   * Measures the hash kinds the store holds before anyone signs in with one:
   * the Argon2id dummy, and one bcrypt hash per cost found among imported
   * accounts, so the first failure against such an account already waits as
   * long as the others. Costs above the verification limit are skipped (those
   * hashes are refused, never verified).
   */
  async calibrate(bcryptCosts: readonly number[]): Promise<void> {
    await this.verifyDummy('');
    const known = this.#pool.percentileMs(0.5);
    for (const cost of bcryptCosts) {
      if (cost < 4 || cost > VERIFY_LIMITS.bcryptCost || known.has(bcryptKind(cost))) continue;
      // A few samples, so one slow or fast run does not set the floor.
      for (let i = 0; i < CALIBRATION_SAMPLES; i++) {
        await this.#pool.run({ op: 'hash-bcrypt', kind: bcryptKind(cost), password: randomBytes(18).toString('base64'), cost });
      }
    }
  }

  /** Expected wait before a hash queued now starts, ms (admission control). */
  expectedWaitMs(priority: Priority = 'normal'): number {
    return this.#pool.expectedWaitMs(priority);
  }

  needsRehash(stored: string): boolean {
    const parsed = parseHash(stored);
    if (parsed?.kind !== 'argon2' || parsed.variant !== 'argon2id') return true;
    const { memoryCost, timeCost, parallelism } = this.#params;
    return parsed.m !== memoryCost || parsed.t !== timeCost || parsed.p !== parallelism;
  }

  #refusal(parsed: ParsedHash, password: string): string | undefined {
    if (parsed.kind === 'bcrypt') {
      if (parsed.cost > VERIFY_LIMITS.bcryptCost) return `bcrypt cost ${parsed.cost} exceeds ${VERIFY_LIMITS.bcryptCost}`;
      if (Buffer.byteLength(password) > BCRYPT_MAX_BYTES) return 'password longer than bcrypt can compare without truncating';
      return undefined;
    }
    if (parsed.m > VERIFY_LIMITS.argon2MemoryKiB || parsed.t > VERIFY_LIMITS.argon2TimeCost || parsed.p > VERIFY_LIMITS.argon2Parallelism) {
      return `argon2 parameters m=${parsed.m},t=${parsed.t},p=${parsed.p} exceed the verification limits`;
    }
    return undefined;
  }
}
