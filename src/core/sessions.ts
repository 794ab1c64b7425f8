import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import { findUserById } from '../store/users.js';
import {
  endSession,
  endUserSessions,
  findLiveSession,
  findRefreshToken,
  findRefreshTokenById,
  insertSession,
  listEndedAfter,
  listLiveSessions,
  rotateRefreshToken,
} from '../store/sessions.js';
import type { EndedCursor, Liveness } from '../store/sessions.js';
import type { Session, User, UserRecord } from '../model.js';
import type { SessionEnds } from './session-ends.js';
import { SessionCache } from './session-cache.js';
import type { RefreshTokenRow } from '../store/schema.js';
import type { AccessTokenClaims } from '../verify/jwt.js';
import type { Clock } from './clock.js';
import { open, randomToken, seal, sha256, uuidv7 } from './crypto.js';
import type { AuthMethod } from './amr.js';
import type { TokenService } from './tokens.js';
import { CLOCK_LEEWAY } from './keys.js';

export interface ClientContext {
  ip: string | null;
  userAgent: string | null;
  /** The device cookie the client showed, if any (see devices.ts). */
  deviceCookie?: string | undefined;
  /** Aborted when the client goes away: queued hashes for it are dropped. */
  signal?: AbortSignal | undefined;
}

/**
 * The registered client a grant is for (OpenID Connect, or a first-party client
 * using the password grant): its refresh tokens work only for it, and its
 * access tokens may live shorter than ACCESS_TOKEN_TTL.
 */
export interface ClientBinding {
  id: string;
  accessTokenTtl: number | null;
}

/** What a successful sign-in, refresh or MFA verification hands the client. */
export interface Grant {
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  refreshExpiresIn: number;
  sessionId: string;
  session: Session;
  user: User;
}

/** What a client grant hands out: a refresh token only with offline access. */
export type ClientGrant = Omit<Grant, 'refreshToken' | 'refreshExpiresIn'> & { refreshToken?: string; refreshExpiresIn?: number };

/** A client grant to start: what the authorization code carried. */
export interface ClientGrantSpec {
  client: ClientBinding;
  parentSessionId: string;
  scope: string;
  audience: string | undefined;
  /** Granted offline_access: a refresh token, and the grant outlives the browser session. */
  offline: boolean;
  authTime: Date;
  /** How the browser session's sign-in was proven: the grant's ID tokens say it. */
  amr: readonly AuthMethod[];
  /** The grant's absolute end: the browser session's end unless offline. */
  expiresAt: Date;
}

export interface Authenticated {
  user: User;
  session: Session;
  claims: AccessTokenClaims;
}

/** One answer of GET /auth/revocations. */
export interface RevocationPage {
  /** Ids of sessions ended after the cursor asked for, oldest first. */
  sessions: string[];
  /** Seconds an ended session stays in the list: the access-token lifetime plus the verifiers' leeway. */
  horizon: number;
  /** Where the next call resumes (`?since=`). */
  cursor: string;
  /** False when more ids wait: call again at once with `cursor`. */
  complete: boolean;
}

const REVOCATION_PAGE = 5000;
const REVOCATION_SETTLE_MS = 5000;
const CURSOR = /^(\d{1,15})\.([0-9a-f-]{36})?$/;

function formatCursor(cursor: EndedCursor): string {
  return `${cursor.endedAt}.${cursor.id}`;
}

/** A cursor from `?since=`, or undefined when it is not one Signet gave out. */
export function parseRevocationCursor(text: string): EndedCursor | undefined {
  const match = CURSOR.exec(text);
  return match ? { endedAt: Number(match[1]), id: match[2] ?? '' } : undefined;
}

export type SecurityEventSink = (event: string, fields: Record<string, unknown>) => void;

export interface SessionServiceOptions {
  db: Db;
  tokens: TokenService;
  clock: Clock;
  config: Pick<SignetConfig, 'refreshIdleTtl' | 'sessionAbsoluteTtl' | 'refreshReuseGrace'>;
  onEvent: SecurityEventSink;
  ends: SessionEnds;
  /** Live sessions for token reads (see session-cache.ts); none: every check reads the database. */
  cache?: SessionCache;
}

const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const SUCCESSOR_PURPOSE = 'signet refresh successor v1';
const USER_AGENT_MAX = 512;

/**
 * Sessions and their refresh-token chains (RFC 9700 §4.14: rotated on every
 * use, reuse revokes the family).
 *
 * Race safety: rotation claims the presented token with a conditional update,
 * so one of N concurrent refreshes wins. The winner stores the successor's raw
 * value sealed under a key derived from the presented token itself: a loser
 * (or a second tab) presenting the same token within the grace window can open
 * it and receive the same successor, so the chain never forks, and nothing in
 * the database alone can produce a usable refresh token.
 */
export class SessionService {
  readonly #db: Db;
  readonly #tokens: TokenService;
  readonly #clock: Clock;
  readonly #config: Pick<SignetConfig, 'refreshIdleTtl' | 'sessionAbsoluteTtl' | 'refreshReuseGrace'>;
  readonly #onEvent: SecurityEventSink;
  readonly #ends: SessionEnds;
  readonly #cache: SessionCache;
  #revocationHead: { at: number; page: RevocationPage } | undefined;

  constructor(options: SessionServiceOptions) {
    this.#db = options.db;
    this.#tokens = options.tokens;
    this.#clock = options.clock;
    this.#config = options.config;
    this.#onEvent = options.onEvent;
    this.#ends = options.ends;
    this.#cache = options.cache ?? new SessionCache({ ttlMs: 0, max: 0 });
    // Every way a session ends comes through here: its cached copy goes at once.
    this.#ends.subscribe((ended) => this.#cache.forgetSessions(ended.map((s) => s.id)));
  }

  /**
   * Starts a session. `amr` says how the sign-in was proven (see core/amr.ts);
   * it stays with the session, so refreshed access tokens carry it too. With
   * `{ newUser: true }` the user row is inserted in the same transaction
   * (sign-up), after the tokens are signed, so a failure anywhere leaves
   * nothing behind.
   */
  async start(user: UserRecord, context: ClientContext, options: { amr: readonly AuthMethod[]; newUser?: boolean; client?: ClientBinding }): Promise<Grant> {
    const now = this.#clock.now();
    const session: Session = {
      id: uuidv7(now),
      userId: user.id,
      createdAt: new Date(now),
      lastUsedAt: new Date(now),
      expiresAt: new Date(now + this.#config.sessionAbsoluteTtl * 1000),
      endedAt: null,
      endReason: null,
      userAgent: context.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
      ip: context.ip,
      clientId: options.client?.id ?? null,
      parentSessionId: null,
      scope: null,
      audience: null,
      offline: false,
      authTime: new Date(now),
      amr: [...options.amr],
    };
    const refreshToken = randomToken();
    const row = this.#refreshRow(session, refreshToken, null, now);
    const grant = await this.#grant(user, session, refreshToken, row.expires_at, now, options.client);
    await insertSession(this.#db, session, row, options.newUser ? user : undefined);
    return grant;
  }

  /**
   * Starts a client's grant under a browser session (an authorization code
   * redeemed): `save` stores the session and its refresh token together with
   * whatever must commit with them (the code's claim), and answers false when
   * it could not (the code was used): then nothing was issued.
   */
  async startClientGrant(
    user: User,
    spec: ClientGrantSpec,
    context: ClientContext,
    save: (session: Session, token: RefreshTokenRow | undefined) => Promise<boolean>,
  ): Promise<ClientGrant | undefined> {
    const now = this.#clock.now();
    const session: Session = {
      id: uuidv7(now),
      userId: user.id,
      createdAt: new Date(now),
      lastUsedAt: new Date(now),
      expiresAt: spec.expiresAt,
      endedAt: null,
      endReason: null,
      userAgent: context.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
      ip: context.ip,
      clientId: spec.client.id,
      parentSessionId: spec.parentSessionId,
      scope: spec.scope,
      audience: spec.audience ?? null,
      offline: spec.offline,
      authTime: spec.authTime,
      amr: [...spec.amr],
    };
    const refreshToken = spec.offline ? randomToken() : undefined;
    const row = refreshToken === undefined ? undefined : this.#refreshRow(session, refreshToken, null, now);
    const grant = await this.#grant(user, session, refreshToken ?? '', row?.expires_at ?? now, now, spec.client);
    if (!(await save(session, row))) return undefined;
    if (refreshToken === undefined) return { ...grant, refreshToken: undefined, refreshExpiresIn: undefined };
    return grant;
  }

  /**
   * Rotates a refresh token; see the class comment for the grace window. A
   * token of a client's grant works only for that client (RFC 6749 §6), and
   * one of a first-party session only without a registered client.
   */
  async refresh(refreshToken: string, client?: ClientBinding): Promise<Grant> {
    if (!REFRESH_TOKEN.test(refreshToken)) throw invalidRefresh('malformed');
    const found = await findRefreshToken(this.#db, sha256(refreshToken));
    if (!found) throw invalidRefresh('unknown');
    const { session } = found;
    let token = found.token;
    const now = this.#clock.now();
    if (session.clientId !== (client?.id ?? null)) throw invalidRefresh('issued to another client');
    if (!this.#isLive(session, now)) throw invalidRefresh('session ended');
    const user = await findUserById(this.#db, session.userId);
    if (!user || user.disabledAt !== null) throw invalidRefresh('user gone');

    if (token.rotated_at === null) {
      if (token.expires_at <= now) throw invalidRefresh('expired');
      const successor = randomToken();
      const row = this.#refreshRow(session, successor, token.id, now);
      if (await rotateRefreshToken(this.#db, token.id, row, seal(refreshToken, SUCCESSOR_PURPOSE, successor), now)) {
        return this.#grant(user, session, successor, row.expires_at, now, client);
      }
      // Another request rotated it first: answer as a replay of that rotation.
      token = (await findRefreshTokenById(this.#db, token.id)) ?? token;
    }
    return this.#replay(refreshToken, token, user, session, now, client);
  }

  async #replay(presented: string, token: RefreshTokenRow, user: User, session: Session, now: number, client: ClientBinding | undefined): Promise<Grant> {
    const withinGrace = token.rotated_at !== null && now - token.rotated_at <= this.#config.refreshReuseGrace * 1000;
    if (withinGrace && token.successor_sealed !== null) {
      const successor = open(presented, SUCCESSOR_PURPOSE, token.successor_sealed);
      const child = successor === undefined ? undefined : await findRefreshToken(this.#db, sha256(successor));
      // Only the immediate parent of the live head gets it back: never a second branch.
      if (successor !== undefined && child && child.token.rotated_at === null && child.token.expires_at > now) {
        return this.#grant(user, session, successor, child.token.expires_at, now, client);
      }
    }
    // Reuse outside the grace window (or of an older ancestor): the token was
    // probably stolen, so the whole session ends. This write stands on its own,
    // committed before the request fails.
    this.#ends.publish(await endSession(this.#db, session.id, 'refresh_token_reuse', now), 'refresh_token_reuse');
    this.#onEvent('security.refresh_token_reuse', {
      userId: user.id,
      sessionId: session.id,
      rotatedAgoMs: token.rotated_at === null ? null : now - token.rotated_at,
    });
    throw invalidRefresh('reused');
  }

  /**
   * Access token → live user and session, or `invalid_token`. With `cached`
   * (reads: GET routes) a live session checked moments ago answers from
   * memory; state changes always see the database. Only the database refuses:
   * a cached session past its idle or absolute limit is read again.
   */
  async authenticate(accessToken: string, options: { cached?: boolean } = {}): Promise<Authenticated> {
    const claims = await this.#tokens.verifyFresh(accessToken);
    const now = this.#clock.now();
    const at = this.#liveness(now);
    if (options.cached) {
      const hit = this.#cache.get(claims.sid, claims.sub, now);
      if (hit && hit.session.expiresAt.getTime() > now && hit.session.lastUsedAt.getTime() > at.idleCutoff) return { ...hit, claims };
    }
    const epoch = this.#cache.epoch();
    const live = await findLiveSession(this.#db, claims.sid, claims.sub, at);
    if (!live) throw new SignetError('invalid_token', { cause: new Error('session ended or user gone') });
    this.#cache.put(live, epoch, now);
    return { ...live, claims };
  }

  /** A live session of a user with the user, or undefined (ended, expired, idle, user disabled). */
  async findLive(sessionId: string, userId: string): Promise<{ user: User; session: Session } | undefined> {
    return findLiveSession(this.#db, sessionId, userId, this.#liveness(this.#clock.now()));
  }

  /** The session a refresh token belongs to, without using it (CSRF check before a cookie refresh). */
  async sessionOfRefreshToken(refreshToken: string): Promise<string | undefined> {
    if (!REFRESH_TOKEN.test(refreshToken)) return undefined;
    return (await findRefreshToken(this.#db, sha256(refreshToken)))?.session.id;
  }

  /** Ends the session a refresh token belongs to (sign-out by refresh token). */
  async endByRefreshToken(refreshToken: string, reason: string): Promise<boolean> {
    if (!REFRESH_TOKEN.test(refreshToken)) return false;
    const found = await findRefreshToken(this.#db, sha256(refreshToken));
    if (!found) return false;
    return this.end(found.session.id, reason);
  }

  /** Ends a session, and the client grants authorized in it without offline access. */
  async end(sessionId: string, reason: string): Promise<boolean> {
    const ended = await endSession(this.#db, sessionId, reason, this.#clock.now());
    this.#revocationHead = undefined;
    this.#ends.publish(ended, reason);
    const self = ended.find((s) => s.id === sessionId);
    if (self) this.#onEvent('session.ended', { userId: self.userId, sessionId, reason, grants: ended.length - 1 });
    return self !== undefined;
  }

  async endAll(userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    const ended = await endUserSessions(this.#db, userId, reason, this.#clock.now(), exceptSessionId);
    this.#revocationHead = undefined;
    this.#ends.publish(ended, reason);
    if (ended.length > 0) this.#onEvent('session.ended_all', { userId, reason, count: ended.length });
    return ended.length;
  }

  async list(userId: string): Promise<Session[]> {
    return listLiveSessions(this.#db, userId, this.#liveness(this.#clock.now()));
  }

  /**
   * Sessions ended recently enough that their access tokens may still be
   * unexpired, from `cursor` on (see RevocationPage): what `signet/verify`
   * polls to refuse them without a per-request call. Never reaches further back
   * than an access token lives; a page holds at most REVOCATION_PAGE ids. The
   * first page (no cursor) is computed at most once per second per instance.
   */
  async revocations(cursor?: EndedCursor): Promise<RevocationPage> {
    const now = this.#clock.now();
    if (cursor === undefined && this.#revocationHead && now - this.#revocationHead.at < 1000) return this.#revocationHead.page;
    const horizon = this.#tokens.ttl + CLOCK_LEEWAY;
    const oldest: EndedCursor = { endedAt: now - horizon * 1000, id: '' };
    const after = cursor === undefined || cursor.endedAt < oldest.endedAt ? oldest : cursor;
    const rows = await listEndedAfter(this.#db, after, REVOCATION_PAGE);
    const complete = rows.length < REVOCATION_PAGE;
    const last = rows.at(-1);
    let next: EndedCursor = last ? { endedAt: last.endedAt, id: last.id } : after;
    // A session ended just now may commit a moment after a later one (or on an instance whose
    // clock runs behind): a caller that has everything resumes a few seconds back next time.
    const resume = now - REVOCATION_SETTLE_MS;
    if (complete && next.endedAt > resume) next = { endedAt: resume, id: '' };
    const page: RevocationPage = { sessions: rows.map((r) => r.id), horizon, cursor: formatCursor(next), complete };
    if (cursor === undefined) this.#revocationHead = { at: now, page };
    return page;
  }

  #liveness(now: number): Liveness {
    return { now, idleCutoff: now - this.#config.refreshIdleTtl * 1000 };
  }

  #isLive(session: Session, now: number): boolean {
    const { idleCutoff } = this.#liveness(now);
    return session.endedAt === null && session.expiresAt.getTime() > now && session.lastUsedAt.getTime() > idleCutoff;
  }

  #refreshRow(session: Session, raw: string, parentId: string | null, now: number): RefreshTokenRow {
    return {
      id: uuidv7(now),
      session_id: session.id,
      token_hash: sha256(raw),
      parent_id: parentId,
      created_at: now,
      // Rotation never extends the absolute lifetime.
      expires_at: Math.min(now + this.#config.refreshIdleTtl * 1000, session.expiresAt.getTime()),
      rotated_at: null,
      successor_sealed: null,
    };
  }

  async #grant(user: User, session: Session, refreshToken: string, refreshExpiresAt: number, now: number, client: ClientBinding | undefined): Promise<Grant> {
    // A client may have shorter-lived access tokens, never longer: the revocation list's horizon is ACCESS_TOKEN_TTL.
    const ttl = Math.min(client?.accessTokenTtl ?? this.#tokens.ttl, this.#tokens.ttl);
    const accessToken = await this.#tokens.issue({
      userId: user.id,
      sessionId: session.id,
      email: user.email,
      emailVerified: user.emailVerified,
      // The session's client, scopes and audience, not whatever presents the refresh token.
      clientId: session.clientId ?? undefined,
      scope: session.scope ?? undefined,
      audience: session.audience ?? undefined,
      ttl,
      amr: session.amr,
    });
    return {
      accessToken,
      expiresIn: ttl,
      refreshToken,
      refreshExpiresIn: Math.max(0, Math.floor((refreshExpiresAt - now) / 1000)),
      sessionId: session.id,
      session,
      user,
    };
  }
}

function invalidRefresh(reason: string): SignetError {
  return new SignetError('invalid_refresh_token', { cause: new Error(reason) });
}
