import { randomBytes, hkdfSync } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import type { SignetConfig } from '../config.js';
import { privateDirectory, tightenFiles } from '../store/files.js';
import { open, seal } from './crypto.js';

/** The key file made on first start when SIGNET_SECRET is unset, in the data directory. */
export const KEY_FILE = 'signet.key';

/**
 * The secret everything Signet keeps at rest is sealed or keyed with: private
 * signing keys, TOTP secrets, queued mail, the audit chain's MAC key, the keys
 * of CSRF tokens and device cookies.
 *
 * It is SIGNET_SECRET when set. Otherwise Signet generates one on first start
 * into `<data dir>/signet.key` (0600), apart from the database: a copied
 * database file, a `signet backup` or a `pg_dump` alone cannot forge a token
 * or read a TOTP secret. Back the key file up separately; several instances
 * on one PostgreSQL database need the same SIGNET_SECRET (or the same file).
 */
export interface AtRestSecret {
  secret: Buffer;
  /** A key file left from before SIGNET_SECRET was set: still opens what it sealed, so it can be re-sealed. */
  previous: Buffer | undefined;
  source: 'SIGNET_SECRET' | 'key file';
  /** Where to find it, for error messages. */
  hint: string;
  /** Key files whose permissions were tightened to 0600 (for a warning). */
  tightened: string[];
}

export function loadAtRestSecret(config: Pick<SignetConfig, 'masterSecret' | 'dataDir'>): AtRestSecret {
  const path = join(config.dataDir, KEY_FILE);
  const tightened = tightenFiles([path]);
  if (config.masterSecret !== undefined) {
    return { secret: Buffer.from(config.masterSecret, 'utf8'), previous: readKeyFile(path), source: 'SIGNET_SECRET', hint: 'SIGNET_SECRET', tightened };
  }
  return { secret: readKeyFile(path) ?? createKeyFile(path, config.dataDir), previous: undefined, source: 'key file', hint: `the key file ${path}`, tightened };
}

function readKeyFile(path: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${path} (${(error as Error).message}): it holds the key that seals Signet's secrets at rest`);
  }
  if (!/^[A-Za-z0-9_-]{43,}$/.test(text)) throw new ConfigError(`${path} is not a Signet key file; restore it from a backup or set SIGNET_SECRET`);
  return Buffer.from(text, 'utf8');
}

function createKeyFile(path: string, dataDir: string): Buffer {
  privateDirectory(dataDir);
  const text = randomBytes(32).toString('base64url');
  let fd: number;
  try {
    // O_EXCL: two processes starting together never write two different keys.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readKeyFile(path)!;
    throw error;
  }
  try {
    writeSync(fd, `${text}\n`);
  } finally {
    closeSync(fd);
  }
  return Buffer.from(text, 'utf8');
}

/**
 * A 256-bit key for one purpose (device cookies, CSRF tokens, the audit chain),
 * derived from the at-rest secret: every instance with the same secret derives
 * the same key, and nothing of it is stored.
 */
export function serverKey(secret: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'signet', `server key: ${purpose}`, 32));
}

/**
 * Seals values kept at rest with the at-rest secret (AES-256-GCM, one derived
 * key per purpose). Values stored before sealing existed, or sealed with the
 * previous key, still open, and say so (`stale`), so the caller can re-seal them.
 */
export class Sealer {
  readonly #keys: AtRestSecret;

  constructor(keys: AtRestSecret) {
    this.#keys = keys;
  }

  get hint(): string {
    return this.#keys.hint;
  }

  seal(purpose: string, plaintext: string): string {
    return seal(this.#keys.secret, purpose, plaintext);
  }

  /** The plaintext, or undefined when neither key opens it (wrong secret, or altered). */
  open(purpose: string, stored: string): { value: string; stale: boolean } | undefined {
    if (!stored.startsWith('v1.')) return { value: stored, stale: true };
    const value = open(this.#keys.secret, purpose, stored);
    if (value !== undefined) return { value, stale: false };
    const previous = this.#keys.previous && open(this.#keys.previous, purpose, stored);
    return previous === undefined ? undefined : { value: previous, stale: true };
  }

  /** Like `open`, for values that must open: a failure names where the secret comes from. */
  openOrThrow(purpose: string, stored: string, what: string): { value: string; stale: boolean } {
    const opened = this.open(purpose, stored);
    if (!opened) throw new ConfigError(`cannot decrypt ${what}: ${this.#keys.hint} is not the secret it was sealed with (was it changed or lost?)`);
    return opened;
  }

  /** Keys derived for `purpose` from the current secret, then the previous one. */
  derived(purpose: string): Buffer[] {
    return [this.#keys.secret, ...(this.#keys.previous ? [this.#keys.previous] : [])].map((secret) => serverKey(secret, purpose));
  }
}
