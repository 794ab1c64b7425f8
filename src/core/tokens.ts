import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { AccessTokenClaims, JwtRules } from '../verify/jwt.js';
import { JwtVerificationError, VerifiedTokenCache, verifyCached, verifyJwt } from '../verify/jwt.js';
import { LONGEST_AMR } from './amr.js';
import { APP_CLAIM, ROLES_CLAIM, largestClaims } from './admin/claims.js';
import type { Clock } from './clock.js';
import type { Keyring } from './keys.js';
import { CLOCK_LEEWAY } from './keys.js';

export interface TokenSubject {
  userId: string;
  sessionId: string;
  email: string;
  emailVerified: boolean;
  clientId?: string | undefined;
  scope?: string | undefined;
  /** The resource server the token is for (RFC 8707); JWT_AUDIENCE when absent. */
  audience?: string | undefined;
  /** Seconds the token lives (a client's shorter lifetime); ACCESS_TOKEN_TTL when absent. */
  ttl?: number | undefined;
  /** How the session's sign-in was proven (RFC 8176); omitted when unknown (sessions from before it was recorded). */
  amr?: readonly string[] | undefined;
  /** Operator-set roles and app data (core/admin/claims.ts); omitted when empty. */
  roles?: readonly string[] | undefined;
  appMetadata?: Record<string, unknown> | undefined;
}

export const DEFAULT_CLIENT_ID = 'signet';

/**
 * Largest access token Signet agrees to issue, bytes. Browsers cap a cookie at
 * 4096 bytes including its name and attributes, and common proxies cap a header
 * line near 8 KB; staying under 3.5 KB leaves room for both.
 */
export const TOKEN_SIZE_BUDGET = 3584;

/** Issues and checks RFC 9068 access tokens. */
export class TokenService {
  readonly #keyring: Keyring;
  readonly #config: Pick<SignetConfig, 'publicUrl' | 'audience' | 'accessTokenTtl'>;
  readonly #clock: Clock;
  readonly #cache = new VerifiedTokenCache();
  readonly rules: JwtRules;

  constructor(options: { keyring: Keyring; config: Pick<SignetConfig, 'publicUrl' | 'audience' | 'accessTokenTtl'>; clock: Clock }) {
    const { keyring, config, clock } = options;
    this.#keyring = keyring;
    this.#config = config;
    this.#clock = clock;
    this.rules = {
      issuer: config.publicUrl,
      audience: config.audience,
      // The configured algorithm, plus that of an older key after JWT_ALG changed.
      get algorithms() {
        return keyring.algorithms();
      },
      leeway: CLOCK_LEEWAY,
      requiredClaims: ['sid'],
    };
  }

  get ttl(): number {
    return this.#config.accessTokenTtl;
  }

  async issue(subject: TokenSubject): Promise<string> {
    const key = this.#keyring.active();
    const now = Math.floor(this.#clock.now() / 1000);
    // Few claims on purpose: the token rides in every request header and cookie (see docs/sessions.md).
    const claims: Record<string, unknown> = {
      client_id: subject.clientId ?? DEFAULT_CLIENT_ID,
      sid: subject.sessionId,
      email: subject.email,
      email_verified: subject.emailVerified,
    };
    if (subject.scope) claims.scope = subject.scope;
    // RFC 9068 §2.2.1 lists amr among the claims an access token may carry: resource servers can ask for a second factor.
    if (subject.amr && subject.amr.length > 0) claims.amr = [...subject.amr];
    if (subject.roles && subject.roles.length > 0) claims[ROLES_CLAIM] = [...subject.roles];
    if (subject.appMetadata && Object.keys(subject.appMetadata).length > 0) claims[APP_CLAIM] = subject.appMetadata;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(this.#config.publicUrl)
      .setAudience(subject.audience ?? this.#config.audience)
      .setSubject(subject.userId)
      .setIssuedAt(now)
      .setExpirationTime(now + (subject.ttl ?? this.#config.accessTokenTtl))
      .setJti(randomUUID())
      .sign(await key.signKey());
  }

  /**
   * Size of the largest token this configuration can produce (longest email,
   * longest client_id, the most roles and app data a user may hold): checked at start against TOKEN_SIZE_BUDGET.
   */
  async worstCaseSize(): Promise<number> {
    const token = await this.issue({
      userId: '00000000-0000-7000-8000-000000000000',
      sessionId: '00000000-0000-7000-8000-000000000000',
      email: `${'a'.repeat(64)}@${'b'.repeat(185)}.test`,
      emailVerified: false,
      clientId: 'c'.repeat(128),
      amr: LONGEST_AMR,
      ...largestClaims(),
    });
    return token.length;
  }

  /**
   * `verify`, and on an unknown kid one re-read of the key table first: another
   * instance may have created a key this one has not loaded yet. At most every 5 s.
   */
  async verifyFresh(token: string): Promise<AccessTokenClaims> {
    try {
      return this.verify(token);
    } catch (error) {
      const unknownKid = error instanceof SignetError && error.cause instanceof JwtVerificationError && error.cause.unknownKid;
      if (!unknownKid || this.#keyring.age() < 5000) throw error;
      await this.#keyring.refresh();
      return this.verify(token);
    }
  }

  /**
   * An access token Signet issued for any audience `accept` takes (UserInfo
   * serves every client's tokens). Not cached: the cache is for the strict
   * check above, and must never answer it for a token judged here.
   */
  verifyIssued(token: string, accept: (audiences: readonly string[]) => boolean): AccessTokenClaims {
    try {
      return verifyJwt(token, { ...this.rules, audience: accept }, this.#keyring.resolve, Math.floor(this.#clock.now() / 1000)).claims;
    } catch (error) {
      if (error instanceof JwtVerificationError) throw new SignetError('invalid_token', { cause: error });
      throw error;
    }
  }

  /** Verifies signature and claims; throws `invalid_token` with the reason kept for the log. */
  verify(token: string): AccessTokenClaims {
    try {
      return verifyCached(this.#cache, token, this.rules, this.#keyring.resolve, Math.floor(this.#clock.now() / 1000));
    } catch (error) {
      if (error instanceof JwtVerificationError) throw new SignetError('invalid_token', { cause: error });
      throw error;
    }
  }
}
