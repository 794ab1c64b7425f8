import { SignetError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { countLiveAdminKeys, findAdminKeyByHash, insertAdminKey, listAdminKeys, revokeAdminKey, touchAdminKey } from '../../store/admin-keys.js';
import type { AdminKeyRow } from '../../store/schema.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual, randomToken, sha256, uuidv7 } from '../crypto.js';

export type AdminScope = 'read' | 'write';
export const ADMIN_SCOPES: readonly AdminScope[] = ['read', 'write'];

/** An admin API key as listed: never its secret. */
export interface AdminKey {
  id: string;
  name: string;
  scope: AdminScope;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** Every secret starts so, which tells it from an access token at a glance (and to secret scanners). */
export const ADMIN_KEY_PREFIX = 'sgn_admin_';
const SECRET = /^sgn_admin_[A-Za-z0-9_-]{43}$/;
const EXISTS_CACHE_MS = 2000;
const TOUCH_EVERY_MS = 60_000;

/**
 * Admin API keys: created by the CLI, shown once, stored as SHA-256 (a 256-bit
 * random secret needs no slow hash), scoped read or write, revocable. The
 * admin routes exist only while a live key does.
 */
export class AdminKeys {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #onEvent: (event: string, fields: Record<string, unknown>) => void;
  #exists: { at: number; value: boolean } | undefined;

  constructor(options: { db: Db; clock: Clock; onEvent: (event: string, fields: Record<string, unknown>) => void }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#onEvent = options.onEvent;
  }

  async create(input: { name: string; scope: AdminScope }, actor: string): Promise<{ key: AdminKey; secret: string }> {
    const name = input.name.trim();
    if (name.length < 1 || name.length > 100) throw invalid('name', 'must be 1 to 100 characters');
    if (!ADMIN_SCOPES.includes(input.scope)) throw invalid('scope', 'must be read or write');
    const now = this.#clock.now();
    const secret = `${ADMIN_KEY_PREFIX}${randomToken()}`;
    const row: AdminKeyRow = { id: uuidv7(now), name, scope: input.scope, secret_hash: sha256(secret), created_at: now, last_used_at: null, revoked_at: null };
    await insertAdminKey(this.#db, row);
    this.#exists = undefined;
    this.#onEvent('admin.key_created', { keyId: row.id, scope: row.scope, actor });
    return { key: toKey(row), secret };
  }

  async list(): Promise<AdminKey[]> {
    return (await listAdminKeys(this.#db)).map(toKey);
  }

  async revoke(id: string, actor: string): Promise<void> {
    if (!(await revokeAdminKey(this.#db, id, this.#clock.now()))) throw new SignetError('not_found', { message: 'No live admin key has this id' });
    this.#exists = undefined;
    this.#onEvent('admin.key_revoked', { keyId: id, actor });
  }

  /** Whether any live key exists (cached a moment: asked on every admin request). */
  async anyLive(): Promise<boolean> {
    const now = this.#clock.now();
    if (this.#exists && now - this.#exists.at < EXISTS_CACHE_MS) return this.#exists.value;
    const value = (await countLiveAdminKeys(this.#db)) > 0;
    this.#exists = { at: now, value };
    return value;
  }

  /** The live key a secret belongs to, or undefined. */
  async authenticate(secret: string): Promise<AdminKey | undefined> {
    if (!SECRET.test(secret)) return undefined;
    const hash = sha256(secret);
    const row = await findAdminKeyByHash(this.#db, hash);
    // The lookup was by hash; comparing it again in constant time costs nothing and keeps the rule simple.
    if (!row || row.revoked_at !== null || !constantTimeEqual(row.secret_hash, hash)) return undefined;
    const now = this.#clock.now();
    if (row.last_used_at === null || now - row.last_used_at > TOUCH_EVERY_MS) await touchAdminKey(this.#db, row.id, now);
    return toKey(row);
  }
}

function toKey(row: AdminKeyRow): AdminKey {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
  };
}

function invalid(field: string, message: string): SignetError {
  return new SignetError('validation_failed', { details: [{ field, message }] });
}
