import { createHash } from 'node:crypto';
import type { SignetConfig } from '../../config.js';
import { isSignetError } from '../../errors.js';
import type { OAuthClient, User } from '../../model.js';
import type { AuthMethod } from '../amr.js';
import type { Db } from '../../store/db.js';
import { oidcCodes } from '../../store/oidc.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual, sha256 } from '../crypto.js';
import type { ClientBinding, ClientContext, SessionService } from '../sessions.js';
import type { TokenService } from '../tokens.js';
import type { ClientRegistry } from './clients.js';
import { OAuthError } from './errors.js';
import type { IdTokens } from './id-tokens.js';

/** A token endpoint answer (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  id_token?: string;
  refresh_token?: string;
  scope?: string;
}

const CODE = /^[A-Za-z0-9_-]{43}$/;
/** RFC 7636 §4.1. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

export interface OidcGrantsOptions {
  db: Db;
  clock: Clock;
  sessions: SessionService;
  tokens: TokenService;
  idTokens: IdTokens;
  clients: ClientRegistry;
  config: Pick<SignetConfig, 'audience' | 'sessionAbsoluteTtl'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * What the token endpoint and UserInfo do for registered clients: redeem an
 * authorization code (once, within a minute, by the client it was issued to,
 * with the redirect URI and PKCE verifier it was bound to), refresh a
 * client's grant with a new ID token, and answer UserInfo by scope.
 */
export class OidcGrants {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #sessions: SessionService;
  readonly #tokens: TokenService;
  readonly #idTokens: IdTokens;
  readonly #clients: ClientRegistry;
  readonly #config: OidcGrantsOptions['config'];
  readonly #onEvent: OidcGrantsOptions['onEvent'];

  constructor(options: OidcGrantsOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#sessions = options.sessions;
    this.#tokens = options.tokens;
    this.#idTokens = options.idTokens;
    this.#clients = options.clients;
    this.#config = options.config;
    this.#onEvent = options.onEvent;
  }

  /**
   * `grant_type=authorization_code` (RFC 6749 §4.1.3, Core §3.1.3.2). Every
   * binding is checked before the code is claimed, so a thief holding only
   * the code cannot spend it; a code presented again after it was spent ends
   * the grant it issued (RFC 6749 §4.1.2).
   */
  async exchangeCode(
    client: OAuthClient,
    input: { code: string; redirectUri: string | undefined; codeVerifier: string | undefined },
    context: ClientContext,
  ): Promise<TokenResponse> {
    if (!client.grantTypes.includes('authorization_code')) throw new OAuthError('unauthorized_client', 'this client may not use the authorization code grant');
    if (!CODE.test(input.code)) throw invalidGrant('code is malformed');
    const codeHash = sha256(input.code);
    const code = await oidcCodes.find(this.#db, codeHash);
    if (!code) throw invalidGrant('the code is invalid, expired or used');
    if (code.client_id !== client.id) throw invalidGrant('the code was issued to another client');
    if (code.expires_at <= this.#clock.now()) throw invalidGrant('the code is invalid, expired or used');
    if (input.redirectUri !== code.redirect_uri) throw invalidGrant('redirect_uri differs from the authorization request');
    if (code.code_challenge !== null) {
      if (input.codeVerifier === undefined) throw invalidGrant('code_verifier is required');
      if (!CODE_VERIFIER.test(input.codeVerifier)) throw new OAuthError('invalid_request', 'code_verifier is malformed');
      const computed = createHash('sha256').update(input.codeVerifier, 'ascii').digest('base64url');
      if (!constantTimeEqual(computed, code.code_challenge)) throw invalidGrant('code_verifier does not match the code_challenge');
    } else if (input.codeVerifier !== undefined) {
      // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade attempt.
      throw invalidGrant('the authorization request had no code_challenge');
    }
    if (code.used_at !== null) return this.#reused(code.issued_session_id, client.id);
    // The browser session the code came from must still be signed in (and the user enabled).
    const live = await this.#sessions.findLive(code.parent_session_id, code.user_id);
    if (!live) throw invalidGrant('the sign-in behind the code has ended');

    const scopes = code.scope.split(' ');
    const offline = scopes.includes('offline_access');
    const now = this.#clock.now();
    const lifetime = (client.refreshTokenTtl ?? this.#config.sessionAbsoluteTtl) * 1000;
    const grant = await this.#sessions.startClientGrant(
      live.user,
      {
        client: binding(client),
        parentSessionId: code.parent_session_id,
        scope: code.scope,
        audience: code.resource ?? undefined,
        offline,
        authTime: new Date(code.auth_time),
        amr: JSON.parse(code.amr) as AuthMethod[],
        // A grant without offline access lives no longer than the browser session it came from.
        expiresAt: offline ? new Date(now + lifetime) : live.session.expiresAt,
      },
      context,
      async (session, token) => {
        const outcome = await oidcCodes.redeem(this.#db, codeHash, session, token, now);
        return outcome.redeemed;
      },
    );
    if (!grant) {
      const again = await oidcCodes.find(this.#db, codeHash);
      return this.#reused(again?.issued_session_id ?? null, client.id);
    }
    this.#onEvent('oidc.code_redeemed', { userId: live.user.id, clientId: client.id, sessionId: grant.sessionId, offline });
    const idToken = await this.#idTokens.idToken({
      userId: live.user.id,
      clientId: client.id,
      sid: code.parent_session_id,
      authTime: new Date(code.auth_time),
      amr: JSON.parse(code.amr) as string[],
      nonce: code.nonce ?? undefined,
      accessToken: grant.accessToken,
      claims: userClaims(live.user, scopes),
    });
    const response: TokenResponse = {
      access_token: grant.accessToken,
      token_type: 'Bearer',
      expires_in: grant.expiresIn,
      id_token: idToken,
      scope: code.scope,
    };
    if (grant.refreshToken !== undefined) response.refresh_token = grant.refreshToken;
    return response;
  }

  /**
   * `grant_type=refresh_token` for a registered client: the grant's own
   * rotation (race-safe, reuse ends it), a new access token and, for an
   * OpenID grant, a new ID token with the original `auth_time` and no nonce
   * (Core §12.2). A `scope` may repeat the grant or narrow it in the request;
   * the answer states the grant's scope either way (RFC 6749 §3.3).
   */
  async refresh(client: OAuthClient, refreshToken: string, requestedScope: string | undefined): Promise<TokenResponse> {
    if (!client.grantTypes.includes('refresh_token')) throw new OAuthError('unauthorized_client', 'this client may not use refresh tokens');
    const grant = await this.#sessions.refresh(refreshToken, binding(client));
    const scopes = (grant.session.scope ?? '').split(' ').filter(Boolean);
    if (
      requestedScope !== undefined &&
      !requestedScope
        .split(' ')
        .filter(Boolean)
        .every((s) => scopes.includes(s))
    ) {
      throw new OAuthError('invalid_scope', 'scope exceeds what was granted');
    }
    const response: TokenResponse = {
      access_token: grant.accessToken,
      token_type: 'Bearer',
      expires_in: grant.expiresIn,
      refresh_token: grant.refreshToken,
      scope: grant.session.scope ?? '',
    };
    if (scopes.includes('openid') && grant.session.parentSessionId !== null) {
      response.id_token = await this.#idTokens.idToken({
        userId: grant.user.id,
        clientId: client.id,
        sid: grant.session.parentSessionId,
        authTime: grant.session.authTime,
        amr: grant.session.amr,
        accessToken: grant.accessToken,
        claims: userClaims(grant.user, scopes),
      });
    }
    return response;
  }

  /** The password grant for a first-party client that is allowed it (RFC 9700 §2.4 discourages it). */
  assertPasswordGrant(client: OAuthClient | undefined): ClientBinding | undefined {
    if (client && !client.grantTypes.includes('password')) throw new OAuthError('unauthorized_client', 'this client may not use the password grant');
    return client && binding(client);
  }

  /**
   * UserInfo (Core §5.3): an access token Signet issued to a registered
   * client with the `openid` scope, whatever resource it names (the scope is
   * what grants UserInfo), for a live session: `sub` and the claims the
   * granted scopes allow.
   */
  async userinfo(accessToken: string): Promise<Record<string, unknown>> {
    let claims;
    try {
      claims = this.#tokens.verifyIssued(accessToken, (audiences) => audiences.length > 0);
    } catch (error) {
      if (isSignetError(error, 'invalid_token')) throw new OAuthError('invalid_token', 'the access token is invalid');
      throw error;
    }
    const client = typeof claims.client_id === 'string' ? await this.#clients.get(claims.client_id) : undefined;
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
    if (!client || !audiences.some((a) => a === this.#config.audience || client.resources.includes(a))) {
      throw new OAuthError('invalid_token', 'the access token was not issued to a registered client');
    }
    const scopes = (claims.scope ?? '').split(' ');
    if (!scopes.includes('openid')) throw new OAuthError('insufficient_scope', 'the openid scope is required');
    const live = await this.#sessions.findLive(claims.sid, claims.sub);
    if (!live) throw new OAuthError('invalid_token', 'the access token is invalid');
    return { sub: live.user.id, ...userClaims(live.user, scopes) };
  }

  async #reused(issuedSessionId: string | null, clientId: string): Promise<never> {
    if (issuedSessionId !== null) await this.#sessions.end(issuedSessionId, 'authorization_code_reuse');
    this.#onEvent('security.authorization_code_reuse', { clientId, sessionId: issuedSessionId });
    throw invalidGrant('the code is invalid, expired or used');
  }
}

/**
 * Claims by scope (Core §5.4): `profile` gives what Signet holds of a
 * profile, `email` the address and whether it is proven. Claims without a
 * value are left out, never null (§5.3.2).
 */
export function userClaims(user: User, scopes: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (scopes.includes('profile')) {
    if (user.name !== null) claims.name = user.name;
    if (user.username !== null) claims.preferred_username = user.username;
    claims.updated_at = Math.floor(user.updatedAt.getTime() / 1000);
  }
  if (scopes.includes('email')) {
    claims.email = user.email;
    claims.email_verified = user.emailVerified;
  }
  return claims;
}

function binding(client: OAuthClient): ClientBinding {
  return { id: client.id, accessTokenTtl: client.accessTokenTtl };
}

function invalidGrant(description: string): OAuthError {
  return new OAuthError('invalid_grant', description);
}
