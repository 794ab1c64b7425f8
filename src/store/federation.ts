import type { Db } from './db.js';
import { uniqueViolation } from './db.js';
import type { FederatedIdentityRow, FederationStateRow, UserRow } from './schema.js';

/** A linked identity as core sees it. */
export interface FederatedIdentity {
  id: string;
  provider: string;
  subject: string;
  userId: string;
  email: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

function toIdentity(row: FederatedIdentityRow): FederatedIdentity {
  return {
    id: row.id,
    provider: row.provider,
    subject: row.subject,
    userId: row.user_id,
    email: row.email,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
  };
}

export async function findIdentity(db: Db, provider: string, subject: string): Promise<FederatedIdentity | undefined> {
  const row = await db.kysely.selectFrom('federated_identities').selectAll().where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst();
  return row && toIdentity(row);
}

export async function listIdentities(db: Db, userId: string): Promise<FederatedIdentity[]> {
  const rows = await db.kysely.selectFrom('federated_identities').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
  return rows.map(toIdentity);
}

/** Links an identity; false when that (provider, subject) is already linked (to anyone): the database decides races. */
export async function insertIdentity(db: Db, row: FederatedIdentityRow): Promise<boolean> {
  try {
    await db.kysely.insertInto('federated_identities').values(row).execute();
    return true;
  } catch (error) {
    if (uniqueViolation(error) !== undefined) return false;
    throw error;
  }
}

export async function touchIdentity(db: Db, id: string, now: number): Promise<void> {
  await db.kysely.updateTable('federated_identities').set({ last_used_at: now }).where('id', '=', id).execute();
}

/**
 * Unlinks an identity unless it is the account's last way to sign in: in one
 * transaction, the account's other methods (a usable password, a passkey,
 * another identity) are counted with the row locked, so two concurrent
 * unlinks cannot both remove "the other one". Returns `removed`, `last` or `missing`.
 */
export async function deleteIdentityUnlessLast(db: Db, userId: string, id: string): Promise<'removed' | 'last' | 'missing'> {
  return db.kysely.transaction().execute(async (trx) => {
    // Serialises unlinks of one account (PostgreSQL: row lock; SQLite: the write lock of this transaction).
    const user = await trx
      .updateTable('users')
      .set((eb) => ({ updated_at: eb.ref('updated_at') }))
      .where('id', '=', userId)
      .returning(['password_hash'])
      .executeTakeFirst();
    if (!user) return 'missing';
    const identities = await trx.selectFrom('federated_identities').select(['id']).where('user_id', '=', userId).execute();
    if (!identities.some((i) => i.id === id)) return 'missing';
    const passkeys = await trx
      .selectFrom('webauthn_credentials')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow();
    const others = identities.length - 1 + Number(passkeys.n) + (hasUsablePassword(user.password_hash) ? 1 : 0);
    if (others === 0) return 'last';
    await trx.deleteFrom('federated_identities').where('id', '=', id).where('user_id', '=', userId).execute();
    return 'removed';
  });
}

/**
 * The stored hash of an account created without a password (by a provider, or by an emailed code):
 * no parser reads it as a hash, so it never verifies; a password reset replaces it.
 */
export const NO_PASSWORD = '!no-password';

export function hasUsablePassword(hash: string): boolean {
  return !hash.startsWith('!');
}

export async function insertState(db: Db, row: FederationStateRow): Promise<void> {
  await db.kysely.insertInto('federation_states').values(row).execute();
}

/** Takes a pending flow out of the store (single use, whatever follows); undefined when unknown or already taken. */
export async function takeState(db: Db, stateHash: string): Promise<FederationStateRow | undefined> {
  return db.kysely.deleteFrom('federation_states').where('state_hash', '=', stateHash).returningAll().executeTakeFirst();
}

/**
 * A new account and its first identity, together or not at all: a concurrent
 * sign-in with the same identity (or a sign-up with the same address) makes
 * this one fail whole, with `email` or `identity` saying which.
 */
export async function insertUserWithIdentity(db: Db, user: UserRow, identity: FederatedIdentityRow): Promise<'created' | 'email' | 'identity'> {
  try {
    await db.kysely.transaction().execute(async (trx) => {
      await trx.insertInto('users').values(user).execute();
      await trx.insertInto('federated_identities').values(identity).execute();
    });
    return 'created';
  } catch (error) {
    const constraint = uniqueViolation(error);
    if (constraint === undefined) throw error;
    return constraint.includes('federated') || constraint.includes('provider') ? 'identity' : 'email';
  }
}
