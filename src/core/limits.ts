import { isIP } from 'node:net';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';

/**
 * Every limit Signet applies, in one table (points per window, window in
 * seconds). Per-client limits answer `429`; per-account and per-address limits
 * are silent where an answer would reveal whether the account exists.
 *
 * Every point is spent before the work it guards starts (consume first), so a
 * burst of concurrent requests cannot all pass a check that only one of them
 * should pass; budgets that count failures give the point back on success.
 */
export const LIMIT_RULES = {
  /** Sign-in attempts per client network (any outcome): 429 beyond. Allows 20+ successful sign-ins a minute. */
  'signin.ip': { points: 60, duration: 60 },
  /**
   * Sign-in attempts per client network not (yet) proven right: spent when the
   * attempt starts, given back when the password is right. Credential stuffing
   * across many accounts from one source gets 429 beyond.
   */
  'signin.ip.failures': { points: 30, duration: 15 * 60 },
  /**
   * Attempts per account identifier (known or not, so an unknown account is
   * throttled at the same count), in three windows: the wait grows with the
   * failures. Spent when the attempt starts; a right password clears them.
   * Throttled attempts answer 401 invalid_credentials, even with the right password.
   */
  'signin.account.minute': { points: 5, duration: 60 },
  'signin.account.hour': { points: 20, duration: 60 * 60 },
  'signin.account.day': { points: 100, duration: 24 * 60 * 60 },
  /** Attempts from one known device (device cookie): its own budget, apart from the account's; a success clears it. */
  'signin.device': { points: 10, duration: 60 * 60 },
  /** Every password re-check by a signed-in user (password change, MFA setup/disable), right or wrong. */
  'reauth.user': { points: 10, duration: 15 * 60 },
  /** Every re-authentication from one client network, whatever the account. */
  'reauth.ip': { points: 30, duration: 15 * 60 },
  /** Sign-ups per client network. */
  'signup.ip': { points: 30, duration: 60 },
  /** Token refreshes per client network (many tabs behind one address are normal). */
  'refresh.ip': { points: 300, duration: 60 },
  /** MFA code attempts per client network. */
  'mfa.ip': { points: 30, duration: 15 * 60 },
  /**
   * MFA codes checked per account, whatever the mfaToken or network: someone holding
   * the password cannot keep minting challenges to guess codes. Spent before the
   * check, given back when the code is right. Past it, every code is invalid_code.
   */
  'mfa.account': { points: 10, duration: 15 * 60 },
  /**
   * Passkey requests per client network: every ceremony's options and its
   * response (sign-in, second factor, registration; JSON routes and pages
   * alike). Each options request stores a challenge, so this also bounds
   * how many one network can leave pending. A sign-in takes two.
   */
  'passkey.ip': { points: 120, duration: 60 },
  /** forgot/resend requests per client network: 429 beyond. */
  'mail.ip': { points: 10, duration: 15 * 60 },
  /** mails of one kind to one address: further requests answer 202 and send nothing. */
  'mail.address': { points: 3, duration: 60 * 60 },
  /** GET /auth/revocations per client network (a verifier polls it every 30 s by default). */
  'revocations.ip': { points: 600, duration: 60 },
  /** "Sign in with …" starts and callbacks per client network (each start stores a pending flow). */
  'federation.ip': { points: 60, duration: 60 },
  /** Emailed sign-in codes and links submitted per client network: 429 beyond (accounts have their own budget in the store). */
  'emailcode.ip': { points: 30, duration: 15 * 60 },
  /** Authorization requests (each may store a pending request): generous for SSO hops, not for a flood. */
  'authorize.ip': { points: 120, duration: 60 },
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
 * The key a per-client budget is counted under. IPv4 clients are counted per
 * address; IPv6 clients per /64, the smallest block a site is normally given
 * (RFC 6177), so rotating addresses within one allocation buys nothing.
 */
export function networkKey(ip: string | null): string {
  if (ip === null) return 'unknown';
  if (isIP(ip) !== 6) return ip;
  const hextets = expandIpv6(ip);
  return hextets ? `${hextets.slice(0, 4).join(':')}::/64` : ip;
}

/** The eight hextets of an IPv6 address (zone id dropped, an embedded IPv4 tail as two), or undefined. */
function expandIpv6(address: string): string[] | undefined {
  let text = address.split('%')[0].toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  return [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right].map((h) => Number.parseInt(h || '0', 16).toString(16));
}

/**
 * Rate limits on rate-limiter-flexible: in memory by default, in Redis (shared
 * by every instance) when REDIS_URL is set. If Redis cannot be reached the
 * limiter falls back to per-instance memory counters and says so in the log:
 * limits keep working, less strictly, rather than failing every sign-in.
 *
 * Both stores count atomically (memory: one event loop; Redis: one command per
 * consume), so of N concurrent `take` calls on a budget of P points exactly P
 * are allowed.
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

  /** Spends `points` of `key`'s budget under `name`; `allowed` is false once the budget is spent. */
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

  /** Gives back points spent by `take` (the attempt turned out right). */
  async refund(name: LimitName, key: string, points = 1): Promise<void> {
    if (!this.#options.enabled) return;
    await this.#limiters
      .get(name)!
      .reward(key, points)
      .catch(() => undefined);
  }

  /** Forgets `key` under `name` (after a successful sign-in). */
  async reset(name: LimitName, key: string): Promise<void> {
    if (!this.#options.enabled) return;
    await this.#limiters
      .get(name)!
      .delete(key)
      .catch(() => undefined);
  }
}

function decision(limit: number, res: RateLimiterRes, allowed: boolean): Decision {
  return { allowed, limit, remaining: Math.max(0, res.remainingPoints), resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
}
