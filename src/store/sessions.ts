import type { Kysely, Transaction } from 'kysely';
import type { Db } from './db.js';
import type { EndedSession, Session, UserRecord } from '../model.js';
import { conflictError, toUser, toUserRow } from './users.js';
import type { Database, RefreshTokenRow, SessionRow } from './schema.js';

type Executor = Kysely<Database> | Transaction<Database>;

/** A row → the domain object. */
export function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    userId: row.user_id,
    createdAt: new Date(row.created_at),
    lastUsedAt: new Date(row.last_used_at),
    expiresAt: new Date(row.expires_at),
    endedAt: row.ended_at === null ? null : new Date(row.ended_at),
    endReason: row.end_reason,
    userAgent: row.user_agent,
    ip: row.ip,
    clientId: row.client_id,
    parentSessionId: row.parent_session_id,
    scope: row.scope,
    audience: row.audience,
    offline: row.offline === 1,
    authTime: new Date(row.auth_time ?? row.created_at),
    amr: row.amr ? row.amr.split(' ') : [],
  };
}

export function toSessionRow(session: Session): SessionRow {
  return {
    id: session.id,
    user_id: session.userId,
    created_at: session.createdAt.getTime(),
    last_used_at: session.lastUsedAt.getTime(),
    expires_at: session.expiresAt.getTime(),
    ended_at: session.endedAt === null ? null : session.endedAt.getTime(),
    end_reason: session.endReason,
    user_agent: session.userAgent,
    ip: session.ip,
    client_id: session.clientId,
    parent_session_id: session.parentSessionId,
    scope: session.scope,
    audience: session.audience,
    offline: session.offline ? 1 : 0,
    auth_time: session.authTime.getTime() === session.createdAt.getTime() ? null : session.authTime.getTime(),
    amr: session.amr.length > 0 ? session.amr.join(' ') : null,
  };
}

/** Stores a new session and its first refresh token, and the user too at sign-up: all or nothing. */
export async function insertSession(db: Db, session: Session, token: RefreshTokenRow, newUser?: UserRecord): Promise<void> {
  try {
    await db.kysely.transaction().execute(async (trx) => {
      if (newUser) await trx.insertInto('users').values(toUserRow(newUser)).execute();
      await trx.insertInto('sessions').values(toSessionRow(session)).execute();
      await trx.insertInto('refresh_tokens').values(token).execute();
    });
  } catch (error) {
    throw (newUser && conflictError(error)) || error;
  }
}

/**
 * A session is live until it is ended, reaches its absolute end, or goes unused
 * (no refresh) past the idle limit: `idleCutoff` is now minus that limit.
 */
export interface Liveness {
  now: number;
  idleCutoff: number;
}

export async function findLiveSession(db: Db, sessionId: string, userId: string, at: Liveness): Promise<{ user: UserRecord; session: Session } | undefined> {
  // One round trip: this runs on every protected request.
  const row = await db.kysely
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select([
      's.id as s_id',
      's.created_at as s_created_at',
      's.last_used_at as s_last_used_at',
      's.expires_at as s_expires_at',
      's.user_agent as s_user_agent',
      's.ip as s_ip',
      's.client_id as s_client_id',
      's.parent_session_id as s_parent_session_id',
      's.scope as s_scope',
      's.audience as s_audience',
      's.offline as s_offline',
      's.auth_time as s_auth_time',
      's.amr as s_amr',
    ])
    .selectAll('u')
    .where('s.id', '=', sessionId)
    .where('s.user_id', '=', userId)
    .where('s.ended_at', 'is', null)
    .where('s.expires_at', '>', at.now)
    .where('s.last_used_at', '>', at.idleCutoff)
    .where('u.disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  const {
    s_id,
    s_created_at,
    s_last_used_at,
    s_expires_at,
    s_user_agent,
    s_ip,
    s_client_id,
    s_parent_session_id,
    s_scope,
    s_audience,
    s_offline,
    s_auth_time,
    s_amr,
    ...user
  } = row;
  return {
    user: toUser(user),
    session: toSession({
      id: s_id,
      user_id: user.id,
      created_at: s_created_at,
      last_used_at: s_last_used_at,
      expires_at: s_expires_at,
      ended_at: null,
      end_reason: null,
      user_agent: s_user_agent,
      ip: s_ip,
      client_id: s_client_id,
      parent_session_id: s_parent_session_id,
      scope: s_scope,
      audience: s_audience,
      offline: s_offline,
      auth_time: s_auth_time,
      amr: s_amr,
    }),
  };
}

export async function findRefreshToken(db: Db, tokenHash: string): Promise<{ token: RefreshTokenRow; session: Session } | undefined> {
  const token = await db.kysely.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  if (!token) return undefined;
  const session = await db.kysely.selectFrom('sessions').selectAll().where('id', '=', token.session_id).executeTakeFirstOrThrow();
  return { token, session: toSession(session) };
}

export async function findRefreshTokenById(db: Db, id: string): Promise<RefreshTokenRow | undefined> {
  return db.kysely.selectFrom('refresh_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Claims `parent` for rotation and stores its successor in one transaction. The
 * conditional update is the lock: of two concurrent rotations exactly one sees
 * `rotated_at IS NULL`; the other gets `false` and takes the grace path.
 */
export async function rotateRefreshToken(db: Db, parentId: string, successor: RefreshTokenRow, sealed: string, now: number): Promise<boolean> {
  return db.kysely.transaction().execute(async (trx) => {
    const claimed = await trx
      .updateTable('refresh_tokens')
      .set({ rotated_at: now, successor_sealed: sealed })
      .where('id', '=', parentId)
      .where('rotated_at', 'is', null)
      .executeTakeFirst();
    if (claimed.numUpdatedRows === 0n) return false;
    await trx.insertInto('refresh_tokens').values(successor).execute();
    await touchSession(trx, successor.session_id, now);
    return true;
  });
}

async function touchSession(db: Executor, sessionId: string, now: number): Promise<void> {
  await db.updateTable('sessions').set({ last_used_at: now }).where('id', '=', sessionId).execute();
}

const ENDED = ['id', 'user_id', 'client_id', 'parent_session_id'] as const;

export function toEnded(row: Pick<SessionRow, (typeof ENDED)[number]>): EndedSession {
  return { id: row.id, userId: row.user_id, clientId: row.client_id, parentSessionId: row.parent_session_id };
}

/**
 * Ends a session and the client grants authorized in it that were not given
 * offline access (OpenID Connect Back-Channel Logout §2.7); their refresh
 * tokens die with them. Returns what ended (nothing if it had already ended).
 */
export async function endSession(db: Db, sessionId: string, reason: string, now: number): Promise<EndedSession[]> {
  const rows = await db.kysely
    .updateTable('sessions')
    .set({ ended_at: now, end_reason: reason })
    .where((eb) => eb.or([eb('id', '=', sessionId), eb.and([eb('parent_session_id', '=', sessionId), eb('offline', '=', 0)])]))
    .where('ended_at', 'is', null)
    .returning(ENDED)
    .execute();
  return rows.map(toEnded);
}

/** Ends every session of a user (client grants included) but `exceptSessionId`; returns what ended. */
export async function endUserSessions(db: Db, userId: string, reason: string, now: number, exceptSessionId?: string): Promise<EndedSession[]> {
  return endUserSessionsWith(db.kysely, userId, reason, now, exceptSessionId);
}

/** endUserSessions inside another module's transaction. */
export async function endUserSessionsWith(db: Executor, userId: string, reason: string, now: number, exceptSessionId?: string): Promise<EndedSession[]> {
  let query = db.updateTable('sessions').set({ ended_at: now, end_reason: reason }).where('user_id', '=', userId).where('ended_at', 'is', null);
  if (exceptSessionId !== undefined) query = query.where('id', '!=', exceptSessionId);
  return (await query.returning(ENDED).execute()).map(toEnded);
}

export async function listLiveSessions(db: Db, userId: string, at: Liveness): Promise<Session[]> {
  const rows = await db.kysely
    .selectFrom('sessions')
    .selectAll()
    .where('user_id', '=', userId)
    .where('ended_at', 'is', null)
    .where('expires_at', '>', at.now)
    .where('last_used_at', '>', at.idleCutoff)
    .orderBy('last_used_at', 'desc')
    .execute();
  return rows.map(toSession);
}

/** A position in the list of ended sessions: ordered by end time, then id. */
export interface EndedCursor {
  endedAt: number;
  id: string;
}

/**
 * Sessions ended after `after` (their access tokens may still be unexpired),
 * oldest first, at most `limit`: one index range scan (sessions_ended_at).
 */
export async function listEndedAfter(db: Db, after: EndedCursor, limit: number): Promise<{ id: string; endedAt: number }[]> {
  const rows = await db.kysely
    .selectFrom('sessions')
    .select(['id', 'ended_at'])
    // A row-value comparison, so both databases seek the index instead of scanning it from the start.
    .where((eb) => eb(eb.refTuple('ended_at', 'id'), '>', eb.tuple(after.endedAt, after.id)))
    .orderBy('ended_at', 'asc')
    .orderBy('id', 'asc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, endedAt: r.ended_at! }));
}
