import type { Logger } from 'pino';

export type Dependency = 'database' | 'redis' | 'mail queue';

export interface OutageLogOptions {
  logger: Logger;
  /**
   * How to tell a dependency is back, checked every `probeMs` while it is
   * down (the database: a `select 1`). A dependency without a probe is back
   * when `recovered()` is called (Redis: its `ready` event).
   */
  probes?: Partial<Record<Dependency, () => Promise<void>>>;
  /** What an outage means for clients, added to its first line (Redis: limits fall back to memory). */
  consequences?: Partial<Record<Dependency, string>>;
  /** Summary period, ms. Default 10 000 (as flood events). */
  windowMs?: number;
  probeMs?: number;
}

interface Outage {
  since: number;
  /** Failures since the last summary line. */
  count: number;
  total: number;
  summary: NodeJS.Timeout;
  probe: NodeJS.Timeout | undefined;
}

/**
 * Logs a dependency outage the way flood events are logged: one error line
 * when it starts (with the error), then one line per window with how many
 * failures it caused, then one line when the dependency answers again. During
 * an outage every request fails the same way: a stack per request would bury
 * the one line that matters and cost CPU the recovery needs.
 *
 * @example
 * outages.failed('database', error);   // first: level 50 "database unavailable" with the error
 * outages.failed('database', error);   // counted: "database unavailable: 41 failures in 10 s"
 * outages.recovered('database');       // level 30 "database available again after 20 s (42 failures)"
 */
export class OutageLog {
  readonly #logger: Logger;
  readonly #probes: OutageLogOptions['probes'];
  readonly #consequences: OutageLogOptions['consequences'];
  readonly #windowMs: number;
  readonly #probeMs: number;
  readonly #down = new Map<Dependency, Outage>();

  constructor(options: OutageLogOptions) {
    this.#logger = options.logger;
    this.#probes = options.probes ?? {};
    this.#consequences = options.consequences ?? {};
    this.#windowMs = options.windowMs ?? 10_000;
    this.#probeMs = options.probeMs ?? 1000;
  }

  isDown(dependency: Dependency): boolean {
    return this.#down.has(dependency);
  }

  failed(dependency: Dependency, error: unknown): void {
    const outage = this.#down.get(dependency);
    if (outage) {
      outage.count += 1;
      outage.total += 1;
      return;
    }
    const cause = error instanceof Error ? { type: error.name, message: error.message, code: (error as { code?: unknown }).code } : { message: String(error) };
    const consequence = this.#consequences?.[dependency];
    this.#logger.error({ dependency, error: cause }, `${dependency} unavailable${consequence ? `: ${consequence}` : ''}`);
    const summary = setInterval(() => this.#summarise(dependency), this.#windowMs);
    summary.unref();
    const check = this.#probes?.[dependency];
    const probe = check
      ? setInterval(() => {
          check().then(
            () => this.recovered(dependency),
            () => undefined,
          );
        }, this.#probeMs)
      : undefined;
    probe?.unref();
    this.#down.set(dependency, { since: Date.now(), count: 0, total: 1, summary, probe });
  }

  recovered(dependency: Dependency): void {
    const outage = this.#down.get(dependency);
    if (!outage) return;
    this.#down.delete(dependency);
    clearInterval(outage.summary);
    clearInterval(outage.probe);
    const seconds = Math.round((Date.now() - outage.since) / 100) / 10;
    this.#logger.info(
      { dependency, downSeconds: seconds, failures: outage.total },
      `${dependency} available again after ${seconds} s (${outage.total} failures)`,
    );
  }

  /** Stops the timers (at shutdown); an outage still going is summarised one last time. */
  close(): void {
    for (const dependency of [...this.#down.keys()]) {
      this.#summarise(dependency);
      const outage = this.#down.get(dependency)!;
      clearInterval(outage.summary);
      clearInterval(outage.probe);
    }
    this.#down.clear();
  }

  #summarise(dependency: Dependency): void {
    const outage = this.#down.get(dependency);
    if (!outage || outage.count === 0) return;
    const windowSeconds = this.#windowMs / 1000;
    this.#logger.warn(
      { dependency, count: outage.count, windowSeconds, downSeconds: Math.round((Date.now() - outage.since) / 1000) },
      `${dependency} unavailable: ${outage.count} failures in the last ${windowSeconds} s`,
    );
    outage.count = 0;
  }
}
