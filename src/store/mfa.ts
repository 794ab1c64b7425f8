import type { Db } from './db.js';
import type { MfaChallengeRow, RecoveryCodeRow, TotpRow } from './schema.js';

export async function findTotp(db: Db, userId: string): Promise<TotpRow | undefined> {
  return db.kysely.selectFrom('mfa_totp').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

/** Starts (or restarts) setup: a pending secret, not enabled until a valid code confirms it. */
export async function savePendingTotp(db: Db, row: TotpRow): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await trx.deleteFrom('mfa_totp').where('user_id', '=', row.user_id).where('enabled_at', 'is', null).execute();
    await trx.insertInto('mfa_totp').values(row).execute();
  });
}

/** Enables TOTP and stores the recovery codes, replacing older ones; false if not pending any more. */
export async function enableTotp(
  db: Db,
  change: { userId: string; step: number; codes: RecoveryCodeRow[]; emailProven: boolean; now: number },
): Promise<boolean> {
  const { userId, step, codes, now } = change;
  return db.kysely.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('mfa_totp')
      .set({ enabled_at: now, last_step: step, email_proven: change.emailProven ? 1 : 0 })
      .where('user_id', '=', userId)
      .where('enabled_at', 'is', null)
      .executeTakeFirst();
    if (updated.numUpdatedRows === 0n) return false;
    await trx.updateTable('users').set({ mfa_enabled: 1, updated_at: now }).where('id', '=', userId).execute();
    await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
    await trx.insertInto('mfa_recovery_codes').values(codes).execute();
    return true;
  });
}

export async function disableTotp(db: Db, userId: string, now: number): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await trx.deleteFrom('mfa_totp').where('user_id', '=', userId).execute();
    await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
    await trx.updateTable('mfa_challenges').set({ used_at: now }).where('user_id', '=', userId).where('used_at', 'is', null).execute();
    await trx.updateTable('users').set({ mfa_enabled: 0, updated_at: now }).where('id', '=', userId).execute();
  });
}

/** Accepts a TOTP step only if it is newer than every step accepted before: no replay. */
export async function advanceTotpStep(db: Db, userId: string, step: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable('mfa_totp')
    .set({ last_step: step })
    .where('user_id', '=', userId)
    .where('last_step', '<', step)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function useRecoveryCode(db: Db, userId: string, codeHash: string, now: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable('mfa_recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function insertChallenge(db: Db, row: MfaChallengeRow): Promise<void> {
  await db.kysely.insertInto('mfa_challenges').values(row).execute();
}

/**
 * Claims one code attempt of a live challenge in one conditional write, before
 * the code is checked: of N concurrent attempts at most `maxAttempts` (minus
 * those made before) get the row back; the rest get undefined, as for a used,
 * expired or unknown challenge.
 */
export async function claimChallengeAttempt(db: Db, tokenHash: string, now: number, maxAttempts: number): Promise<MfaChallengeRow | undefined> {
  return db.kysely
    .updateTable('mfa_challenges')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .where('attempts', '<', maxAttempts)
    .returningAll()
    .executeTakeFirst();
}

/** A live challenge (unused, unexpired, attempts left), read without claiming an attempt. */
export async function findLiveChallenge(db: Db, tokenHash: string, now: number, maxAttempts: number): Promise<MfaChallengeRow | undefined> {
  return db.kysely
    .selectFrom('mfa_challenges')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .where('attempts', '<', maxAttempts)
    .executeTakeFirst();
}

/** Single use: false when another request completed it first. */
export async function completeChallenge(db: Db, id: string, now: number): Promise<boolean> {
  const result = await db.kysely.updateTable('mfa_challenges').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
