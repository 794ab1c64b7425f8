import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Decision, LimitName, Limits } from './limits.js';
import { networkKey } from './limits.js';
import type { PasswordHasher } from './passwords.js';

const ACCOUNT_WINDOWS: LimitName[] = ['signin.account.minute', 'signin.account.hour', 'signin.account.day'];

/** Who is trying: the account the identifier names, the client, and its device id if it showed a valid device cookie. */
export interface Attempt {
  /** `user:<id>` for an existing account (whichever identifier was typed); `email:<lower-cased>` or `username:<lower-cased>` otherwise. */
  identifier: string;
  ip: string | null;
  device: string | undefined;
}

export type GuardEventSink = (event: string, fields: Record<string, unknown>) => void;

export interface SignInGuardOptions {
  limits: Limits;
  hasher: PasswordHasher;
  config: Pick<SignetConfig, 'hashQueueBudgetMs'>;
  onEvent: GuardEventSink;
}

/**
 * Brute-force and credential-stuffing defence for every password check
 * (sign-in, the OAuth password grant, MFA sign-in's first step, and a signed-in
 * user's re-authentication).
 *
 * Budgets are spent before the password is checked and given back when it is
 * right ("consume first, refund on success"): a burst of concurrent attempts
 * cannot all pass a check that counts failures only after the hash, so an
 * account that allows five failures a minute gets exactly five passwords
 * checked, however many arrive together.
 *
 * - Per client network: all attempts, and attempts not proven right, are
 *   limited; past either the client gets `429`, which says nothing about any account.
 * - Per account: attempts in growing windows. A throttled attempt answers
 *   exactly like a wrong password (the caller pads its timing), without
 *   spending a hash (no oracle, no CPU).
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
  readonly #onEvent: GuardEventSink;

  constructor(options: SignInGuardOptions) {
    this.#limits = options.limits;
    this.#hasher = options.hasher;
    this.#config = options.config;
    this.#onEvent = options.onEvent;
  }

  /**
   * Spends the attempt's budgets before any hashing. Throws `rate_limited`,
   * `unavailable` or (throttled) `invalid_credentials`. An admitted attempt
   * must end in `succeeded()` when the password is right; a wrong one keeps
   * what it spent.
   */
  async admit(attempt: Attempt): Promise<void> {
    const network = networkKey(attempt.ip);
    const all = await this.#limits.take('signin.ip', network);
    if (!all.allowed) throw this.#limited('signin.ip', all);
    const unproven = await this.#limits.take('signin.ip.failures', network);
    if (!unproven.allowed) throw this.#limited('signin.ip.failures', unproven);

    if (attempt.device === undefined) {
      try {
        this.admitHash('signin');
      } catch (error) {
        // Shed before anything was checked: the attempt proved nothing either way.
        await this.#limits.refund('signin.ip.failures', network);
        throw error;
      }
    }

    const windows: LimitName[] = attempt.device !== undefined ? ['signin.device'] : ACCOUNT_WINDOWS;
    const key = attempt.device ?? attempt.identifier;
    for (const [i, name] of windows.entries()) {
      if ((await this.#limits.take(name, key)).allowed) continue;
      // The windows already passed keep counting checked attempts only.
      for (const passed of windows.slice(0, i)) await this.#limits.refund(passed, key);
      this.#onEvent('security.signin_throttled', { knownDevice: attempt.device !== undefined });
      throw new SignetError('invalid_credentials', { cause: new Error('throttled') });
    }
  }

  /**
   * The password was right. A known device's success clears only its own
   * budget: the account's counters keep throttling the attacker elsewhere. A
   * success from an unknown device (possible only while the account was not
   * throttled) clears the account's.
   */
  async succeeded(attempt: Attempt): Promise<void> {
    await this.#limits.refund('signin.ip.failures', networkKey(attempt.ip));
    if (attempt.device !== undefined) await this.#limits.reset('signin.device', attempt.device);
    else for (const name of ACCOUNT_WINDOWS) await this.#limits.reset(name, attempt.identifier);
  }

  /**
   * Forgets an account's failed sign-ins (an operator's `users unlock`). The
   * counters live in Redis when REDIS_URL is set, so the CLI reaches the
   * servers' counters; without Redis each server keeps its own, and only a
   * restart clears them.
   */
  async unlock(userId: string): Promise<void> {
    for (const name of ACCOUNT_WINDOWS) await this.#limits.reset(name, `user:${userId}`);
  }

  /** An admitted attempt whose password was never checked (the client left, the server is stopping): it costs nothing. */
  async unchecked(attempt: Attempt): Promise<void> {
    await this.#limits.refund('signin.ip.failures', networkKey(attempt.ip));
    if (attempt.device !== undefined) await this.#limits.refund('signin.device', attempt.device);
    else for (const name of ACCOUNT_WINDOWS) await this.#limits.refund(name, attempt.identifier);
  }

  /** Admission control for a hash nobody has vouched for yet (sign-up, sign-in from an unknown device, re-authentication). */
  admitHash(kind: 'signup' | 'signin' | 'reauth' = 'signup'): void {
    const wait = this.#hasher.expectedWaitMs('normal');
    if (wait > this.#config.hashQueueBudgetMs) {
      this.#onEvent(`security.${kind}_shed`, { expectedWaitMs: Math.round(wait) });
      throw new SignetError('unavailable', { message: 'Too many requests right now; retry shortly', retryAfter: Math.max(1, Math.ceil(wait / 1000)) });
    }
  }

  /**
   * Password re-checks by a signed-in user (password change, MFA setup and
   * disable): a stolen access token must not become a password oracle, and one
   * account must not be able to keep the hash workers busy for everyone else.
   * Every attempt, right or wrong, spends the account's and the network's
   * budget before the hash, and waits its turn behind admission control.
   */
  async reauthenticate(userId: string, ip: string | null, check: () => Promise<boolean>): Promise<boolean> {
    this.admitHash('reauth');
    for (const [name, key] of [
      ['reauth.ip', networkKey(ip)],
      ['reauth.user', userId],
    ] as const) {
      const budget = await this.#limits.take(name, key);
      if (!budget.allowed) throw this.#limited(name, budget);
    }
    return check();
  }

  #limited(name: LimitName, decision: Decision): SignetError {
    this.#onEvent('security.client_rate_limited', { limit: name });
    return new SignetError('rate_limited', { retryAfter: decision.resetSeconds, rateLimit: decision });
  }
}
