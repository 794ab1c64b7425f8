import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // Passkeys (WebAuthn public-key credentials), one row each. The id is the credential ID as
  // base64url (at most 1023 bytes, WebAuthn §5.8.3); the public key is the COSE key, base64url.
  await db.schema
    .createTable('webauthn_credentials')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('public_key', 'text', (c) => c.notNull())
    // The signature counter last seen (WebAuthn §6.1.1); 0 for authenticators that keep none.
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    // JSON array of transport hints ("internal", "hybrid", "usb", …).
    .addColumn('transports', 'text', (c) => c.notNull().defaultTo('[]'))
    // singleDevice or multiDevice: the backup eligibility (BE) flag, which never changes for a credential.
    .addColumn('device_type', 'text', (c) => c.notNull())
    // The backup state (BS) flag as last seen: 1 once the credential is synced.
    .addColumn('backed_up', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('aaguid', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    // 1 if the account's address was verified at registration: a password reset removes passkeys
    // registered before the address was ever proven, as it removes such TOTP (see docs/security.md).
    .addColumn('email_proven', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute();
  await db.schema.createIndex('webauthn_credentials_user').on('webauthn_credentials').column('user_id').execute();

  // The WebAuthn user handle of each account (32 random bytes, base64url; §14.6.1): never the
  // internal user id, so an authenticator learns nothing it could link to other data.
  await db.schema
    .createTable('webauthn_users')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('handle', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  // Pending ceremonies: each challenge is stored as a SHA-256 and used once (deleted when used).
  await db.schema
    .createTable('webauthn_challenges')
    .addColumn('challenge_hash', 'text', (c) => c.primaryKey())
    // register | authenticate | second_factor
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
    // The password sign-in (mfa_challenges.id) a second-factor challenge belongs to.
    .addColumn('mfa_challenge_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webauthn_challenges_expires_at').on('webauthn_challenges').column('expires_at').execute();
  await db.schema.createIndex('webauthn_challenges_mfa').on('webauthn_challenges').column('mfa_challenge_id').execute();

  // How the session's sign-in was proven (RFC 8176 values, space-separated): the access tokens'
  // `amr`. Null for sessions started before this migration.
  await db.schema.alterTable('sessions').addColumn('amr', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('amr').execute();
  for (const table of ['webauthn_challenges', 'webauthn_users', 'webauthn_credentials']) await db.schema.dropTable(table).execute();
}
