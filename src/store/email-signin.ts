import type { Db } from './db.js';
import type { EmailSigninCodeRow } from './schema.js';

/** Stores a new code (and/or link), retiring the user's earlier unused ones: only the latest mail works. */
export async function issueEmailCode(db: Db, row: EmailSigninCodeRow): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await trx
      .updateTable('email_signin_codes')
      .set({ consumed_at: row.created_at })
      .where('user_id', '=', row.user_id)
      .where('consumed_at', 'is', null)
      .execute();
    await trx.insertInto('email_signin_codes').values(row).execute();
  });
}

/**
 * Claims one attempt at the user's live code in one conditional write, before
 * the code is checked: of N concurrent guesses at most `maxAttempts` (minus
 * earlier ones) get the row back; the rest get undefined, as for a used,
 * expired or missing code.
 */
export async function claimCodeAttempt(db: Db, userId: string, now: number, maxAttempts: number): Promise<EmailSigninCodeRow | undefined> {
  return db.kysely
    .updateTable('email_signin_codes')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('user_id', '=', userId)
    .where('code_hash', 'is not', null)
    .where('consumed_at', 'is', null)
    .where('expires_at', '>', now)
    .where('attempts', '<', maxAttempts)
    .returningAll()
    .executeTakeFirst();
}

/** Uses a code once: false when another request consumed it first. */
export async function consumeCode(db: Db, id: string, now: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable('email_signin_codes')
    .set({ consumed_at: now })
    .where('id', '=', id)
    .where('consumed_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Uses a link once, in one conditional write: the row for the first caller, undefined for every other. */
export async function consumeLink(db: Db, linkHash: string, now: number): Promise<EmailSigninCodeRow | undefined> {
  return db.kysely
    .updateTable('email_signin_codes')
    .set({ consumed_at: now })
    .where('link_hash', '=', linkHash)
    .where('consumed_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Spends one attempt of the account's budget (`cap` per `windowMs`, across
 * codes) with conditional writes only: a window that has run out restarts at
 * one; otherwise the counter moves only while under the cap. False past it.
 */
export async function takeAccountAttempt(db: Db, userId: string, now: number, cap: number, windowMs: number): Promise<boolean> {
  await db.kysely
    .insertInto('email_signin_budgets')
    .values({ user_id: userId, window_started_at: now, attempts: 0 })
    .onConflict((oc) => oc.column('user_id').doNothing())
    .execute();
  const restarted = await db.kysely
    .updateTable('email_signin_budgets')
    .set({ window_started_at: now, attempts: 1 })
    .where('user_id', '=', userId)
    .where('window_started_at', '<=', now - windowMs)
    .executeTakeFirst();
  if (restarted.numUpdatedRows > 0n) return true;
  const taken = await db.kysely
    .updateTable('email_signin_budgets')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('user_id', '=', userId)
    .where('attempts', '<', cap)
    .executeTakeFirst();
  return taken.numUpdatedRows > 0n;
}

/** The address is proven (a code or link mailed to it was used), if it is still the account's address. */
export async function markEmailVerified(db: Db, userId: string, email: string, now: number): Promise<void> {
  await db.kysely.updateTable('users').set({ email_verified: 1, updated_at: now }).where('id', '=', userId).where('email', '=', email).execute();
}
