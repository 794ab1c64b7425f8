import { SignetError } from '../errors.js';
import type { LimitName } from '../core/limits.js';
import { networkKey } from '../core/limits.js';
import type { AppContext } from './context.js';
import { addHeader } from './context.js';

/**
 * Spends one point of a per-client limit and sets the IETF RateLimit headers;
 * past the limit, `429 rate_limited` with Retry-After.
 */
export async function limitClient(c: AppContext, name: LimitName): Promise<void> {
  const { limits } = c.var.services;
  if (!limits.enabled) return;
  const key = networkKey(c.var.client.ip);
  const decision = await limits.take(name, key);
  addHeader(c, 'ratelimit-limit', String(decision.limit));
  addHeader(c, 'ratelimit-remaining', String(decision.remaining));
  addHeader(c, 'ratelimit-reset', String(decision.resetSeconds));
  if (!decision.allowed) throw new SignetError('rate_limited', { retryAfter: decision.resetSeconds, rateLimit: decision });
}
