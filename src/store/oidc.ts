import type { Db } from './db.js';
import type { OAuthClientRow, OAuthCodeRow, OAuthConsentRow, OAuthRequestRow, RefreshTokenRow } from './schema.js';
import { toEnded, toSessionRow } from './sessions.js';
import type { EndedSession, OAuthClientRecord, Session } from '../model.js';
import { uniqueViolation } from './db.js';

const strings = (json: string): string[] => JSON.parse(json) as string[];

function toClient(row: OAuthClientRow): OAuthClientRecord {
  return {
    id: row.id,
    name: row.name,
    authMethod: row.auth_method as OAuthClientRecord['authMethod'],
    secretHash: row.secret_hash,
    redirectUris: strings(row.redirect_uris),
    postLogoutRedirectUris: strings(row.post_logout_redirect_uris),
    backchannelLogoutUri: row.backchannel_logout_uri,
    firstParty: row.first_party === 1,
    scopes: strings(row.scopes),
    grantTypes: strings(row.grant_types),
    resources: strings(row.resources),
    accessTokenTtl: row.access_token_ttl,
    refreshTokenTtl: row.refresh_token_ttl,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    disabledAt: row.disabled_at === null ? null : new Date(row.disabled_at),
  };
}

function toClientRow(client: OAuthClientRecord): OAuthClientRow {
  return {
    id: client.id,
    name: client.name,
    auth_method: client.authMethod,
    secret_hash: client.secretHash,
    redirect_uris: JSON.stringify(client.redirectUris),
    post_logout_redirect_uris: JSON.stringify(client.postLogoutRedirectUris),
    backchannel_logout_uri: client.backchannelLogoutUri,
    first_party: client.firstParty ? 1 : 0,
    scopes: JSON.stringify(client.scopes),
    grant_types: JSON.stringify(client.grantTypes),
    resources: JSON.stringify(client.resources),
    access_token_ttl: client.accessTokenTtl,
    refresh_token_ttl: client.refreshTokenTtl,
    created_at: client.createdAt.getTime(),
    updated_at: client.updatedAt.getTime(),
    disabled_at: client.disabledAt === null ? null : client.disabledAt.getTime(),
  };
}

export const oidcClients = {
  /** False when the id is taken. */
  async insert(db: Db, client: OAuthClientRecord): Promise<boolean> {
    try {
      await db.kysely.insertInto('oauth_clients').values(toClientRow(client)).execute();
      return true;
    } catch (error) {
      if (uniqueViolation(error) !== undefined) return false;
      throw error;
    }
  },

  async update(db: Db, client: OAuthClientRecord): Promise<boolean> {
    const row: Partial<OAuthClientRow> = toClientRow(client);
    // The id and the creation time never change.
    delete row.id;
    delete row.created_at;
    const result = await db.kysely.updateTable('oauth_clients').set(row).where('id', '=', client.id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  async find(db: Db, id: string): Promise<OAuthClientRecord | undefined> {
    const row = await db.kysely.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toClient(row);
  },

  async list(db: Db): Promise<OAuthClientRecord[]> {
    return (await db.kysely.selectFrom('oauth_clients').selectAll().orderBy('created_at').execute()).map(toClient);
  },

  async remove(db: Db, id: string): Promise<boolean> {
    return (await db.kysely.deleteFrom('oauth_clients').where('id', '=', id).executeTakeFirst()).numDeletedRows > 0n;
  },
};

export const oidcRequests = {
  async insert(db: Db, row: OAuthRequestRow): Promise<void> {
    await db.kysely.insertInto('oauth_requests').values(row).execute();
  },

  async find(db: Db, id: string, now: number): Promise<OAuthRequestRow | undefined> {
    return db.kysely.selectFrom('oauth_requests').selectAll().where('id', '=', id).where('expires_at', '>', now).executeTakeFirst();
  },

  /** Spends a waiting request: true for exactly one of concurrent callers. */
  async remove(db: Db, id: string): Promise<boolean> {
    return (await db.kysely.deleteFrom('oauth_requests').where('id', '=', id).executeTakeFirst()).numDeletedRows > 0n;
  },
};

export const oidcCodes = {
  async insert(db: Db, row: OAuthCodeRow): Promise<void> {
    await db.kysely.insertInto('oauth_codes').values(row).execute();
  },

  async find(db: Db, codeHash: string): Promise<OAuthCodeRow | undefined> {
    return db.kysely.selectFrom('oauth_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
  },

  /**
   * Redeems a code: claims it with one conditional update and stores the
   * client's grant session (and its first refresh token) in the same
   * transaction. Of two concurrent redemptions exactly one gets `true`; the
   * other sees the code used and gets the session it issued (to end it).
   */
  async redeem(
    db: Db,
    codeHash: string,
    session: Session,
    token: RefreshTokenRow | undefined,
    now: number,
  ): Promise<{ redeemed: true } | { redeemed: false; issuedSessionId: string | null }> {
    return db.kysely.transaction().execute(async (trx) => {
      const claimed = await trx
        .updateTable('oauth_codes')
        .set({ used_at: now, issued_session_id: session.id })
        .where('code_hash', '=', codeHash)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      if (claimed.numUpdatedRows === 0n) {
        const row = await trx.selectFrom('oauth_codes').select('issued_session_id').where('code_hash', '=', codeHash).executeTakeFirst();
        return { redeemed: false as const, issuedSessionId: row?.issued_session_id ?? null };
      }
      await trx.insertInto('sessions').values(toSessionRow(session)).execute();
      if (token) await trx.insertInto('refresh_tokens').values(token).execute();
      return { redeemed: true as const };
    });
  },
};

export const oidcConsents = {
  async find(db: Db, userId: string, clientId: string): Promise<OAuthConsentRow | undefined> {
    return db.kysely.selectFrom('oauth_consents').selectAll().where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  },

  /** Remembers a consent, widening an earlier one to the union of scopes. */
  async grant(db: Db, userId: string, clientId: string, scope: string, now: number): Promise<void> {
    await db.kysely
      .insertInto('oauth_consents')
      .values({ user_id: userId, client_id: clientId, scope, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(['user_id', 'client_id']).doUpdateSet({ scope, updated_at: now }))
      .execute();
  },

  async list(db: Db, userId: string): Promise<OAuthConsentRow[]> {
    return db.kysely.selectFrom('oauth_consents').selectAll().where('user_id', '=', userId).orderBy('updated_at', 'desc').execute();
  },

  async revokeAll(db: Db, clientId: string): Promise<void> {
    await db.kysely.deleteFrom('oauth_consents').where('client_id', '=', clientId).execute();
  },

  async revoke(db: Db, userId: string, clientId: string): Promise<boolean> {
    return (
      (await db.kysely.deleteFrom('oauth_consents').where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst()).numDeletedRows > 0n
    );
  },
};

/** Client grants: sessions of a client under the browser session they were authorized in. */
export const oidcGrants = {
  /** Ids of the clients that were granted anything in these browser sessions (ended grants too). */
  async clientsOf(db: Db, parentSessionIds: readonly string[]): Promise<{ parentSessionId: string; clientId: string; userId: string }[]> {
    if (parentSessionIds.length === 0) return [];
    const rows = await db.kysely
      .selectFrom('sessions')
      .select(['parent_session_id', 'client_id', 'user_id'])
      .distinct()
      .where('parent_session_id', 'in', parentSessionIds)
      .where('client_id', 'is not', null)
      .execute();
    return rows.map((r) => ({ parentSessionId: r.parent_session_id!, clientId: r.client_id!, userId: r.user_id }));
  },

  /** Ends every live grant of a client (of one user, or of all: consent revoked, client disabled or removed). */
  async endForClient(db: Db, clientId: string, userId: string | undefined, reason: string, now: number): Promise<EndedSession[]> {
    let query = db.kysely.updateTable('sessions').set({ ended_at: now, end_reason: reason }).where('client_id', '=', clientId).where('ended_at', 'is', null);
    if (userId !== undefined) query = query.where('user_id', '=', userId);
    return (await query.returning(['id', 'user_id', 'client_id', 'parent_session_id']).execute()).map(toEnded);
  },
};
