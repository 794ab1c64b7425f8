import type { Kysely } from 'kysely';
import { PostgresAdapter, sql } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Operator-controlled claims carried in access tokens: a JSON array of role names and a JSON
  // object of app data, both validated and bounded on write (core/admin/claims.ts). Never set by the user.
  await db.schema
    .alterTable('users')
    .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema
    .alterTable('users')
    .addColumn('app_metadata', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();

  // `signet users list` pages newest first by (created_at, id): a keyset cursor, fast at any depth.
  await db.schema.createIndex('users_created_at_id').on('users').columns(['created_at', 'id']).execute();
  // Prefix search on email and username. SQLite compares the unique keys' ranges; PostgreSQL needs
  // pattern_ops for LIKE 'prefix%' to use an index under a non-C collation.
  if (isPostgres(db)) {
    await sql`create index users_email_key_pattern on users (email_key text_pattern_ops)`.execute(db);
    await sql`create index users_username_key_pattern on users (username_key text_pattern_ops)`.execute(db);
  }

  // Admin API keys: only a SHA-256 of the secret is kept; scope 'read' or 'write'.
  await db.schema
    .createTable('admin_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('admin_keys').execute();
  if (isPostgres(db)) {
    await db.schema.dropIndex('users_username_key_pattern').execute();
    await db.schema.dropIndex('users_email_key_pattern').execute();
  }
  await db.schema.dropIndex('users_created_at_id').execute();
  await db.schema.alterTable('users').dropColumn('app_metadata').execute();
  await db.schema.alterTable('users').dropColumn('roles').execute();
}

function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}
