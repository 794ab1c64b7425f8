import { hkdfSync, randomBytes } from 'node:crypto';
import type { Db } from '../store/db.js';

/**
 * A 256-bit key for one purpose (device cookies, CSRF tokens). Derived from
 * SIGNET_SECRET when the operator set one; otherwise generated once and kept
 * in the database, so every instance signs and checks with the same key.
 */
export async function serverKey(db: Db, masterSecret: string | undefined, purpose: string, now: number): Promise<Buffer> {
  if (masterSecret) return Buffer.from(hkdfSync('sha256', masterSecret, 'signet', `server key: ${purpose}`, 32));
  const read = () => db.kysely.selectFrom('server_secrets').select('value').where('name', '=', purpose).executeTakeFirst();
  let row = await read();
  if (!row) {
    // Two instances starting together: the first insert wins, both read it back.
    await db.kysely
      .insertInto('server_secrets')
      .values({ name: purpose, value: randomBytes(32).toString('base64url'), created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    row = await read();
  }
  return Buffer.from(row!.value, 'base64url');
}
