import type { Db } from './db.js';
import type { UserRow } from './schema.js';

/** The unique keys of existing users that share any of the given ones. */
export interface ExistingKeys {
  id: string;
  email_key: string;
  username_key: string | null;
}

/** Rows per multi-row INSERT: 14 columns × 500 stays under SQLite's and PostgreSQL's parameter limits. */
const INSERT_CHUNK = 500;

export async function findExistingKeys(db: Db, keys: { ids: string[]; emailKeys: string[]; usernameKeys: string[] }): Promise<ExistingKeys[]> {
  if (keys.ids.length + keys.emailKeys.length + keys.usernameKeys.length === 0) return [];
  return db.kysely
    .selectFrom('users')
    .select(['id', 'email_key', 'username_key'])
    .where((eb) =>
      eb.or([
        ...(keys.ids.length > 0 ? [eb('id', 'in', keys.ids)] : []),
        ...(keys.emailKeys.length > 0 ? [eb('email_key', 'in', keys.emailKeys)] : []),
        ...(keys.usernameKeys.length > 0 ? [eb('username_key', 'in', keys.usernameKeys)] : []),
      ]),
    )
    .execute();
}

/** What an import may overwrite on an existing user (`--on-conflict update`). */
export type ImportUpdate = Pick<UserRow, 'email' | 'email_key' | 'username' | 'username_key' | 'password_hash' | 'updated_at'> &
  Partial<Pick<UserRow, 'name' | 'email_verified' | 'roles' | 'app_metadata'>>;

/**
 * Writes one batch in one transaction: new rows in multi-row INSERTs, then
 * updates one by one. All or nothing: a unique violation (a concurrent
 * sign-up took an address since the batch was checked) rolls the batch back
 * for the caller to check again.
 */
export async function writeImportBatch(db: Db, inserts: UserRow[], updates: { id: string; set: ImportUpdate }[]): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    for (let i = 0; i < inserts.length; i += INSERT_CHUNK) {
      await trx
        .insertInto('users')
        .values(inserts.slice(i, i + INSERT_CHUNK))
        .execute();
    }
    for (const { id, set } of updates) await trx.updateTable('users').set(set).where('id', '=', id).execute();
  });
}

/** Users in id order after `afterId`, for export: a keyset page, constant memory. */
export async function exportPage(db: Db, afterId: string | undefined, limit: number): Promise<UserRow[]> {
  let query = db.kysely.selectFrom('users').selectAll();
  if (afterId !== undefined) query = query.where('id', '>', afterId);
  return query.orderBy('id').limit(limit).execute();
}
