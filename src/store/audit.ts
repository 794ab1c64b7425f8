import type { Kysely } from 'kysely';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/** One entry of the tamper-evident audit log (migration 003). */
export interface AuditRow {
  /** 1, 2, 3, …: no gaps, so a deleted row shows as a missing number. */
  seq: number;
  id: string;
  at: number;
  event: string;
  user_id: string | null;
  session_id: string | null;
  ip: string | null;
  /** Canonical JSON of the event's non-secret fields. */
  details: string;
  /** `hash` of the entry before (the genesis value for entry 1). */
  prev_hash: string;
  /** SHA-256 over the entry's content and `prev_hash`: see core/audit.ts. */
  hash: string;
}

/** The last entry's seq and hash, kept in one row that every append locks. */
export interface AuditHeadRow {
  id: number;
  seq: number;
  hash: string;
}

// Local to this repository so the audit log needs nothing from schema.ts.
interface AuditDatabase extends Database {
  audit_log: AuditRow;
  audit_head: AuditHeadRow;
}

/** What the caller supplies; the store assigns seq and links the chain. */
export type NewAuditEntry = Omit<AuditRow, 'seq' | 'prev_hash' | 'hash'>;

/** Computes an entry's hash: supplied by core, which owns the chain's format. */
export type EntryHasher = (entry: Omit<AuditRow, 'hash'>) => string;

const HEAD_ID = 1;

function audit(db: Db): Kysely<AuditDatabase> {
  return db.kysely as unknown as Kysely<AuditDatabase>;
}

/**
 * Appends entries in order, in one transaction. Updating the head row first is
 * the lock: on PostgreSQL a concurrent append waits on that row and then sees
 * the committed seq and hash (even when the log is empty, where locking "the
 * last entry" would lock nothing); on SQLite the write takes the database's
 * single write lock before anything is read. A failed append rolls back whole,
 * so numbers are never skipped.
 */
export async function appendAudit(db: Db, entries: readonly NewAuditEntry[], hashOf: EntryHasher): Promise<AuditRow[]> {
  if (entries.length === 0) return [];
  return audit(db)
    .transaction()
    .execute(async (trx) => {
      // RETURNING gives the new seq and the still-unchanged hash: the previous entry's.
      const head = await trx
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', entries.length) }))
        .where('id', '=', HEAD_ID)
        .returning(['seq', 'hash'])
        .executeTakeFirstOrThrow();
      let seq = head.seq - entries.length;
      let prev = head.hash;
      const rows = entries.map((entry) => {
        seq += 1;
        const linked = { ...entry, seq, prev_hash: prev };
        prev = hashOf(linked);
        return { ...linked, hash: prev };
      });
      await trx.insertInto('audit_log').values(rows).execute();
      await trx.updateTable('audit_head').set({ hash: prev }).where('id', '=', HEAD_ID).execute();
      return rows;
    });
}

export async function auditHead(db: Db): Promise<AuditHeadRow> {
  return audit(db).selectFrom('audit_head').selectAll().where('id', '=', HEAD_ID).executeTakeFirstOrThrow();
}

/** A user's entries, newest first; `before` is an exclusive seq bound for paging. */
export async function listAuditForUser(db: Db, userId: string, options: { limit: number; before?: number | undefined }): Promise<AuditRow[]> {
  let query = audit(db).selectFrom('audit_log').selectAll().where('user_id', '=', userId);
  if (options.before !== undefined) query = query.where('seq', '<', options.before);
  return query.orderBy('seq', 'desc').limit(options.limit).execute();
}

/**
 * Every entry with seq ≤ `upTo`, in seq order, read a page at a time so a long
 * log never sits in memory whole.
 */
export async function* iterateAudit(db: Db, options: { upTo: number; pageSize?: number }): AsyncGenerator<AuditRow> {
  const pageSize = options.pageSize ?? 500;
  let after: number | undefined;
  for (;;) {
    let query = audit(db).selectFrom('audit_log').selectAll().where('seq', '<=', options.upTo);
    if (after !== undefined) query = query.where('seq', '>', after);
    const page = await query.orderBy('seq', 'asc').limit(pageSize).execute();
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1].seq;
  }
}
