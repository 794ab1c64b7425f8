import { createHmac, verify as verifySignature, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/**
 * Compact-JWS access-token verification (RFC 7515, RFC 8725, RFC 9068) on
 * node:crypto. Shared by Signet's own routes and by `signet/verify`.
 *
 * Why not jose's jwtVerify here: jose 6 verifies through WebCrypto, which is
 * asynchronous and runs on libuv's threadpool; measured on the target machine
 * that is 4-14 k verifications/s and it queues behind password hashing. The
 * synchronous node:crypto path costs ~40 µs for RS256 and never waits on the
 * threadpool. Every check jose makes for these tokens is made here too.
 */
export type JwtAlgorithm = 'RS256' | 'ES256' | 'EdDSA' | 'HS256';

export const ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'ES256', 'EdDSA', 'HS256'];

/** The claim carrying a user's roles. */
export const ROLES_CLAIM = 'roles';
/** The claim carrying a user's app data, an object (a collision-resistant name, RFC 7519 §4.2). */
export const APP_CLAIM = 'https://signet/app';

export interface AccessTokenClaims {
  iss: string;
  aud: string | string[];
  sub: string;
  exp: number;
  iat: number;
  sid: string;
  jti?: string;
  client_id?: string;
  scope?: string;
  email?: string;
  email_verified?: boolean;
  /** How the sign-in was proven (RFC 8176 values such as `pwd`, `otp`, `hwk`, `swk`, `user`, `mfa`). */
  amr?: string[];
  /** Operator-set roles (Signet's `signet users update --role`); absent when the user has none. */
  roles?: string[];
  nbf?: number;
  [claim: string]: unknown;
}

export interface JwtRules {
  issuer: string;
  /** The audience that must be among `aud`, or (Signet's UserInfo only) a judge of the whole list. */
  audience: string | ((audiences: readonly string[]) => boolean);
  algorithms: readonly JwtAlgorithm[];
  /** Clock tolerance for exp/nbf, seconds (RFC 8725 suggests small; the contract allows at most 60). */
  leeway: number;
  /** Claims that must be present besides iss, aud, exp, iat, sub. */
  requiredClaims: readonly string[];
}

/** Resolves the key for a `kid` and `alg`, or undefined when none matches. */
export type KeyResolver = (kid: string, alg: JwtAlgorithm) => KeyObject | undefined;

/** `reason` is for logs and tests only; clients see one `invalid_token`. */
export class JwtVerificationError extends Error {
  override readonly name = 'JwtVerificationError';
  readonly code = 'invalid_token';
  readonly reason: string;
  /** Set when the kid was not known: a verifier may refresh its key set once. */
  readonly unknownKid: boolean;

  constructor(reason: string, unknownKid = false) {
    super(`invalid access token: ${reason}`);
    this.reason = reason;
    this.unknownKid = unknownKid;
  }
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;
/** Header parameters that would let the token choose its own key or processing (RFC 8725 §3.5, RFC 7515 §4.1.11). */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'crit'];

export interface VerifiedToken {
  claims: AccessTokenClaims;
  kid: string;
  alg: JwtAlgorithm;
}

export function verifyJwt(token: string, rules: JwtRules, resolveKey: KeyResolver, nowSeconds: number): VerifiedToken {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) throw new JwtVerificationError('malformed');
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];

  const header = decodeJson(encodedHeader, 'header');
  const alg = header.alg;
  if (typeof alg !== 'string' || !(rules.algorithms as readonly string[]).includes(alg)) throw new JwtVerificationError('algorithm not allowed');
  for (const name of FORBIDDEN_HEADERS) if (name in header) throw new JwtVerificationError(`header ${name} not accepted`);
  if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== 'at+jwt') throw new JwtVerificationError('typ is not at+jwt');
  if (typeof header.kid !== 'string' || header.kid === '') throw new JwtVerificationError('kid missing');

  const key = resolveKey(header.kid, alg as JwtAlgorithm);
  if (!key) throw new JwtVerificationError('unknown kid', true);
  const signingInput = Buffer.from(`${encodedHeader}.${encodedPayload}`);
  if (!checkSignature(alg as JwtAlgorithm, key, signingInput, Buffer.from(encodedSignature, 'base64url'))) {
    throw new JwtVerificationError('signature');
  }

  const claims = decodeJson(encodedPayload, 'payload');
  checkClaims(claims, rules, nowSeconds);
  return { claims: claims as AccessTokenClaims, kid: header.kid, alg: alg as JwtAlgorithm };
}

/** Checks the time-dependent claims again: used on every cache hit. */
export function checkTimes(claims: { exp: number; nbf?: number | undefined }, leeway: number, nowSeconds: number): void {
  if (claims.exp <= nowSeconds - leeway) throw new JwtVerificationError('expired');
  if (claims.nbf !== undefined && claims.nbf > nowSeconds + leeway) throw new JwtVerificationError('not yet valid');
}

function checkClaims(claims: Record<string, unknown>, rules: JwtRules, nowSeconds: number): void {
  // RFC 7519 §4.1.3: each principal intended to process the JWT MUST identify itself with a value in the audience claim.
  if (claims.iss !== rules.issuer) throw new JwtVerificationError('issuer');
  const aud = claims.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  const accepted =
    typeof rules.audience === 'string' ? audiences.includes(rules.audience) : rules.audience(audiences.filter((a): a is string => typeof a === 'string'));
  if (!accepted) throw new JwtVerificationError('audience');
  for (const name of ['exp', 'iat'] as const) {
    if (typeof claims[name] !== 'number' || !Number.isFinite(claims[name])) throw new JwtVerificationError(`${name} missing`);
  }
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || !Number.isFinite(claims.nbf))) throw new JwtVerificationError('nbf malformed');
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new JwtVerificationError('sub missing');
  for (const name of rules.requiredClaims) if (claims[name] === undefined || claims[name] === null) throw new JwtVerificationError(`${name} missing`);
  checkTimes(claims as { exp: number; nbf?: number }, rules.leeway, nowSeconds);
}

function normalizeTyp(typ: string): string {
  // RFC 7515 §4.1.9: "application/" may be omitted and media types compare case-insensitively.
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new JwtVerificationError(`${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwtVerificationError(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function checkSignature(alg: JwtAlgorithm, key: KeyObject, input: Buffer, signature: Buffer): boolean {
  // The key's type must match the algorithm: an RSA public key can never become an HMAC secret.
  switch (alg) {
    case 'HS256': {
      if (key.type !== 'secret') return false;
      const expected = createHmac('sha256', key).update(input).digest();
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    }
    case 'RS256':
      return key.asymmetricKeyType === 'rsa' && verifySignature('sha256', input, key, signature);
    case 'ES256':
      return key.asymmetricKeyType === 'ec' && signature.length === 64 && verifySignature('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature);
    case 'EdDSA':
      return key.asymmetricKeyType === 'ed25519' && verifySignature(null, input, key, signature);
  }
}

/**
 * Already-verified tokens keyed by their exact string, bounded, oldest evicted
 * first. A hit skips only the signature and static claim checks; expiry and the
 * key's continued presence are checked on every hit.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, VerifiedToken>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  get(token: string): VerifiedToken | undefined {
    return this.#entries.get(token);
  }

  set(token: string, entry: VerifiedToken): void {
    if (this.#max <= 0) return;
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(token, entry);
  }

  delete(token: string): void {
    this.#entries.delete(token);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** verifyJwt with the cache in front. */
export function verifyCached(cache: VerifiedTokenCache, token: string, rules: JwtRules, resolveKey: KeyResolver, nowSeconds: number): AccessTokenClaims {
  const hit = cache.get(token);
  if (hit) {
    // A key removed from the set (compromise, retirement) takes its tokens with it.
    if (!resolveKey(hit.kid, hit.alg)) {
      cache.delete(token);
      throw new JwtVerificationError('unknown kid', true);
    }
    checkTimes(hit.claims, rules.leeway, nowSeconds);
    return hit.claims;
  }
  const verified = verifyJwt(token, rules, resolveKey, nowSeconds);
  cache.set(token, verified);
  return verified.claims;
}
