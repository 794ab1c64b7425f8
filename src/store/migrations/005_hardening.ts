import type { Kysely } from 'kysely';
import { sql } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // MFA attempts are counted before each check (a burst cannot outrun the cap), so the column counts attempts.
  await db.schema.alterTable('mfa_challenges').renameColumn('failures', 'attempts').execute();

  // Whether the address was verified when TOTP was enabled: a password reset (which proves the
  // address) removes a second factor set up by someone who never proved it. Rows enabled before
  // this column existed take the account's current state.
  await db.schema
    .alterTable('mfa_totp')
    .addColumn('email_proven', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`update mfa_totp set email_proven = (select email_verified from users where users.id = mfa_totp.user_id)`.execute(db);

  // CSRF and device-cookie keys are now derived from the at-rest secret: drop the copies kept in clear.
  await db.schema.dropTable('server_secrets').execute();

  // GET /auth/revocations reads sessions by end time; the retention job deletes by age.
  await db.schema.createIndex('sessions_ended_at').on('sessions').columns(['ended_at', 'id']).execute();
  await db.schema.createIndex('sessions_expires_at').on('sessions').column('expires_at').execute();
  await db.schema.createIndex('refresh_tokens_expires_at').on('refresh_tokens').column('expires_at').execute();
  await db.schema.createIndex('refresh_tokens_rotated_at').on('refresh_tokens').column('rotated_at').execute();
  await db.schema.createIndex('account_tokens_expires_at').on('account_tokens').column('expires_at').execute();
  await db.schema.createIndex('mfa_challenges_expires_at').on('mfa_challenges').column('expires_at').execute();

  // Imported bcrypt hashes not yet upgraded to Argon2id: found at start without a full scan.
  await db.schema.createIndex('users_bcrypt_hash').on('users').column('password_hash').where(sql.ref('password_hash'), 'like', '$2%').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const index of [
    'users_bcrypt_hash',
    'mfa_challenges_expires_at',
    'account_tokens_expires_at',
    'refresh_tokens_rotated_at',
    'refresh_tokens_expires_at',
    'sessions_expires_at',
    'sessions_ended_at',
  ]) {
    await db.schema.dropIndex(index).execute();
  }
  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.alterTable('mfa_totp').dropColumn('email_proven').execute();
  await db.schema.alterTable('mfa_challenges').renameColumn('attempts', 'failures').execute();
}
