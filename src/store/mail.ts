import type { Db } from './db.js';
import type { MailRow } from './schema.js';

export async function enqueueMail(db: Db, mail: MailRow): Promise<void> {
  await db.kysely.insertInto('mail_outbox').values(mail).execute();
}

export async function dueMail(db: Db, now: number, limit: number): Promise<MailRow[]> {
  return db.kysely
    .selectFrom('mail_outbox')
    .selectAll()
    .where('sent_at', 'is', null)
    .where('failed_at', 'is', null)
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
}

/** Takes a message for sending; false if another worker (or instance) has it. */
export async function claimMail(db: Db, id: string, now: number, lockMs: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable('mail_outbox')
    .set({ locked_until: now + lockMs })
    .where('id', '=', id)
    .where('sent_at', 'is', null)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function markMailSent(db: Db, id: string, now: number): Promise<void> {
  await db.kysely.updateTable('mail_outbox').set({ sent_at: now, locked_until: null, text_body: null, html_body: null }).where('id', '=', id).execute();
}

export async function markMailRetry(db: Db, id: string, attempts: number, nextAttemptAt: number, error: string): Promise<void> {
  await db.kysely
    .updateTable('mail_outbox')
    .set({ attempts, next_attempt_at: nextAttemptAt, locked_until: null, last_error: error })
    .where('id', '=', id)
    .execute();
}

export async function markMailFailed(db: Db, id: string, attempts: number, now: number, error: string): Promise<void> {
  await db.kysely
    .updateTable('mail_outbox')
    .set({ attempts, failed_at: now, locked_until: null, last_error: error, text_body: null, html_body: null })
    .where('id', '=', id)
    .execute();
}

export async function listFailedMail(
  db: Db,
  limit = 100,
): Promise<Pick<MailRow, 'id' | 'template' | 'recipient' | 'created_at' | 'attempts' | 'failed_at' | 'last_error'>[]> {
  return db.kysely
    .selectFrom('mail_outbox')
    .select(['id', 'template', 'recipient', 'created_at', 'attempts', 'failed_at', 'last_error'])
    .where('failed_at', 'is not', null)
    .orderBy('failed_at', 'desc')
    .limit(limit)
    .execute();
}
