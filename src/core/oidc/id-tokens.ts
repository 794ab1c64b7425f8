import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, compactVerify, decodeProtectedHeader } from 'jose';
import type { SignetConfig } from '../../config.js';
import type { JwtAlgorithm } from '../../verify/jwt.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../keys.js';

/** OpenID Connect Back-Channel Logout 1.0 §2.4: the one event a logout token carries. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** What an ID token says about a sign-in (OpenID Connect Core §2). */
export interface IdTokenSubject {
  userId: string;
  clientId: string;
  /** The browser session the user signed in with: the `sid` back-channel logout names. */
  sid: string;
  authTime: Date;
  amr: readonly string[];
  nonce?: string | undefined;
  /** The access token issued with it, for `at_hash`. */
  accessToken?: string | undefined;
  /** Profile and email claims the granted scopes allow. */
  claims: Record<string, unknown>;
}

/** A hint Signet issued, read without regard to its expiry (RP-Initiated Logout §2, Core §3.1.2.1). */
export interface IdTokenHint {
  sub: string;
  audiences: string[];
  sid: string | undefined;
}

/**
 * ID tokens and logout tokens, signed by the same keyring as access tokens
 * and verifiable from the same JWKS. Their `typ` differs (`JWT`,
 * `logout+jwt`), and Signet's access-token check demands `at+jwt`, so none of
 * them can stand in for another (RFC 8725 §3.11).
 */
export class IdTokens {
  readonly #keyring: Keyring;
  readonly #config: Pick<SignetConfig, 'publicUrl' | 'accessTokenTtl'>;
  readonly #clock: Clock;

  constructor(options: { keyring: Keyring; config: Pick<SignetConfig, 'publicUrl' | 'accessTokenTtl'>; clock: Clock }) {
    this.#keyring = options.keyring;
    this.#config = options.config;
    this.#clock = options.clock;
  }

  async idToken(subject: IdTokenSubject): Promise<string> {
    const key = this.#keyring.active();
    const now = Math.floor(this.#clock.now() / 1000);
    const claims: Record<string, unknown> = {
      ...subject.claims,
      auth_time: Math.floor(subject.authTime.getTime() / 1000),
      sid: subject.sid,
    };
    if (subject.amr.length > 0) claims.amr = [...subject.amr];
    if (subject.nonce !== undefined) claims.nonce = subject.nonce;
    if (subject.accessToken !== undefined) claims.at_hash = tokenHash(subject.accessToken, key.alg);
    return (
      new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .setIssuer(this.#config.publicUrl)
        .setSubject(subject.userId)
        .setAudience(subject.clientId)
        .setIssuedAt(now)
        // No longer than an access token: the keyring keeps a retired key published that long, no longer.
        .setExpirationTime(now + this.#config.accessTokenTtl)
        .sign(await key.signKey())
    );
  }

  /** Back-Channel Logout §2.4: `events`, `sid`, `sub`, never a `nonce`; two minutes to use it. */
  async logoutToken(clientId: string, userId: string, sid: string): Promise<string> {
    const key = this.#keyring.active();
    const now = Math.floor(this.#clock.now() / 1000);
    return new SignJWT({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, sid })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'logout+jwt' })
      .setIssuer(this.#config.publicUrl)
      .setSubject(userId)
      .setAudience(clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.min(120, this.#config.accessTokenTtl))
      .setJti(randomUUID())
      .sign(await key.signKey());
  }

  /**
   * An ID token Signet issued (its signature by a key still in the keyring,
   * our issuer, `typ` JWT), expired or not; undefined for anything else,
   * including one whose key has since retired.
   */
  async readHint(token: string): Promise<IdTokenHint | undefined> {
    try {
      const header = decodeProtectedHeader(token);
      if (typeof header.kid !== 'string' || typeof header.alg !== 'string' || header.typ !== 'JWT') return undefined;
      const key = this.#keyring.resolve(header.kid, header.alg as JwtAlgorithm);
      if (!key) return undefined;
      const { payload } = await compactVerify(token, key, { algorithms: [header.alg] });
      const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
      if (claims.iss !== this.#config.publicUrl || typeof claims.sub !== 'string') return undefined;
      const audiences =
        typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : [];
      return { sub: claims.sub, audiences, sid: typeof claims.sid === 'string' ? claims.sid : undefined };
    } catch {
      return undefined;
    }
  }
}

/**
 * `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the hash of the
 * access token, the hash being the one of the ID token's algorithm (SHA-512
 * for Ed25519, as the certified implementations do).
 */
export function tokenHash(token: string, alg: JwtAlgorithm): string {
  const digest = createHash(alg === 'EdDSA' ? 'sha512' : 'sha256')
    .update(token, 'ascii')
    .digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}
