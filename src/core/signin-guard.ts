import { setTimeout as sleep } from 'node:timers/promises';
import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Decision, LimitName, Limits } from './limits.js';
import type { PasswordHasher } from './passwords.js';

const ACCOUNT_WINDOWS: LimitName[] = ['signin.account.minute', 'signin.account.hour', 'signin.account.day'];

/** Who is trying: the account identifier as typed, the client, and its device id if it showed a valid device cookie. */
export interface Attempt {
  /** `email:<lower-cased>` or `username:<lower-cased>`, for known and unknown accounts alike. */
  identifier: string;
  ip: string | null;
  device: string | undefined;
}

/**
 * Brute-force and credential-stuffing defence for every password check
 * (sign-in, the OAuth password grant, MFA sign-in's first step).
 *
 * - Per client IP: all attempts and failed attempts are limited; past either
 *   the client gets `429`, which says nothing about any account.
 * - Per account identifier: failures throttle further attempts in growing
 *   windows. A throttled attempt answers exactly like a wrong password, after
 *   the time a hash takes, without spending one (no oracle, no CPU).
 * - A known device (valid device cookie for the account) is counted on its own
 *   budget instead, so an attacker elsewhere cannot lock the real user out.
 * - Admission control: when the hash queue's expected wait exceeds the budget,
 *   attempts from unknown devices are shed at once with `503` + Retry-After;
 *   known devices queue ahead of them and are never shed.
 */
export class SignInGuard {
  readonly #limits: Limits;
  readonly #hasher: PasswordHasher;
  readonly #config: Pick<SignetConfig, 'hashQueueBudgetMs'>;
  readonly #onEvent: (event: string, fields: Record<string, unknown>) => void;

  constructor(
    limits: Limits,
    hasher: PasswordHasher,
    config: Pick<SignetConfig, 'hashQueueBudgetMs'>,
    onEvent: (event: string, fields: Record<string, unknown>) => void,
  ) {
    this.#limits = limits;
    this.#hasher = hasher;
    this.#config = config;
    this.#onEvent = onEvent;
  }

  /** Runs before any hashing. Throws `rate_limited`, `unavailable` or (throttled) `invalid_credentials`. */
  async admit(attempt: Attempt): Promise<void> {
    const ip = attempt.ip ?? 'unknown';
    const failures = await this.#limits.remaining('signin.ip.failures', ip);
    if (!failures.allowed) throw this.#limited('signin.ip.failures', failures);
    const all = await this.#limits.take('signin.ip', ip);
    if (!all.allowed) throw this.#limited('signin.ip', all);

    if (attempt.device === undefined) this.admitHash('signin');

    const throttled =
      attempt.device !== undefined
        ? !(await this.#limits.remaining('signin.device', attempt.device)).allowed
        : !(await this.#accountAllowed(attempt.identifier));
    if (throttled) {
      this.#onEvent('security.signin_throttled', { knownDevice: attempt.device !== undefined });
      // The same answer after the same time as a wrong password, without computing a hash.
      await sleep(this.#hasher.typicalMs());
      throw new SignetError('invalid_credentials');
    }
  }

  /** Admission control for a hash nobody has vouched for yet (sign-up, or sign-in from an unknown device). */
  admitHash(kind: 'signup' | 'signin' = 'signup'): void {
    const wait = this.#hasher.expectedWaitMs('normal');
    if (wait > this.#config.hashQueueBudgetMs) {
      this.#onEvent(`security.${kind}_shed`, { expectedWaitMs: Math.round(wait) });
      throw new SignetError('unavailable', { message: 'Too many requests right now; retry shortly', retryAfter: Math.max(1, Math.ceil(wait / 1000)) });
    }
  }

  /**
   * Password re-checks by a signed-in user (password change, MFA setup and
   * disable): a stolen access token must not become a password oracle.
   */
  async reauthenticate(userId: string, check: () => Promise<boolean>): Promise<boolean> {
    const budget = await this.#limits.remaining('reauth.user', userId);
    if (!budget.allowed) throw new SignetError('rate_limited', { retryAfter: budget.resetSeconds, rateLimit: budget });
    const ok = await check();
    if (!ok) await this.#limits.take('reauth.user', userId);
    return ok;
  }

  async failed(attempt: Attempt): Promise<void> {
    await this.#limits.take('signin.ip.failures', attempt.ip ?? 'unknown');
    if (attempt.device !== undefined) await this.#limits.take('signin.device', attempt.device);
    else for (const name of ACCOUNT_WINDOWS) await this.#limits.take(name, attempt.identifier);
  }

  /**
   * A known device's success clears only its own budget: the account's counters
   * keep throttling the attacker elsewhere. A success from an unknown device
   * (possible only while the account was not throttled) clears the account's.
   */
  async succeeded(attempt: Attempt): Promise<void> {
    if (attempt.device !== undefined) await this.#limits.reset('signin.device', attempt.device);
    else for (const name of ACCOUNT_WINDOWS) await this.#limits.reset(name, attempt.identifier);
  }

  async #accountAllowed(identifier: string): Promise<boolean> {
    for (const name of ACCOUNT_WINDOWS) if (!(await this.#limits.remaining(name, identifier)).allowed) return false;
    return true;
  }

  #limited(name: LimitName, decision: Decision): SignetError {
    this.#onEvent('security.client_rate_limited', { limit: name });
    return new SignetError('rate_limited', { retryAfter: decision.resetSeconds, rateLimit: decision });
  }
}
