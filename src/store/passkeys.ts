import type { Db } from './db.js';
import { uniqueViolation } from './db.js';
import type { Passkey, PasskeyRecord } from '../model.js';
import type { WebauthnChallengeRow, WebauthnCredentialRow } from './schema.js';

/** A row → the domain object (flags become booleans, times `Date`s, transports an array). */
export function toPasskey(row: WebauthnCredentialRow): PasskeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    deviceType: row.device_type,
    backedUp: row.backed_up === 1,
    transports: parseTransports(row.transports),
    aaguid: row.aaguid,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
    publicKey: row.public_key,
    counter: row.counter,
    emailProven: row.email_proven === 1,
  };
}

function parseTransports(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

/** The owner's view of a stored passkey: nothing that only verification needs. */
export function withoutSecrets(record: PasskeyRecord): Passkey {
  const { id, userId, name, deviceType, backedUp, transports, aaguid, createdAt, lastUsedAt } = record;
  return { id, userId, name, deviceType, backedUp, transports, aaguid, createdAt, lastUsedAt };
}

export async function listPasskeys(db: Db, userId: string): Promise<PasskeyRecord[]> {
  const rows = await db.kysely
    .selectFrom('webauthn_credentials')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at', 'asc')
    .orderBy('id')
    .execute();
  return rows.map(toPasskey);
}

export async function findPasskey(db: Db, id: string): Promise<PasskeyRecord | undefined> {
  const row = await db.kysely.selectFrom('webauthn_credentials').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toPasskey(row);
}

export async function hasPasskeys(db: Db, userId: string): Promise<boolean> {
  const row = await db.kysely.selectFrom('webauthn_credentials').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** Stores a new passkey; false when its credential ID is already registered (to anyone). */
export async function insertPasskey(db: Db, record: PasskeyRecord): Promise<boolean> {
  try {
    await db.kysely
      .insertInto('webauthn_credentials')
      .values({
        id: record.id,
        user_id: record.userId,
        public_key: record.publicKey,
        counter: record.counter,
        transports: JSON.stringify(record.transports),
        device_type: record.deviceType,
        backed_up: record.backedUp ? 1 : 0,
        aaguid: record.aaguid,
        name: record.name,
        email_proven: record.emailProven ? 1 : 0,
        created_at: record.createdAt.getTime(),
        last_used_at: record.lastUsedAt === null ? null : record.lastUsedAt.getTime(),
      })
      .execute();
    return true;
  } catch (error) {
    if (uniqueViolation(error) !== undefined) return false;
    throw error;
  }
}

/** Renames one of the user's passkeys; undefined when the user has no passkey with that id. */
export async function renamePasskey(db: Db, userId: string, id: string, name: string | null): Promise<PasskeyRecord | undefined> {
  const row = await db.kysely
    .updateTable('webauthn_credentials')
    .set({ name })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .returningAll()
    .executeTakeFirst();
  return row && toPasskey(row);
}

/** Deletes one of the user's passkeys; false when the user has no passkey with that id. */
export async function deletePasskey(db: Db, userId: string, id: string): Promise<boolean> {
  const result = await db.kysely.deleteFrom('webauthn_credentials').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Records a verified use: the new signature counter, the backup state, the
 * time. Conditional on the counter still being the one the signature was
 * checked against, so two assertions verified at once against the same stored
 * counter cannot both be accepted (the second is a cloned-authenticator signal,
 * WebAuthn §6.1.1). Authenticators without a counter (always 0) pass every time.
 */
export async function recordPasskeyUse(
  db: Db,
  use: { id: string; expectedCounter: number; counter: number; backedUp: boolean; now: number },
): Promise<boolean> {
  const result = await db.kysely
    .updateTable('webauthn_credentials')
    .set({ counter: use.counter, backed_up: use.backedUp ? 1 : 0, last_used_at: use.now })
    .where('id', '=', use.id)
    .where('counter', '=', use.expectedCounter)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** The account's WebAuthn user handle, if it has one yet. */
export async function findUserHandle(db: Db, userId: string): Promise<string | undefined> {
  const row = await db.kysely.selectFrom('webauthn_users').select('handle').where('user_id', '=', userId).executeTakeFirst();
  return row?.handle;
}

/** The account's user handle, created with `fresh` the first time (a concurrent first call keeps the one stored first). */
export async function ensureUserHandle(db: Db, userId: string, fresh: string, now: number): Promise<string> {
  await db.kysely
    .insertInto('webauthn_users')
    .values({ user_id: userId, handle: fresh, created_at: now })
    .onConflict((oc) => oc.column('user_id').doNothing())
    .execute();
  const handle = await findUserHandle(db, userId);
  if (handle === undefined) throw new Error('user handle vanished: the user was deleted meanwhile');
  return handle;
}

/**
 * Stores a pending ceremony. A second-factor challenge replaces the earlier
 * ones of the same password sign-in, so reloading the page never piles them up.
 */
export async function insertWebauthnChallenge(db: Db, row: WebauthnChallengeRow): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    if (row.mfa_challenge_id !== null) await trx.deleteFrom('webauthn_challenges').where('mfa_challenge_id', '=', row.mfa_challenge_id).execute();
    await trx.insertInto('webauthn_challenges').values(row).execute();
  });
}

/**
 * Takes a challenge out of the store in one conditional write (`DELETE …
 * RETURNING`), whatever its purpose or age: of N concurrent requests that
 * present it, exactly one gets the row back; the caller then checks it.
 */
export async function takeWebauthnChallenge(db: Db, challengeHash: string): Promise<WebauthnChallengeRow | undefined> {
  return db.kysely.deleteFrom('webauthn_challenges').where('challenge_hash', '=', challengeHash).returningAll().executeTakeFirst();
}
