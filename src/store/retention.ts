import type { Db } from './db.js';

/**
 * Deletes rows that no request can use any more, a batch at a time (short
 * transactions: on SQLite every statement holds the one write lock). Each
 * function returns how many rows it deleted; callers repeat while a full batch
 * was deleted. Every condition is an index range (migrations 005 and 007).
 */
export const prune = {
  /** Ended sessions (their refresh tokens go with them: ON DELETE CASCADE). */
  async endedSessions(db: Db, cutoff: number, batch: number): Promise<number> {
    return deleted(
      await db.kysely
        .deleteFrom('sessions')
        .where('id', 'in', (eb) => eb.selectFrom('sessions').select('id').where('ended_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
  },

  /** Sessions past their absolute lifetime, ended or not. */
  async expiredSessions(db: Db, cutoff: number, batch: number): Promise<number> {
    return deleted(
      await db.kysely
        .deleteFrom('sessions')
        .where('id', 'in', (eb) => eb.selectFrom('sessions').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
  },

  /** Refresh tokens rotated long ago (the grace window is seconds) or expired, in live sessions. */
  async refreshTokens(db: Db, cutoff: number, batch: number): Promise<number> {
    const rotated = deleted(
      await db.kysely
        .deleteFrom('refresh_tokens')
        .where('id', 'in', (eb) => eb.selectFrom('refresh_tokens').select('id').where('rotated_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    const expired = deleted(
      await db.kysely
        .deleteFrom('refresh_tokens')
        .where('id', 'in', (eb) => eb.selectFrom('refresh_tokens').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    return rotated + expired;
  },

  /** Verification and reset tokens past their expiry (used and superseded ones expire too). */
  async accountTokens(db: Db, cutoff: number, batch: number): Promise<number> {
    return deleted(
      await db.kysely
        .deleteFrom('account_tokens')
        .where('id', 'in', (eb) => eb.selectFrom('account_tokens').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
  },

  /** MFA challenges (they live five minutes) and TOTP setups never confirmed. */
  async mfa(db: Db, cutoff: number, batch: number): Promise<number> {
    const challenges = deleted(
      await db.kysely
        .deleteFrom('mfa_challenges')
        .where('id', 'in', (eb) => eb.selectFrom('mfa_challenges').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    const pending = deleted(await db.kysely.deleteFrom('mfa_totp').where('enabled_at', 'is', null).where('created_at', '<', cutoff).executeTakeFirst());
    return challenges + pending;
  },

  /** Passkey ceremonies never finished (a challenge lives five minutes). */
  async passkeyChallenges(db: Db, cutoff: number, batch: number): Promise<number> {
    return deleted(
      await db.kysely
        .deleteFrom('webauthn_challenges')
        .where('challenge_hash', 'in', (eb) => eb.selectFrom('webauthn_challenges').select('challenge_hash').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
  },

  /** Sent mail and mail given up on: the recipients go with them. */
  async mail(db: Db, cutoff: number, batch: number): Promise<number> {
    const sent = deleted(
      await db.kysely
        .deleteFrom('mail_outbox')
        .where('id', 'in', (eb) => eb.selectFrom('mail_outbox').select('id').where('sent_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    const failed = deleted(
      await db.kysely
        .deleteFrom('mail_outbox')
        .where('id', 'in', (eb) => eb.selectFrom('mail_outbox').select('id').where('sent_at', 'is', null).where('failed_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    return sent + failed;
  },

  /** Authorization requests nobody finished and codes past their minute (kept a while to recognise reuse). */
  async oidc(db: Db, cutoff: number, batch: number): Promise<number> {
    const requests = deleted(
      await db.kysely
        .deleteFrom('oauth_requests')
        .where('id', 'in', (eb) => eb.selectFrom('oauth_requests').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    const codes = deleted(
      await db.kysely
        .deleteFrom('oauth_codes')
        .where('code_hash', 'in', (eb) => eb.selectFrom('oauth_codes').select('code_hash').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    return requests + codes;
  },

  /** "Sign in with …" flows nobody came back from (ten minutes), and emailed sign-in codes and links past their expiry. */
  async federation(db: Db, cutoff: number, batch: number): Promise<number> {
    const flows = deleted(
      await db.kysely
        .deleteFrom('federation_states')
        .where('state_hash', 'in', (eb) => eb.selectFrom('federation_states').select('state_hash').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    const codes = deleted(
      await db.kysely
        .deleteFrom('email_signin_codes')
        .where('id', 'in', (eb) => eb.selectFrom('email_signin_codes').select('id').where('expires_at', '<', cutoff).limit(batch))
        .executeTakeFirst(),
    );
    return flows + codes;
  },
} as const;

export type PruneKind = keyof typeof prune;

function deleted(result: { numDeletedRows: bigint }): number {
  return Number(result.numDeletedRows);
}
