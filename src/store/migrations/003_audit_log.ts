import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Append-only security events, each hashed over its content and the previous
  // entry's hash (issue 5 §8): altering, deleting or reordering rows breaks the chain.
  await db.schema
    .createTable('audit_log')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    // No foreign keys: the log must outlive the users and sessions it speaks of.
    .addColumn('user_id', 'text')
    .addColumn('session_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_log_user_seq').on('audit_log').columns(['user_id', 'seq']).execute();

  // The chain's head in one row. Every append updates it first, inside the
  // transaction that inserts the entries: on PostgreSQL the row lock orders
  // concurrent writers (also on an empty log), SQLite has one writer anyway,
  // so sequence numbers never repeat or skip.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  // Genesis: 64 zeros, the prev_hash of entry 1 (duplicated from core/audit.ts on purpose).
  await db
    .insertInto('audit_head')
    .values({ id: 1, seq: 0, hash: '0'.repeat(64) })
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_head').execute();
  await db.schema.dropTable('audit_log').execute();
}
