import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // An account's identity at another identity provider (an OpenID Connect issuer, or GitHub): the
  // provider's id as the operator configured it and the provider's stable subject (`sub`, or GitHub's
  // numeric user id). One external identity belongs to at most one account.
  await db.schema
    .createTable('federated_identities')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The address the provider gave when the identity was linked (shown to the user; never used to match later).
    .addColumn('email', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addUniqueConstraint('federated_identities_provider_subject', ['provider', 'subject'])
    .execute();
  await db.schema.createIndex('federated_identities_user').on('federated_identities').column('user_id').execute();

  // A sign-in (or link) sent to a provider and not back yet: keyed by a hash of its `state`, bound to
  // the browser by a hash of a cookie, used once (deleted when the browser comes back), minutes long.
  await db.schema
    .createTable('federation_states')
    .addColumn('state_hash', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('binding_hash', 'text', (c) => c.notNull())
    // The PKCE code verifier and the nonce, sealed (they prove the flow to the provider).
    .addColumn('secrets', 'text', (c) => c.notNull())
    // signin | link
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('return_to', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('federation_states_expires_at').on('federation_states').column('expires_at').execute();

  // Sign-in codes and links sent by email: the code as a keyed hash, the link token as a hash; attempts
  // are claimed with one conditional update before a code is checked; used once.
  await db.schema
    .createTable('email_signin_codes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text')
    .addColumn('link_hash', 'text', (c) => c.unique())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .execute();
  await db.schema.createIndex('email_signin_codes_user').on('email_signin_codes').column('user_id').execute();
  await db.schema.createIndex('email_signin_codes_expires_at').on('email_signin_codes').column('expires_at').execute();

  // Code attempts per account, across codes, in a fixed window: a new code does not buy new guesses.
  await db.schema
    .createTable('email_signin_budgets')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('window_started_at', 'bigint', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  // The first factor of a sign-in waiting for its second (RFC 8176 values, space-separated); null: a password.
  await db.schema.alterTable('mfa_challenges').addColumn('first_amr', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mfa_challenges').dropColumn('first_amr').execute();
  for (const table of ['email_signin_budgets', 'email_signin_codes', 'federation_states', 'federated_identities']) await db.schema.dropTable(table).execute();
}
