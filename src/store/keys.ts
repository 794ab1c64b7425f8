import type { Db } from './db.js';
import type { SigningKeyRow } from './schema.js';

export async function listKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.kysely.selectFrom('signing_keys').selectAll().orderBy('activates_at', 'asc').orderBy('kid', 'asc').execute();
}

export async function insertKey(db: Db, key: SigningKeyRow): Promise<void> {
  await db.kysely.insertInto('signing_keys').values(key).execute();
}

export async function updatePrivateKey(db: Db, kid: string, privateJwk: string): Promise<void> {
  await db.kysely.updateTable('signing_keys').set({ private_jwk: privateJwk }).where('kid', '=', kid).execute();
}

export async function deleteKeys(db: Db, kids: string[]): Promise<void> {
  if (kids.length > 0) await db.kysely.deleteFrom('signing_keys').where('kid', 'in', kids).execute();
}
