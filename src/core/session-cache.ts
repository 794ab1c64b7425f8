import type { Session, UserRecord } from '../model.js';

export interface LiveSession {
  user: UserRecord;
  session: Session;
}

interface Entry {
  live: LiveSession;
  /** Until when this entry may answer (ms since the epoch). */
  until: number;
}

export interface SessionCacheOptions {
  /** How long an entry may answer without the database: the staleness bound when an invalidation is lost. */
  ttlMs: number;
  /** Entries kept at most; the least recently used go first. */
  max: number;
}

/**
 * Live sessions with their users, kept in this process for the reads that
 * check a token on every request (`GET /auth/me` and the other GET routes).
 * Correctness comes from invalidation, not from the short lifetime: every
 * session end and every account event drops what it touches, here and (over
 * Redis, see CacheBus) on every other instance. The lifetime bounds the harm
 * of an invalidation that never arrives.
 *
 * A read that raced an invalidation is not stored: `epoch()` is taken before
 * the database read and `put` refuses it when anything was dropped since.
 */
export class SessionCache {
  readonly #entries = new Map<string, Entry>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #ttlMs: number;
  readonly #max: number;
  #epoch = 0;
  #enabled = true;
  #hits = 0;
  #misses = 0;

  constructor(options: SessionCacheOptions) {
    this.#ttlMs = options.ttlMs;
    this.#max = options.max;
  }

  /** For /metrics: entries, answers from memory and reads that went to the database. */
  stats(): { size: number; hits: number; misses: number; enabled: boolean } {
    return { size: this.#entries.size, hits: this.#hits, misses: this.#misses, enabled: this.#enabled && this.#ttlMs > 0 };
  }

  epoch(): number {
    return this.#epoch;
  }

  /** The cached live session, if it still may answer at `now` (else the caller reads the database). */
  get(sessionId: string, userId: string, now: number): LiveSession | undefined {
    const entry = this.#entries.get(sessionId);
    if (!entry || entry.until <= now || entry.live.user.id !== userId) {
      if (entry) this.#drop(sessionId);
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    // Least recently used first in the Map's order.
    this.#entries.delete(sessionId);
    this.#entries.set(sessionId, entry);
    return entry.live;
  }

  /** Stores a database answer read when the epoch was `epoch`, unless something was invalidated since. */
  put(live: LiveSession, epoch: number, now: number): void {
    if (!this.#enabled || this.#ttlMs <= 0 || epoch !== this.#epoch) return;
    const id = live.session.id;
    this.#drop(id);
    this.#entries.set(id, { live, until: now + this.#ttlMs });
    let ids = this.#byUser.get(live.user.id);
    if (!ids) this.#byUser.set(live.user.id, (ids = new Set()));
    ids.add(id);
    if (this.#entries.size > this.#max) this.#drop(this.#entries.keys().next().value as string);
  }

  forgetSessions(sessionIds: readonly string[]): void {
    this.#epoch++;
    for (const id of sessionIds) this.#drop(id);
  }

  forgetUser(userId: string): void {
    this.#epoch++;
    for (const id of this.#byUser.get(userId) ?? []) this.#drop(id);
  }

  /**
   * Drops everything; `enabled: false` also stops storing until enabled again
   * (while invalidations from other instances cannot arrive).
   */
  reset(enabled = this.#enabled): void {
    this.#epoch++;
    this.#enabled = enabled;
    this.#entries.clear();
    this.#byUser.clear();
  }

  #drop(sessionId: string): void {
    const entry = this.#entries.get(sessionId);
    if (!entry) return;
    this.#entries.delete(sessionId);
    const ids = this.#byUser.get(entry.live.user.id);
    ids?.delete(sessionId);
    if (ids?.size === 0) this.#byUser.delete(entry.live.user.id);
  }
}
