import type { Readable } from 'node:stream';
import { isSignetError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { uniqueViolation } from '../../store/db.js';
import { exportPage, findExistingKeys, writeImportBatch } from '../../store/import.js';
import type { ExistingKeys, ImportUpdate } from '../../store/import.js';
import type { UserRow } from '../../store/schema.js';
import { emailKey, toUser, usernameKey } from '../../store/users.js';
import type { Clock } from '../clock.js';
import { uuidv7 } from '../crypto.js';
import { validateAppMetadata, validateRoles } from './claims.js';
import { emailProblem, importedHashProblem, nameProblem, usernameProblem } from './fields.js';
import { exportHeader, exportLine, readRecords } from './import-formats.js';
import type { ImportFormat } from './import-formats.js';

export type ImportKey = 'email' | 'username' | 'id';
export type OnConflict = 'skip' | 'update';

export type RejectReason =
  'unreadable' | 'bad_id' | 'bad_email' | 'bad_username' | 'bad_field' | 'missing_password' | 'unknown_hash_format' | 'hash_cost_out_of_bounds' | 'duplicate';

export interface RejectedRow {
  line: number;
  reason: RejectReason;
  message: string;
}

export interface ImportOptions {
  format: ImportFormat;
  /** Which column says two rows are the same user. Default `email`. */
  key?: ImportKey;
  /** What to do with a row whose key names an existing user. Default `skip`. */
  onConflict?: OnConflict;
  /** Check every row and report, write nothing. */
  dryRun?: boolean;
  /** Mark imported addresses verified (rows may say so with `email_verified`). */
  verified?: boolean;
  /** Called for each rejected row as it is found (the report keeps counts only: memory stays flat). */
  onReject?: (row: RejectedRow) => void;
  /** Called after each batch. */
  onProgress?: (progress: ImportProgress) => void;
  batchSize?: number;
}

export interface ImportProgress {
  rows: number;
  inserted: number;
  updated: number;
  skipped: number;
  rejected: number;
}

export interface ImportReport extends ImportProgress {
  dryRun: boolean;
  rejectedByReason: Partial<Record<RejectReason, number>>;
}

/** A row that passed the field checks. */
interface Candidate {
  line: number;
  row: UserRow;
}

const ID = /^[A-Za-z0-9._:@-]{1,64}$/;
const TRUE = new Set(['1', 'true', 'yes', 't', 'y']);

/**
 * Brings users from another system in with their existing password hashes
 * (bcrypt `$2a$/$2b$/$2y$`, Argon2 PHC), which are checked for format and cost
 * and never computed. Imported bcrypt hashes are upgraded to Argon2id at each
 * user's first sign-in (AccountService). Streaming, batched in transactions,
 * idempotent: re-running skips (or updates) the rows whose key already exists.
 *
 * A row whose key matches an existing user is skipped or updated; one whose
 * key is new but whose email or username belongs to another user, or which
 * repeats a key earlier in the same batch, is rejected as a duplicate.
 */
export class UserImporter {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #onEvent: (event: string, fields: Record<string, unknown>) => void;

  constructor(options: { db: Db; clock: Clock; onEvent: (event: string, fields: Record<string, unknown>) => void }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#onEvent = options.onEvent;
  }

  async import(input: Readable, options: ImportOptions, actor: string): Promise<ImportReport> {
    const key = options.key ?? 'email';
    const onConflict = options.onConflict ?? 'skip';
    const batchSize = options.batchSize ?? 2000;
    const report: ImportReport = { rows: 0, inserted: 0, updated: 0, skipped: 0, rejected: 0, dryRun: options.dryRun ?? false, rejectedByReason: {} };
    const reject = (line: number, reason: RejectReason, message: string) => {
      report.rejected += 1;
      report.rejectedByReason[reason] = (report.rejectedByReason[reason] ?? 0) + 1;
      options.onReject?.({ line, reason, message });
    };
    let batch: Candidate[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await this.#writeBatch(batch, { key, onConflict, dryRun: report.dryRun }, report, reject);
      batch = [];
      options.onProgress?.({ rows: report.rows, inserted: report.inserted, updated: report.updated, skipped: report.skipped, rejected: report.rejected });
    };
    const now = this.#clock.now();
    for await (const record of readRecords(input, options.format)) {
      report.rows += 1;
      if (record.fields === undefined) {
        reject(record.line, 'unreadable', record.problem ?? 'unreadable');
        continue;
      }
      const checked = checkRow(record.fields, key, now, options.verified ?? false);
      if ('reason' in checked) reject(record.line, checked.reason, checked.message);
      else batch.push({ line: record.line, row: checked });
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    if (!report.dryRun) this.#onEvent('admin.users_imported', { actor, inserted: report.inserted, updated: report.updated, rejected: report.rejected });
    return report;
  }

  async #writeBatch(
    batch: Candidate[],
    options: { key: ImportKey; onConflict: OnConflict; dryRun: boolean },
    report: ImportReport,
    reject: (line: number, reason: RejectReason, message: string) => void,
  ): Promise<void> {
    // A concurrent sign-up can take an address between the check and the write: check again, at most thrice.
    for (let attempt = 1; ; attempt++) {
      const plan = await this.#plan(batch, options);
      if (!options.dryRun) {
        try {
          await writeImportBatch(this.#db, plan.inserts, plan.updates);
        } catch (error) {
          if (uniqueViolation(error) !== undefined && attempt < 3) continue;
          throw error;
        }
      }
      for (const r of plan.rejects) reject(r.line, r.reason, r.message);
      report.inserted += plan.inserts.length;
      report.updated += plan.updates.length;
      report.skipped += plan.skipped;
      return;
    }
  }

  async #plan(batch: Candidate[], options: { key: ImportKey; onConflict: OnConflict }) {
    const existing = await findExistingKeys(this.#db, {
      ids: batch.map((c) => c.row.id),
      emailKeys: batch.map((c) => c.row.email_key),
      usernameKeys: batch.flatMap((c) => (c.row.username_key === null ? [] : [c.row.username_key])),
    });
    const byId = new Map<string, ExistingKeys>();
    const byEmail = new Map<string, ExistingKeys>();
    const byUsername = new Map<string, ExistingKeys>();
    const index = (e: ExistingKeys) => {
      byId.set(e.id, e);
      byEmail.set(e.email_key, e);
      if (e.username_key !== null) byUsername.set(e.username_key, e);
    };
    for (const e of existing) index(e);
    const inserts: UserRow[] = [];
    const updates: { id: string; set: ImportUpdate }[] = [];
    const rejects: RejectedRow[] = [];
    let skipped = 0;
    const seen = new Set<string>();
    for (const { line, row } of batch) {
      const keyValue = options.key === 'id' ? row.id : options.key === 'email' ? row.email_key : row.username_key;
      if (keyValue === null) {
        rejects.push({ line, reason: 'bad_username', message: 'the import key is username, and this row has none' });
        continue;
      }
      if (seen.has(keyValue)) {
        rejects.push({ line, reason: 'duplicate', message: `the same ${options.key} as an earlier row` });
        continue;
      }
      seen.add(keyValue);
      const match = options.key === 'id' ? byId.get(row.id) : options.key === 'email' ? byEmail.get(row.email_key) : byUsername.get(keyValue);
      // Any other user holding one of this row's unique values makes it a duplicate.
      const clash = [byId.get(row.id), byEmail.get(row.email_key), row.username_key === null ? undefined : byUsername.get(row.username_key)].find(
        (other) => other !== undefined && other.id !== match?.id,
      );
      if (match && options.onConflict === 'skip') {
        skipped += 1;
        continue;
      }
      if (clash) {
        const field = clash.email_key === row.email_key ? 'email' : clash.username_key !== null && clash.username_key === row.username_key ? 'username' : 'id';
        rejects.push({ line, reason: 'duplicate', message: `another user has this ${field}` });
        continue;
      }
      if (match) {
        updates.push({
          id: match.id,
          set: {
            email: row.email,
            email_key: row.email_key,
            username: row.username,
            username_key: row.username_key,
            password_hash: row.password_hash,
            name: row.name,
            email_verified: row.email_verified,
            roles: row.roles,
            app_metadata: row.app_metadata,
            updated_at: row.updated_at,
          },
        });
        index({ id: match.id, email_key: row.email_key, username_key: row.username_key });
      } else {
        inserts.push(row);
        index({ id: row.id, email_key: row.email_key, username_key: row.username_key });
      }
    }
    return { inserts, updates, rejects, skipped };
  }

  /** Every user, in id order, in the format import reads (with password hashes: keep the file secret). */
  async *export(format: ImportFormat): AsyncGenerator<string> {
    yield exportHeader(format);
    let after: string | undefined;
    for (;;) {
      const rows = await exportPage(this.#db, after, 2000);
      if (rows.length === 0) return;
      let chunk = '';
      for (const row of rows) {
        const user = toUser(row);
        chunk += exportLine(format, {
          id: user.id,
          username: user.username,
          email: user.email,
          password: user.passwordHash,
          name: user.name,
          email_verified: user.emailVerified,
          roles: user.roles,
          app_metadata: user.appMetadata,
        });
      }
      yield chunk;
      after = rows.at(-1)!.id;
    }
  }
}

/** A row's fields checked and turned into a user row, or why not. */
function checkRow(fields: Record<string, unknown>, key: ImportKey, now: number, verifiedDefault: boolean): UserRow | { reason: RejectReason; message: string } {
  const text = (name: string): string | undefined => {
    const value = fields[name];
    if (value === undefined || value === null) return undefined;
    const s = typeof value === 'string' ? value.trim() : typeof value === 'number' ? String(value) : undefined;
    return s === '' ? undefined : s;
  };
  const rawId = text('id');
  if (rawId !== undefined && !ID.test(rawId)) return { reason: 'bad_id', message: 'an id is 1–64 of letters, digits and . _ : @ -' };
  if (key === 'id' && rawId === undefined) return { reason: 'bad_id', message: 'the import key is id, and this row has none' };
  const email = text('email');
  if (email === undefined) return { reason: 'bad_email', message: 'no email' };
  const emailIssue = emailProblem(email);
  if (emailIssue) return { reason: 'bad_email', message: `email ${emailIssue}` };
  const username = text('username');
  const usernameIssue = username === undefined ? undefined : usernameProblem(username);
  if (usernameIssue) return { reason: 'bad_username', message: `username ${usernameIssue}` };
  const name = text('name');
  const nameIssue = name === undefined ? undefined : nameProblem(name);
  if (nameIssue) return { reason: 'bad_field', message: `name ${nameIssue}` };
  const hash = text('password') ?? text('password_hash');
  if (hash === undefined) return { reason: 'missing_password', message: 'no password hash' };
  const hashIssue = importedHashProblem(hash);
  if (hashIssue) return { reason: hashIssue.reason, message: hashIssue.message };
  let roles: string[] = [];
  let appMetadata: Record<string, unknown> = {};
  try {
    const rawRoles = fields.roles;
    if (rawRoles !== undefined && rawRoles !== '' && rawRoles !== null) {
      const parsed: unknown = typeof rawRoles === 'string' ? JSON.parse(rawRoles) : rawRoles;
      if (!Array.isArray(parsed)) return { reason: 'bad_field', message: 'roles must be a JSON array' };
      roles = validateRoles(parsed);
    }
    const rawApp = fields.app_metadata;
    if (rawApp !== undefined && rawApp !== '' && rawApp !== null) appMetadata = validateAppMetadata(typeof rawApp === 'string' ? JSON.parse(rawApp) : rawApp);
  } catch (error) {
    const detail = isSignetError(error) ? error.details?.[0] : undefined;
    return { reason: 'bad_field', message: detail ? `${detail.field} ${detail.message}` : 'roles or app_metadata is not valid JSON' };
  }
  const verified = fields.email_verified;
  const emailVerified = verified === true || (typeof verified === 'string' && TRUE.has(verified.trim().toLowerCase())) || verified === 1 || verifiedDefault;
  return {
    id: rawId ?? uuidv7(now),
    email,
    email_key: emailKey(email),
    username: username ?? null,
    username_key: username === undefined ? null : usernameKey(username),
    name: name ?? null,
    password_hash: hash,
    email_verified: emailVerified ? 1 : 0,
    mfa_enabled: 0,
    disabled_at: null,
    created_at: now,
    updated_at: now,
    roles: JSON.stringify(roles),
    app_metadata: JSON.stringify(appMetadata),
  };
}
