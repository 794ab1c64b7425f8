import type { Db } from './db.js';
import type { EndedSession, UserRecord } from '../model.js';
import { endUserSessionsWith } from './sessions.js';
import { conflictError, toUser } from './users.js';
import type { AccountTokenKind, AccountTokenRow, UserRow } from './schema.js';

/**
 * Stores a new token, retiring the user's earlier unused tokens of the same
 * kind. Retired tokens expire (not merely "used"): a used verification token
 * may repeat its answer, a superseded one never works again.
 */
export async function issueAccountToken(db: Db, token: AccountTokenRow): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await trx
      .updateTable('account_tokens')
      .set({ used_at: token.created_at, expires_at: token.created_at })
      .where('user_id', '=', token.user_id)
      .where('kind', '=', token.kind)
      .where('used_at', 'is', null)
      .execute();
    await trx.insertInto('account_tokens').values(token).execute();
  });
}

export async function findAccountToken(db: Db, kind: AccountTokenKind, tokenHash: string): Promise<AccountTokenRow | undefined> {
  return db.kysely.selectFrom('account_tokens').selectAll().where('token_hash', '=', tokenHash).where('kind', '=', kind).executeTakeFirst();
}

/** Marks the email verified and the token used, in one transaction. */
export async function verifyEmailWithToken(db: Db, token: AccountTokenRow, now: number): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await trx.updateTable('account_tokens').set({ used_at: now }).where('id', '=', token.id).where('used_at', 'is', null).execute();
    await trx.updateTable('users').set({ email_verified: 1, updated_at: now }).where('id', '=', token.user_id).where('email', '=', token.email).execute();
  });
}

/**
 * Resets a password: claims the token (single use), replaces the hash, retires
 * every other reset token, ends every session, and removes a TOTP factor that
 * was enabled before the address was proven, all or nothing. Returns undefined
 * when the token was used in the meantime.
 */
export async function resetPasswordWithToken(
  db: Db,
  token: AccountTokenRow,
  passwordHash: string,
  now: number,
): Promise<{ mfaRemoved: boolean; passkeysRemoved: number; ended: EndedSession[] } | undefined> {
  return db.kysely.transaction().execute(async (trx) => {
    const claimed = await trx.updateTable('account_tokens').set({ used_at: now }).where('id', '=', token.id).where('used_at', 'is', null).executeTakeFirst();
    if (claimed.numUpdatedRows === 0n) return undefined;
    // Following the emailed link proves the address, so it counts as verified.
    await trx.updateTable('users').set({ password_hash: passwordHash, email_verified: 1, updated_at: now }).where('id', '=', token.user_id).execute();
    await trx
      .updateTable('account_tokens')
      .set({ used_at: now })
      .where('user_id', '=', token.user_id)
      .where('kind', '=', 'password_reset')
      .where('used_at', 'is', null)
      .execute();
    const ended = await endUserSessionsWith(trx, token.user_id, 'password_reset', now);
    const unproven = await trx.deleteFrom('mfa_totp').where('user_id', '=', token.user_id).where('email_proven', '=', 0).executeTakeFirst();
    const mfaRemoved = unproven.numDeletedRows > 0n;
    if (mfaRemoved) {
      await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', token.user_id).execute();
      await trx.updateTable('mfa_challenges').set({ used_at: now }).where('user_id', '=', token.user_id).where('used_at', 'is', null).execute();
      await trx.updateTable('users').set({ mfa_enabled: 0 }).where('id', '=', token.user_id).execute();
    }
    // Passkeys follow the same rule as TOTP: one registered before the address was proven was not the owner's to add.
    const passkeys = await trx.deleteFrom('webauthn_credentials').where('user_id', '=', token.user_id).where('email_proven', '=', 0).executeTakeFirst();
    return { mfaRemoved, passkeysRemoved: Number(passkeys.numDeletedRows), ended };
  });
}

/**
 * Changes a password if the stored hash is still the verified one; retires
 * reset tokens and ends every session but `keepSessionId`. Undefined when the
 * hash had changed; else the sessions it ended.
 */
export async function changePassword(
  db: Db,
  userId: string,
  expectedHash: string,
  passwordHash: string,
  keepSessionId: string,
  now: number,
): Promise<EndedSession[] | undefined> {
  return db.kysely.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('users')
      .set({ password_hash: passwordHash, updated_at: now })
      .where('id', '=', userId)
      .where('password_hash', '=', expectedHash)
      .executeTakeFirst();
    if (updated.numUpdatedRows === 0n) return undefined;
    await trx
      .updateTable('account_tokens')
      .set({ used_at: now })
      .where('user_id', '=', userId)
      .where('kind', '=', 'password_reset')
      .where('used_at', 'is', null)
      .execute();
    return endUserSessionsWith(trx, userId, 'password_changed', now, keepSessionId);
  });
}

export async function updateProfile(db: Db, userId: string, changes: { name?: string | null; username?: string | null }, now: number): Promise<UserRecord> {
  const set: Partial<UserRow> = { updated_at: now };
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.username !== undefined) {
    set.username = changes.username;
    set.username_key = changes.username === null ? null : changes.username.toLowerCase();
  }
  try {
    await db.kysely.updateTable('users').set(set).where('id', '=', userId).execute();
  } catch (error) {
    throw conflictError(error) ?? error;
  }
  return toUser(await db.kysely.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirstOrThrow());
}
