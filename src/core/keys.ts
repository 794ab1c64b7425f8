import { createPublicKey, createSecretKey, createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { ConfigError, type SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import { deleteKeys, insertKey, listKeys, updatePrivateKey } from '../store/keys.js';
import type { SigningKeyRow } from '../store/schema.js';
import type { JwtAlgorithm } from '../verify/jwt.js';
import type { Clock } from './clock.js';
import type { Sealer } from './secrets.js';

const SEAL_PURPOSE = 'signet signing key v1';
/** Leeway verifiers are allowed on `exp`; a retiring key outlives its last token by this much. */
export const CLOCK_LEEWAY = 60;

export type KeyState = 'next' | 'active' | 'retiring';

export interface SigningKey {
  kid: string;
  alg: JwtAlgorithm;
  state: KeyState;
  activatesAt: number;
  publicJwk: JWK;
  /** node:crypto key for the verification hot path. */
  verifyKey: KeyObject;
  /** Loaded lazily: only the active key ever signs. */
  signKey: () => Promise<CryptoKey | Uint8Array>;
}

export interface KeyringOptions {
  db: Db;
  config: Pick<SignetConfig, 'jwtAlgorithm' | 'jwtSecret' | 'accessTokenTtl' | 'keyRotationOverlap' | 'keyRotationInterval'>;
  clock: Clock;
  /** Seals private keys at rest (core/secrets.ts). */
  sealer: Sealer;
  onEvent?: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * The signing keys. Stored in the database so every instance shares them; the
 * state of each key is derived from `activates_at` alone (see SigningKeyRow), so
 * instances never disagree about a transition, whoever noticed it first.
 */
export class Keyring {
  readonly #options: KeyringOptions;
  #keys: SigningKey[] = [];
  #loadedAt = 0;

  constructor(options: KeyringOptions) {
    this.#options = options;
  }

  get algorithm(): JwtAlgorithm {
    return this.#options.config.jwtAlgorithm;
  }

  /** Loads keys, generating the first one on first start. */
  async init(): Promise<void> {
    if (this.#options.config.jwtSecret !== undefined) {
      this.#keys = [symmetricKey(this.#options.config.jwtSecret)];
      return;
    }
    await this.refresh();
    // First start, or JWT_ALG changed since the signing key was made: a key of the
    // configured algorithm signs from now on; the old one verifies until its tokens expire.
    const active = this.#keys.find((k) => k.state === 'active');
    if (!active || active.alg !== this.algorithm) {
      await this.#generate(this.#options.clock.now());
      await this.refresh();
    }
  }

  /** Algorithms of the keys that may have signed a live token (normally just the configured one). */
  algorithms(): JwtAlgorithm[] {
    return [...new Set([this.algorithm, ...this.#keys.map((k) => k.alg)])];
  }

  /** Re-reads the key table, drops keys no live token can need, and recomputes states. */
  async refresh(): Promise<void> {
    if (this.#options.config.jwtSecret !== undefined) return;
    const now = this.#options.clock.now();
    const rows = await listKeys(this.#options.db);
    const { keep, drop } = partition(rows, now, this.#retireAfterMs());
    if (drop.length > 0) {
      await deleteKeys(
        this.#options.db,
        drop.map((r) => r.kid),
      );
      this.#options.onEvent?.('keys.dropped', { kids: drop.map((r) => r.kid) });
    }
    this.#keys = await Promise.all(keep.map(({ row, state }) => this.#load(row, state)));
    this.#loadedAt = now;
    await this.#rotateIfDue(now);
  }

  /** Scheduled rotation: once the signing key is KEY_ROTATION_INTERVAL old and no next key waits. */
  async #rotateIfDue(now: number): Promise<void> {
    const interval = this.#options.config.keyRotationInterval * 1000;
    if (interval <= 0 || this.#keys.length === 0 || this.#keys.some((k) => k.activatesAt > now)) return;
    if (now - this.active().activatesAt < interval) return;
    // Two instances may both decide to rotate: both keys get published and the later one
    // wins; the other retires like any old key. Nothing a verifier would notice.
    await this.rotate();
  }

  /** Creates the next key: published now, signing after the overlap (`signet keys rotate`). */
  async rotate(): Promise<SigningKey> {
    if (this.#options.config.jwtSecret !== undefined)
      throw new ConfigError('HS256 keys come from JWT_SECRET and cannot be rotated by Signet; change JWT_SECRET instead');
    const now = this.#options.clock.now();
    const kid = await this.#generate(now + this.#options.config.keyRotationOverlap * 1000);
    await this.refresh();
    return this.#keys.find((k) => k.kid === kid)!;
  }

  /**
   * Withdraws a key before its time (`signet keys retire`): tokens it signed
   * stop verifying at once, here and at every verifier's next JWKS fetch. For a
   * key suspected leaked. The signing key cannot be retired: rotate first and
   * wait until the next key signs.
   */
  async retire(kid: string): Promise<SigningKey> {
    await this.refresh();
    const key = this.#keys.find((k) => k.kid === kid);
    if (!key) throw new SignetError('not_found', { message: `No signing key has kid ${kid}` });
    if (key.state === 'active') {
      throw new SignetError('validation_failed', {
        details: [{ field: 'kid', message: 'this key signs every new token: run `signet keys rotate`, wait KEY_ROTATION_OVERLAP seconds, then retire it' }],
      });
    }
    await deleteKeys(this.#options.db, [kid]);
    this.#options.onEvent?.('keys.retired', { kids: [kid] });
    await this.refresh();
    return key;
  }

  /**
   * The key that signs now: the latest one whose activation time has come,
   * decided from the clock on every call so a next key starts signing at its
   * moment, not at the next refresh.
   */
  active(): SigningKey {
    const now = this.#options.clock.now();
    const key = this.#keys.findLast((k) => k.activatesAt <= now);
    if (!key) throw new Error('keyring has no active key: call init() first');
    return key;
  }

  list(): readonly SigningKey[] {
    return this.#keys;
  }

  /** Verification key for a token header, if the kid is known and its algorithm matches. */
  resolve = (kid: string, alg: JwtAlgorithm): KeyObject | undefined => {
    const key = this.#keys.find((k) => k.kid === kid);
    return key && key.alg === alg ? key.verifyKey : undefined;
  };

  /** Milliseconds since the key table was read. */
  age(): number {
    return this.#options.clock.now() - this.#loadedAt;
  }

  /** Public keys of every key that may have signed a live token, plus the next one. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#keys.filter((k) => k.alg !== 'HS256').map((k) => k.publicJwk) };
  }

  #retireAfterMs(): number {
    return (this.#options.config.accessTokenTtl + CLOCK_LEEWAY) * 1000;
  }

  async #generate(activatesAt: number): Promise<string> {
    const alg = this.#options.config.jwtAlgorithm;
    const { publicKey, privateKey } = await generateKeyPair(alg, alg === 'RS256' ? { modulusLength: 2048, extractable: true } : { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = JSON.stringify(await exportJWK(privateKey));
    await insertKey(this.#options.db, {
      kid,
      alg,
      public_jwk: JSON.stringify({ ...publicJwk, kid, alg, use: 'sig' }),
      private_jwk: this.#options.sealer.seal(SEAL_PURPOSE, privateJwk),
      created_at: this.#options.clock.now(),
      activates_at: activatesAt,
    });
    this.#options.onEvent?.('keys.generated', { kid, alg, activatesAt: new Date(activatesAt).toISOString() });
    return kid;
  }

  async #load(row: SigningKeyRow, state: KeyState): Promise<SigningKey> {
    const existing = this.#keys.find((k) => k.kid === row.kid);
    if (existing) return { ...existing, state };
    const publicJwk = JSON.parse(row.public_jwk) as JWK;
    const alg = row.alg as JwtAlgorithm;
    let privateJwk: JWK | undefined;
    const loadPrivate = async (): Promise<JWK> => (privateJwk ??= await this.#openPrivate(row));
    // Decrypt now so a wrong or missing SIGNET_SECRET stops the start, not the first sign-in.
    if (state === 'active') await loadPrivate();
    let signKey: Promise<CryptoKey | Uint8Array> | undefined;
    return {
      kid: row.kid,
      alg,
      state,
      activatesAt: row.activates_at,
      publicJwk,
      verifyKey: createPublicKey({ key: publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' }),
      signKey: () => (signKey ??= loadPrivate().then((jwk) => importJWK(jwk, alg))),
    };
  }

  async #openPrivate(row: SigningKeyRow): Promise<JWK> {
    const { value, stale } = this.#options.sealer.openOrThrow(SEAL_PURPOSE, row.private_jwk, 'the stored signing keys');
    if (stale) {
      // Written in clear by an older Signet, or sealed with the key file before SIGNET_SECRET was set.
      await updatePrivateKey(this.#options.db, row.kid, this.#options.sealer.seal(SEAL_PURPOSE, value));
      this.#options.onEvent?.('keys.encrypted', { kid: row.kid });
    }
    return JSON.parse(value) as JWK;
  }
}

/**
 * States from activation times: the latest key whose time has come is active;
 * later ones are next; earlier ones retire once the key after them has signed
 * for longer than a token lives.
 */
export function partition(
  rows: SigningKeyRow[],
  now: number,
  retireAfterMs: number,
): { keep: { row: SigningKeyRow; state: KeyState }[]; drop: SigningKeyRow[] } {
  const sorted = [...rows].sort((a, b) => a.activates_at - b.activates_at || a.kid.localeCompare(b.kid));
  const activeIndex = sorted.findLastIndex((r) => r.activates_at <= now);
  const keep: { row: SigningKeyRow; state: KeyState }[] = [];
  const drop: SigningKeyRow[] = [];
  sorted.forEach((row, i) => {
    if (i === activeIndex) keep.push({ row, state: 'active' });
    else if (i > activeIndex) keep.push({ row, state: 'next' });
    else if (now - sorted[i + 1].activates_at < retireAfterMs) keep.push({ row, state: 'retiring' });
    else drop.push(row);
  });
  return { keep, drop };
}

function symmetricKey(secret: string): SigningKey {
  const bytes = Buffer.from(secret, 'utf8');
  // A kid that names the secret without revealing it, so a changed JWT_SECRET is visible in tokens.
  const kid = `hs256-${createHash('sha256').update(bytes).digest('base64url').slice(0, 12)}`;
  return {
    kid,
    alg: 'HS256',
    state: 'active',
    activatesAt: 0,
    publicJwk: {},
    verifyKey: createSecretKey(bytes),
    signKey: () => Promise.resolve(new Uint8Array(bytes)),
  };
}
