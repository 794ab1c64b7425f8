import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Relying parties registered by the operator (OpenID Connect Core §2, RFC 7591 field names in spirit).
  await db.schema
    .createTable('oauth_clients')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // 'none' (public, PKCE), 'client_secret_basic' or 'client_secret_post' (confidential).
    .addColumn('auth_method', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text')
    .addColumn('redirect_uris', 'text', (c) => c.notNull())
    .addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull())
    .addColumn('backchannel_logout_uri', 'text')
    .addColumn('first_party', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('grant_types', 'text', (c) => c.notNull())
    .addColumn('resources', 'text', (c) => c.notNull())
    .addColumn('access_token_ttl', 'integer')
    .addColumn('refresh_token_ttl', 'integer')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('disabled_at', 'bigint')
    .execute();

  // An authorization request waiting for the user to sign in or consent (minutes, then pruned).
  await db.schema
    .createTable('oauth_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('oauth_requests_expires_at').on('oauth_requests').column('expires_at').execute();

  // Authorization codes: stored as hashes, single use (claimed with one conditional update), a minute at most.
  await db.schema
    .createTable('oauth_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('parent_session_id', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text')
    .addColumn('code_challenge', 'text')
    .addColumn('resource', 'text')
    .addColumn('auth_time', 'bigint', (c) => c.notNull())
    .addColumn('amr', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('issued_session_id', 'text')
    .execute();
  await db.schema.createIndex('oauth_codes_expires_at').on('oauth_codes').column('expires_at').execute();

  // What a user let a third-party client have, remembered until revoked on the account page.
  await db.schema
    .createTable('oauth_consents')
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('oauth_consents_pk', ['user_id', 'client_id'])
    .execute();

  // A client's grant is a session of its own, under the browser session it was authorized in.
  await db.schema.alterTable('sessions').addColumn('parent_session_id', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('scope', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('audience', 'text').execute();
  await db.schema
    .alterTable('sessions')
    .addColumn('offline', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('sessions').addColumn('auth_time', 'bigint').execute();
  await db.schema.createIndex('sessions_parent_session_id').on('sessions').column('parent_session_id').execute();
  // client_id used to be a free label on the password grant; from now on it names a registered client, and a
  // refresh token works only for the client of its session: the sessions from before are first-party ones.
  await db.updateTable('sessions').set({ client_id: null }).where('client_id', 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_parent_session_id').execute();
  for (const column of ['auth_time', 'offline', 'audience', 'scope', 'parent_session_id']) {
    await db.schema.alterTable('sessions').dropColumn(column).execute();
  }
  for (const table of ['oauth_consents', 'oauth_codes', 'oauth_requests', 'oauth_clients']) await db.schema.dropTable(table).execute();
}
