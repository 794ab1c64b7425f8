import { SignetError } from '../errors.js';
import { sql } from 'kysely';
import type { Db } from './db.js';
import { uniqueViolation } from './db.js';
import type { UserRecord } from '../model.js';
import type { UserRow } from './schema.js';

export function emailKey(email: string): string {
  return email.toLowerCase();
}

export function usernameKey(username: string): string {
  return username.toLowerCase();
}

/** A new account: what sign-up (or an operator) supplies; the rest starts at its defaults. */
export interface NewUser {
  id: string;
  email: string;
  username: string | null;
  name: string | null;
  passwordHash: string;
  now: number;
}

/** The record of a user about to be stored, as core will see it once it is. */
export function newUser(user: NewUser): UserRecord {
  const at = new Date(user.now);
  return {
    id: user.id,
    email: user.email,
    emailVerified: false,
    username: user.username,
    name: user.name,
    mfaEnabled: false,
    disabledAt: null,
    createdAt: at,
    updatedAt: at,
    roles: [],
    appMetadata: {},
    passwordHash: user.passwordHash,
  };
}

/** A row → the domain object (the one place flags become booleans and times `Date`s). */
export function toUser(row: UserRow): UserRecord {
  return {
    id: row.id,
    email: row.email,
    emailVerified: row.email_verified === 1,
    username: row.username,
    name: row.name,
    mfaEnabled: row.mfa_enabled === 1,
    disabledAt: row.disabled_at === null ? null : new Date(row.disabled_at),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    roles: parseJson(row.roles, Array.isArray, []) as string[],
    appMetadata: parseJson(row.app_metadata, isPlainObject, {}) as Record<string, unknown>,
    passwordHash: row.password_hash,
  };
}

export function toUserRow(user: UserRecord): UserRow {
  return {
    id: user.id,
    email: user.email,
    email_key: emailKey(user.email),
    username: user.username,
    username_key: user.username === null ? null : usernameKey(user.username),
    name: user.name,
    password_hash: user.passwordHash,
    email_verified: user.emailVerified ? 1 : 0,
    mfa_enabled: user.mfaEnabled ? 1 : 0,
    disabled_at: user.disabledAt === null ? null : user.disabledAt.getTime(),
    created_at: user.createdAt.getTime(),
    updated_at: user.updatedAt.getTime(),
    roles: JSON.stringify(user.roles),
    app_metadata: JSON.stringify(user.appMetadata),
  };
}

/** Rows written by core are always valid JSON; anything else (a hand edit) reads as empty, never throws. */
function parseJson(text: string | null | undefined, accept: (value: unknown) => boolean, fallback: unknown): unknown {
  if (!text) return fallback;
  try {
    const value: unknown = JSON.parse(text);
    return accept(value) ? value : fallback;
  } catch {
    return fallback;
  }
}

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Stores a user alone (sign-up when verification is required, so no session yet). */
export async function insertUser(db: Db, user: UserRecord): Promise<void> {
  try {
    await db.kysely.insertInto('users').values(toUserRow(user)).execute();
  } catch (error) {
    throw conflictError(error) ?? error;
  }
}

/** Maps a unique violation on users to `409 email_taken` / `username_taken`; the database decides races. */
export function conflictError(error: unknown): SignetError | undefined {
  const constraint = uniqueViolation(error);
  if (constraint === undefined) return undefined;
  if (constraint.includes('username')) return new SignetError('username_taken', { cause: error });
  return new SignetError('email_taken', { cause: error });
}

export async function findUserById(db: Db, id: string): Promise<UserRecord | undefined> {
  const row = await db.kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toUser(row);
}

export async function findUserByLogin(db: Db, login: { email: string } | { username: string }): Promise<UserRecord | undefined> {
  const query = db.kysely.selectFrom('users').selectAll();
  const row = await ('email' in login
    ? query.where('email_key', '=', emailKey(login.email)).executeTakeFirst()
    : query.where('username_key', '=', usernameKey(login.username)).executeTakeFirst());
  return row && toUser(row);
}

/**
 * Replaces a password hash only if it is still the one that was verified, so a
 * background re-hash can never overwrite a password changed in the meantime.
 */
export async function replacePasswordHash(db: Db, id: string, expected: string, next: string, now: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable('users')
    .set({ password_hash: next, updated_at: now })
    .where('id', '=', id)
    .where('password_hash', '=', expected)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * The bcrypt costs among stored hashes (accounts imported with bcrypt and not
 * yet signed in since). Reads the partial index users_bcrypt_hash only, so it
 * costs nothing once every account is on Argon2id.
 */
export async function bcryptCosts(db: Db): Promise<number[]> {
  // The predicate is spelled exactly as the index's, with a literal, so both planners use the index.
  const { rows } = await sql<{ cost: string }>`select distinct substr(password_hash, 5, 2) as cost from users where password_hash like '$2%'`.execute(
    db.kysely,
  );
  return rows.map((r) => Number(r.cost)).filter((n) => Number.isInteger(n));
}
