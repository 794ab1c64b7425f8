import type { Db } from './db.js';
import type { AdminKeyRow } from './schema.js';

export async function insertAdminKey(db: Db, row: AdminKeyRow): Promise<void> {
  await db.kysely.insertInto('admin_keys').values(row).execute();
}

export async function findAdminKeyByHash(db: Db, secretHash: string): Promise<AdminKeyRow | undefined> {
  return db.kysely.selectFrom('admin_keys').selectAll().where('secret_hash', '=', secretHash).executeTakeFirst();
}

export async function listAdminKeys(db: Db): Promise<AdminKeyRow[]> {
  return db.kysely.selectFrom('admin_keys').selectAll().orderBy('created_at', 'desc').execute();
}

export async function countLiveAdminKeys(db: Db): Promise<number> {
  const row = await db.kysely
    .selectFrom('admin_keys')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Revokes a live key; false when there is none with this id (or it was revoked already). */
export async function revokeAdminKey(db: Db, id: string, now: number): Promise<boolean> {
  const result = await db.kysely.updateTable('admin_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function touchAdminKey(db: Db, id: string, now: number): Promise<void> {
  await db.kysely.updateTable('admin_keys').set({ last_used_at: now }).where('id', '=', id).execute();
}
