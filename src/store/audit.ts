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

// The audit tables are declared here, beside the only code that touches them, on top of schema.ts's Database.
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

/**
 * Rewrites every entry's `prev_hash` and `hash` in seq order, in one
 * transaction that holds the head row (no append can interleave). `rehash`
 * gets each stored row, the new hash of the entry before it, and the stored
 * hash of the entry before it (to check the old chain); it throws to abort.
 */
export async function reanchorAudit(
  db: Db,
  rehash: (row: AuditRow, prevHash: string, previousStored: string) => string,
  pageSize = 500,
): Promise<{ entries: number; rekeyed: number }> {
  return audit(db)
    .transaction()
    .execute(async (trx) => {
      const head = await trx
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', 0) }))
        .where('id', '=', HEAD_ID)
        .returning(['seq', 'hash'])
        .executeTakeFirstOrThrow();
      // The genesis value: prev_hash of entry 1 (core/audit.ts GENESIS_HASH).
      let previousStored = '0'.repeat(64);
      let prevHash = previousStored;
      let after = 0;
      let rekeyed = 0;
      for (;;) {
        const page = await trx
          .selectFrom('audit_log')
          .selectAll()
          .where('seq', '>', after)
          .where('seq', '<=', head.seq)
          .orderBy('seq', 'asc')
          .limit(pageSize)
          .execute();
        for (const row of page) {
          if (row.seq !== after + 1) throw new Error(`the audit chain is broken at entry ${after + 1} (missing); nothing was changed`);
          const hash = rehash(row, prevHash, previousStored);
          if (hash !== row.hash || prevHash !== row.prev_hash) {
            await trx.updateTable('audit_log').set({ prev_hash: prevHash, hash }).where('seq', '=', row.seq).execute();
            rekeyed += 1;
          }
          previousStored = row.hash;
          prevHash = hash;
          after = row.seq;
        }
        if (page.length < pageSize) break;
      }
      if (after !== head.seq || previousStored !== head.hash) throw new Error('the audit chain does not end at the recorded head; nothing was changed');
      await trx.updateTable('audit_head').set({ hash: prevHash }).where('id', '=', HEAD_ID).execute();
      return { entries: after, rekeyed };
    });
}
