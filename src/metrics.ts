import type { HashPool } from './core/hash-pool.js';
import type { SessionCache } from './core/session-cache.js';

/** Upper bounds of the request-duration histogram, seconds. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Events that happen for an existing account only, after a request anyone can
 * send (forgot password, resend verification, sign-up in the
 * enumeration-resistant mode): a counter of them would tell whoever reads it
 * whether an address has an account, which the answers themselves never do.
 * They stay in the log and the audit trail; mail problems show in `signet mail
 * failed` and in the log.
 */
const EXISTENCE_DEPENDENT = new Set([
  'account.password_reset_requested',
  'auth.email_signin_requested',
  'mail.sent',
  'mail.retry',
  'mail.failed',
  'mail.suppressed',
]);

/**
 * With EMAIL_VERIFICATION=required a sign-up for an address that has an account
 * gets the same 201 as a new one: both count as one accepted sign-up.
 */
const COUNTED_AS: Record<string, string> = {
  'user.signed_up': 'user.signup_accepted',
  'user.signup_existing_email': 'user.signup_accepted',
};

interface Series {
  count: number;
  sum: number;
  buckets: number[];
  /** `requests` keys of this route by status. */
  statuses: Map<number, string>;
  labels: string;
}

/**
 * Prometheus text exposition (format 0.0.4) of what an operator of a sign-in
 * service watches: traffic and latency per route and status, the password-hash
 * queue, and the process. Labels are route patterns, never raw paths.
 */
export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #durations = new Map<string, Series>();
  readonly #byRoute = new Map<string, Series>();
  readonly #events = new Map<string, number>();
  readonly #pool: HashPool;
  readonly #sessionCache: SessionCache;

  constructor(options: { pool: HashPool; sessionCache: SessionCache }) {
    this.#pool = options.pool;
    this.#sessionCache = options.sessionCache;
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    // The label strings are built once per route and status, not per request.
    const routeKey = `${method} ${route}`;
    let series = this.#byRoute.get(routeKey);
    if (!series) {
      const labels = `method="${method}",route="${escape(route)}"`;
      this.#durations.set(labels, (series = { count: 0, sum: 0, buckets: BUCKETS.map(() => 0), statuses: new Map(), labels }));
      this.#byRoute.set(routeKey, series);
    }
    const statusKey = series.statuses.get(status) ?? `${series.labels},status="${status}"`;
    series.statuses.set(status, statusKey);
    this.#requests.set(statusKey, (this.#requests.get(statusKey) ?? 0) + 1);
    series.count++;
    series.sum += seconds;
    for (let i = BUCKETS.length - 1; i >= 0 && seconds <= BUCKETS[i]; i--) series.buckets[i]++;
  }

  /** Counts a security or account event (`auth.signin_failed`, `security.refresh_token_reuse`, …). */
  event(name: string): void {
    if (EXISTENCE_DEPENDENT.has(name)) return;
    const counted = COUNTED_AS[name] ?? name;
    this.#events.set(counted, (this.#events.get(counted) ?? 0) + 1);
  }

  render(): string {
    const lines: string[] = [];
    lines.push('# HELP signet_http_requests_total HTTP requests by route pattern and status.', '# TYPE signet_http_requests_total counter');
    for (const [labels, n] of this.#requests) lines.push(`signet_http_requests_total{${labels}} ${n}`);
    lines.push('# HELP signet_http_request_duration_seconds Time to answer, by route pattern.', '# TYPE signet_http_request_duration_seconds histogram');
    for (const [labels, s] of this.#durations) {
      BUCKETS.forEach((bound, i) => lines.push(`signet_http_request_duration_seconds_bucket{${labels},le="${bound}"} ${s.buckets[i]}`));
      lines.push(`signet_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${s.count}`);
      lines.push(`signet_http_request_duration_seconds_sum{${labels}} ${s.sum}`, `signet_http_request_duration_seconds_count{${labels}} ${s.count}`);
    }
    lines.push('# HELP signet_events_total Account and security events.', '# TYPE signet_events_total counter');
    for (const [name, n] of this.#events) lines.push(`signet_events_total{event="${escape(name)}"} ${n}`);
    const pool = this.#pool.stats();
    lines.push(
      '# HELP signet_hash_workers Password-hash worker threads.',
      '# TYPE signet_hash_workers gauge',
      `signet_hash_workers ${pool.size}`,
      '# HELP signet_hash_busy Hashes being computed now.',
      '# TYPE signet_hash_busy gauge',
      `signet_hash_busy ${pool.busy}`,
      '# HELP signet_hash_queued Hashes waiting for a worker.',
      '# TYPE signet_hash_queued gauge',
      `signet_hash_queued ${pool.queued}`,
      '# HELP signet_hash_median_seconds Typical duration of one hash: median of the latest 32.',
      '# TYPE signet_hash_median_seconds gauge',
      `signet_hash_median_seconds ${pool.medianMs / 1000}`,
      '# HELP signet_hash_completed_total Hashes computed.',
      '# TYPE signet_hash_completed_total counter',
      `signet_hash_completed_total ${pool.completed}`,
    );
    const cache = this.#sessionCache.stats();
    lines.push(
      '# HELP signet_session_cache_entries Live sessions held for token reads.',
      '# TYPE signet_session_cache_entries gauge',
      `signet_session_cache_entries ${cache.size}`,
      '# HELP signet_session_cache_hits_total Token reads answered from the session cache.',
      '# TYPE signet_session_cache_hits_total counter',
      `signet_session_cache_hits_total ${cache.hits}`,
      '# HELP signet_session_cache_misses_total Token reads that went to the database.',
      '# TYPE signet_session_cache_misses_total counter',
      `signet_session_cache_misses_total ${cache.misses}`,
      '# HELP signet_session_cache_enabled 1 while the cache may store (0: off, or invalidations from other instances cannot arrive).',
      '# TYPE signet_session_cache_enabled gauge',
      `signet_session_cache_enabled ${cache.enabled ? 1 : 0}`,
    );
    const memory = process.memoryUsage();
    lines.push(
      '# HELP process_resident_memory_bytes Resident memory size in bytes.',
      '# TYPE process_resident_memory_bytes gauge',
      `process_resident_memory_bytes ${memory.rss}`,
      '# HELP nodejs_heap_used_bytes V8 heap in use.',
      '# TYPE nodejs_heap_used_bytes gauge',
      `nodejs_heap_used_bytes ${memory.heapUsed}`,
      '# HELP process_uptime_seconds Seconds since the process started.',
      '# TYPE process_uptime_seconds gauge',
      `process_uptime_seconds ${process.uptime()}`,
    );
    return `${lines.join('\n')}\n`;
  }
}

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
