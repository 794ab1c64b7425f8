import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, createHmac } from 'node:crypto';
import type { Db } from '../store/db.js';
import { appendAudit, auditHead, iterateAudit, listAuditForUser, reanchorAudit } from '../store/audit.js';
import type { AuditRow, NewAuditEntry } from '../store/audit.js';
import type { Clock } from './clock.js';
import { uuidv7 } from './crypto.js';

/** `prev_hash` of entry 1 (also written by migration 003, which may not import this). */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Bumped if the hashed serialisation ever changes, so old and new entries never
 * collide. v1 (Signet 0.1) was a plain SHA-256, which anyone who can write the
 * database can recompute; v2 is an HMAC under a key derived from the at-rest
 * secret (core/secrets.ts), which they cannot.
 */
const CHAIN_FORMAT = 'signet-audit-v2';
const LEGACY_FORMAT = 'signet-audit-v1';

/** Issue 5 §8: sign-in outcomes, security alarms, account and session changes. */
const AUDITED = /^(auth|security|account|session|user|admin)\./;
/** Never stored, whatever the value: a field named like a credential may hold one. */
const SECRET_FIELD = /password|token|secret|code|hash/i;
const EMAIL_FIELD = /e-?mail/i;
/** Defence in depth: an address inside any other string value drops that field too. */
const EMAIL_VALUE = /[^\s@<>"']+@[^\s@<>"']+\.[^\s@<>"']+/;
/** Fields lifted into their own columns. */
const COLUMNS = new Set(['userId', 'sessionId', 'ip']);
const MAX_STRING = 256;
const MAX_DEPTH = 3;
/** Entries per transaction: one commit (one fsync on SQLite) for a burst of events. */
const BATCH = 100;
/** Beyond this, new entries are dropped and counted rather than let memory grow during a flood. */
const MAX_PENDING = 10_000;

/** An entry as the API and CLI see it. */
export interface AuditEntry {
  seq: number;
  id: string;
  /** Milliseconds since the epoch. */
  at: number;
  event: string;
  userId: string | null;
  sessionId: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

export type AuditVerification = { ok: true; entries: number } | { ok: false; brokenAt: number; reason: string };

/** An entry's hash as recorded outside the database (`signet audit head`), to check the log against. */
export interface AuditAnchor {
  seq: number;
  hash: string;
}

export interface AuditLogOptions {
  db: Db;
  clock: Clock;
  /**
   * MAC keys of the chain: the first keys new entries; all of them verify (a
   * key derived from a key file kept after SIGNET_SECRET was set).
   */
  keys: readonly Buffer[];
  /**
   * Entries that could not be written (store down, queue full). Gets the error
   * and how many entries were lost; never the entries' contents.
   */
  onError: (error: unknown, lost: number) => void;
}

const clientScope = new AsyncLocalStorage<{ ip: string | null }>();

/**
 * Runs `fn` with the client's address in scope: events recorded inside it (and
 * in anything it awaits) carry that ip unless their fields give one. The HTTP
 * layer wraps each request, so core modules need not pass the ip around.
 *
 * @example
 * app.use((c, next) => withClientIp(c.var.client.ip, next));
 */
export function withClientIp<T>(ip: string | null, fn: () => T): T {
  return clientScope.run({ ip }, fn);
}

/**
 * The tamper-evident audit log (issue 5 §8). Each entry's hash is a MAC, under
 * a key derived from the at-rest secret, over its content and the previous
 * entry's hash, so altering, deleting or reordering rows is found by
 * `verify()`, and someone who can write the database but lacks the secret
 * cannot recompute the chain. Someone who has the secret too can; recording
 * the head outside the database (`head()`, `signet audit head`) and verifying
 * against it catches that as well.
 *
 * @example
 * const audit = new AuditLog({ db, clock, keys: [chainKey], onError: (err, lost) => logger.error({ err, lost }, 'audit write failed') });
 * audit.record('auth.signin_failed', { reason: 'wrong_password', userId });
 * await audit.flush();
 * await audit.verify(); // { ok: true, entries: 1 }
 */
export class AuditLog {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #keys: readonly Buffer[];
  readonly #onError: AuditLogOptions['onError'];
  #pending: NewAuditEntry[] = [];
  #draining: Promise<void> | undefined;
  #overflow = 0;
  #closed = false;

  constructor(options: AuditLogOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    if (options.keys.length === 0) throw new TypeError('AuditLog: `keys` needs at least one key');
    this.#keys = options.keys;
    this.#onError = options.onError;
  }

  /**
   * Queues an event if it is one the log keeps. Returns at once and never
   * throws: a sign-in must not fail or wait because its audit entry did.
   */
  record(event: string, fields: Record<string, unknown>): void {
    try {
      if (!AUDITED.test(event)) return;
      if (this.#closed) return this.#report(new Error('audit log closed'), 1);
      if (this.#pending.length >= MAX_PENDING) {
        this.#overflow += 1;
        return;
      }
      this.#pending.push(this.#entry(event, fields));
      this.#draining ??= this.#drain();
    } catch (error) {
      this.#report(error, 1);
    }
  }

  /** Resolves once everything recorded so far is written (or reported lost). */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /** Writes what is queued; later events are reported lost. Call before closing the store. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  /** A user's entries, newest first. `before` is a seq from an earlier page. */
  async forUser(userId: string, options: { limit?: number; before?: number | undefined } = {}): Promise<AuditEntry[]> {
    const rows = await listAuditForUser(this.#db, userId, { limit: options.limit ?? 50, before: options.before });
    return rows.map(toEntry);
  }

  /**
   * Walks the chain from entry 1 and reports the first broken link: a missing
   * seq (deleted row), a `prev_hash` that is not the previous entry's hash
   * (reordered or forged), a hash that does not match the entry under the
   * chain's key (altered, or rewritten by someone without the key), or an
   * `anchor` recorded outside the database that the log no longer matches.
   * Entries appended while it runs are left for the next run.
   */
  async verify(options: { anchor?: AuditAnchor } = {}): Promise<AuditVerification> {
    // The head first: every entry up to its seq is committed (same transaction).
    const head = await auditHead(this.#db);
    const { anchor } = options;
    if (anchor && anchor.seq > head.seq) return broken(head.seq + 1, `the anchor names entry ${anchor.seq}, the log ends at ${head.seq} (truncated)`);
    let expected = 1;
    let prev = GENESIS_HASH;
    for await (const row of iterateAudit(this.#db, { upTo: head.seq })) {
      if (row.seq !== expected) {
        return broken(expected, row.seq > expected ? `entry ${expected} is missing` : `unexpected seq ${row.seq}`);
      }
      if (row.prev_hash !== prev) return broken(row.seq, 'prev_hash does not match the previous entry (reordered or forged)');
      if (!this.#keys.some((key) => entryHash(row, key) === row.hash)) {
        return broken(
          row.seq,
          legacyEntryHash(row) === row.hash
            ? 'the entry carries an unkeyed hash of Signet 0.1 (run `signet audit reanchor` once after upgrading, or it was rewritten without the key)'
            : 'hash does not match the entry (altered)',
        );
      }
      if (anchor && row.seq === anchor.seq && row.hash !== anchor.hash)
        return broken(row.seq, 'the entry does not match the anchor recorded outside the database');
      prev = row.hash;
      expected += 1;
    }
    // Deleting the newest entries leaves no gap; the head still knows how far the log went.
    if (expected - 1 < head.seq) return broken(expected, `entries ${expected}–${head.seq} are missing (log truncated)`);
    if (head.hash !== prev) return broken(head.seq, 'the last entry does not match the recorded head');
    return { ok: true, entries: head.seq };
  }

  /** The newest entry's seq and hash: record it outside the database (see docs/security.md) and pass it to `verify`. */
  async head(): Promise<AuditAnchor> {
    const { seq, hash } = await auditHead(this.#db);
    return { seq, hash };
  }

  /**
   * Re-keys a log written by Signet 0.1, whose entries carry plain SHA-256
   * hashes: checks the whole chain as it was (keyed or not), then rewrites
   * every hash under the current key, in one transaction. Run once after the
   * upgrade (`signet audit reanchor`); refused when the chain is already broken,
   * so a tampered log is never laundered.
   */
  async reanchor(): Promise<{ entries: number; rekeyed: number }> {
    return reanchorAudit(this.#db, (row, prevHash, previous) => {
      const keyed = this.#keys.some((key) => entryHash(row, key) === row.hash);
      if (row.prev_hash !== previous || (!keyed && legacyEntryHash(row) !== row.hash)) {
        throw new Error(`the audit chain is broken at entry ${row.seq}; nothing was changed (see \`signet audit verify\`)`);
      }
      return entryHash({ ...row, prev_hash: prevHash }, this.#keys[0]);
    });
  }

  #entry(event: string, fields: Record<string, unknown>): NewAuditEntry {
    const at = this.#clock.now();
    const ip = typeof fields.ip === 'string' ? fields.ip : (clientScope.getStore()?.ip ?? null);
    return {
      id: uuidv7(at),
      at,
      event,
      user_id: typeof fields.userId === 'string' ? fields.userId : null,
      session_id: typeof fields.sessionId === 'string' ? fields.sessionId : null,
      ip,
      details: canonicalJson(sanitize(Object.fromEntries(Object.entries(fields).filter(([key]) => !COLUMNS.has(key))), 0) ?? {}),
    };
  }

  // One writer per instance, in batches; across instances the head row orders writers.
  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, BATCH);
        try {
          await appendAudit(this.#db, batch, (entry) => entryHash(entry, this.#keys[0]));
        } catch (error) {
          this.#report(error, batch.length);
        }
        if (this.#overflow > 0) {
          this.#report(new Error(`audit queue full (${MAX_PENDING} entries waiting)`), this.#overflow);
          this.#overflow = 0;
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }

  #report(error: unknown, lost: number): void {
    try {
      this.#onError(error, lost);
    } catch {
      /* a failing logger must not fail the caller either */
    }
  }
}

/**
 * HMAC-SHA256 (hex) under the chain key over a JSON array of every column but
 * the hash itself. JSON of an array of strings, numbers and nulls is
 * unambiguous, and `details` is hashed as the exact text stored.
 */
export function entryHash(entry: Omit<AuditRow, 'hash'>, key: Buffer): string {
  return createHmac('sha256', key)
    .update(JSON.stringify(chainFields(CHAIN_FORMAT, entry)))
    .digest('hex');
}

/** Signet 0.1's unkeyed hash: read only to tell a log that needs `reanchor` from a tampered one. */
export function legacyEntryHash(entry: Omit<AuditRow, 'hash'>): string {
  return createHash('sha256')
    .update(JSON.stringify(chainFields(LEGACY_FORMAT, entry)))
    .digest('hex');
}

function chainFields(format: string, entry: Omit<AuditRow, 'hash'>): unknown[] {
  return [format, entry.seq, entry.id, entry.at, entry.event, entry.user_id, entry.session_id, entry.ip, entry.details, entry.prev_hash];
}

function broken(seq: number, reason: string): AuditVerification {
  return { ok: false, brokenAt: seq, reason };
}

function toEntry(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    id: row.id,
    at: row.at,
    event: row.event,
    userId: row.user_id,
    sessionId: row.session_id,
    ip: row.ip,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

/**
 * Only what is safe to keep forever: secret-named and email fields are dropped,
 * strings are capped, and anything that is not plain data (errors, buffers,
 * functions) is left out. Returns undefined for a value to drop.
 */
function sanitize(value: unknown, depth: number): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string') return EMAIL_VALUE.test(value) ? undefined : value.slice(0, MAX_STRING);
  if (depth >= MAX_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((item) => sanitize(item, depth + 1)).filter((item) => item !== undefined);
  if (typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const kept: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (SECRET_FIELD.test(key) || EMAIL_FIELD.test(key)) continue;
    const clean = sanitize(item, depth + 1);
    if (clean !== undefined) kept[key] = clean;
  }
  return kept;
}

/** JSON with keys sorted at every level: equal details, equal text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}
