import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';

/**
 * Every limit Signet applies, in one table (points per window, window in
 * seconds). Per-client limits answer `429`; per-account and per-address limits
 * are silent where an answer would reveal whether the account exists.
 */
export const LIMIT_RULES = {
  /** Sign-in attempts per client IP (any outcome): 429 beyond. Allows 20+ successful sign-ins a minute. */
  'signin.ip': { points: 60, duration: 60 },
  /** Failed sign-ins per client IP: credential stuffing across many accounts from one source. 429 beyond. */
  'signin.ip.failures': { points: 30, duration: 15 * 60 },
  /**
   * Failed sign-ins per account identifier (known or not, so an unknown account is
   * throttled at the same count), in three windows: the wait grows with the failures.
   * Throttled attempts answer 401 invalid_credentials, even with the right password.
   */
  'signin.account.minute': { points: 5, duration: 60 },
  'signin.account.hour': { points: 20, duration: 60 * 60 },
  'signin.account.day': { points: 100, duration: 24 * 60 * 60 },
  /** Failed sign-ins from one known device (device cookie): its own budget, apart from the account's. */
  'signin.device': { points: 10, duration: 60 * 60 },
  /** Wrong passwords when a signed-in user re-authenticates (password change, MFA setup/disable). */
  'reauth.user': { points: 10, duration: 15 * 60 },
  /** Sign-ups per client IP. */
  'signup.ip': { points: 30, duration: 60 },
  /** Token refreshes per client IP (many tabs behind one address are normal). */
  'refresh.ip': { points: 300, duration: 60 },
  /** MFA code attempts per client IP. */
  'mfa.ip': { points: 30, duration: 15 * 60 },
  /**
   * Wrong MFA codes per account, whatever the mfaToken or IP: someone holding the
   * password cannot keep minting challenges to guess codes. Past it, every code is invalid_code.
   */
  'mfa.account': { points: 10, duration: 15 * 60 },
  /** forgot/resend requests per client IP: 429 beyond. */
  'mail.ip': { points: 10, duration: 15 * 60 },
  /** mails of one kind to one address: further requests answer 202 and send nothing. */
  'mail.address': { points: 3, duration: 60 * 60 },
} as const satisfies Record<string, { points: number; duration: number }>;

export type LimitName = keyof typeof LIMIT_RULES;

export interface Decision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window frees a point (for Retry-After / RateLimit-Reset). */
  resetSeconds: number;
}

export interface LimitsOptions {
  enabled: boolean;
  redis?: Redis | undefined;
  prefix: string;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * Rate limits on rate-limiter-flexible: in memory by default, in Redis (shared
 * by every instance) when REDIS_URL is set. If Redis cannot be reached the
 * limiter falls back to per-instance memory counters and says so in the log:
 * limits keep working, less strictly, rather than failing every sign-in.
 */
export class Limits {
  readonly #limiters = new Map<LimitName, RateLimiterAbstract>();
  readonly #options: LimitsOptions;

  constructor(options: LimitsOptions) {
    this.#options = options;
    for (const [name, rule] of Object.entries(LIMIT_RULES) as [LimitName, (typeof LIMIT_RULES)[LimitName]][]) {
      const memory = new RateLimiterMemory({ ...rule, keyPrefix: `${options.prefix}:${name}` });
      const limiter = options.redis
        ? new RateLimiterRedis({
            ...rule,
            keyPrefix: `${options.prefix}:${name}`,
            storeClient: options.redis,
            rejectIfRedisNotReady: true,
            insuranceLimiter: memory,
          })
        : memory;
      this.#limiters.set(name, limiter);
    }
  }

  get enabled(): boolean {
    return this.#options.enabled;
  }

  /** Whether `key` has budget left under `name`, without spending any. */
  async remaining(name: LimitName, key: string): Promise<Decision> {
    const rule = LIMIT_RULES[name];
    if (!this.#options.enabled) return { allowed: true, limit: rule.points, remaining: rule.points, resetSeconds: 0 };
    try {
      const res = await this.#limiters.get(name)!.get(key);
      if (!res) return { allowed: true, limit: rule.points, remaining: rule.points, resetSeconds: 0 };
      return {
        allowed: res.consumedPoints < rule.points,
        limit: rule.points,
        remaining: Math.max(0, rule.points - res.consumedPoints),
        resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)),
      };
    } catch (error) {
      this.#options.onEvent('limits.error', { limit: name, error: error instanceof Error ? error.message : String(error) });
      return { allowed: true, limit: rule.points, remaining: 0, resetSeconds: 0 };
    }
  }

  /** Forgets `key` under `name` (after a successful sign-in). */
  async reset(name: LimitName, key: string): Promise<void> {
    if (!this.#options.enabled) return;
    await this.#limiters
      .get(name)!
      .delete(key)
      .catch(() => undefined);
  }

  /** Spends `points` of `key`'s budget under `name`. */
  async take(name: LimitName, key: string, points = 1): Promise<Decision> {
    const rule = LIMIT_RULES[name];
    if (!this.#options.enabled) return { allowed: true, limit: rule.points, remaining: rule.points, resetSeconds: 0 };
    try {
      const res = await this.#limiters.get(name)!.consume(key, points);
      return decision(rule.points, res, true);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return decision(rule.points, rejection, false);
      // Both Redis and the insurance limiter failed: let the request through, loudly.
      this.#options.onEvent('limits.error', { limit: name, error: rejection instanceof Error ? rejection.message : String(rejection) });
      return { allowed: true, limit: rule.points, remaining: 0, resetSeconds: 0 };
    }
  }
}

function decision(limit: number, res: RateLimiterRes, allowed: boolean): Decision {
  return { allowed, limit, remaining: Math.max(0, res.remainingPoints), resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
}
