import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SignetConfig } from '../config.js';
import type { Db } from '../store/db.js';
import { prune } from '../store/retention.js';
import type { PruneKind } from '../store/retention.js';
import type { Clock } from './clock.js';

const BATCH = 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** First run a minute after start (not on the start's critical path), then hourly. */
const FIRST_RUN_MS = 60_000;
const INTERVAL_MS = 60 * 60_000;

export interface RetentionOptions {
  db: Db;
  clock: Clock;
  config: Pick<SignetConfig, 'retentionDays'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * Keeps every table bounded: rows no request can use any more (ended and
 * expired sessions, rotated and expired refresh tokens, expired verification
 * and reset tokens, MFA challenges and abandoned TOTP setups, sent and failed
 * mail) are deleted once they are RETENTION_DAYS past their end. The audit log
 * is kept whole (its chain is the point). Every instance runs it; deleting
 * twice is harmless.
 */
export class Retention {
  readonly #options: RetentionOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<Record<PruneKind, number>> | undefined;

  constructor(options: RetentionOptions) {
    this.#options = options;
  }

  /** Prunes everything due now; resolves with the rows deleted per kind. One run at a time. */
  async run(): Promise<Record<PruneKind, number>> {
    this.#running ??= this.#prune().finally(() => (this.#running = undefined));
    return this.#running;
  }

  start(): void {
    const tick = (delay: number) => {
      this.#timer = setTimeout(() => {
        this.run()
          .catch((error: unknown) => this.#options.onEvent('retention.failed', { error: error instanceof Error ? error.message : String(error) }))
          .finally(() => tick(INTERVAL_MS));
      }, delay);
      this.#timer.unref();
    };
    tick(FIRST_RUN_MS);
  }

  /** Stops scheduling and waits for a run in progress. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  async #prune(): Promise<Record<PruneKind, number>> {
    const { db, clock, config, onEvent } = this.#options;
    const cutoff = clock.now() - config.retentionDays * DAY_MS;
    const counts = {} as Record<PruneKind, number>;
    for (const kind of Object.keys(prune) as PruneKind[]) {
      counts[kind] = 0;
      for (;;) {
        const n = await prune[kind](db, cutoff, BATCH);
        counts[kind] += n;
        if (n < BATCH) break;
        // Let requests in between batches.
        await yieldToEventLoop();
      }
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (total > 0) onEvent('retention.pruned', { ...counts });
    return counts;
  }
}
