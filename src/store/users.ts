import { SignetError } from '../errors.js';
import { sql } from 'kysely';
import type { Db } from './db.js';
import { uniqueViolation } from './db.js';
import type { UserRow } from './schema.js';

export function emailKey(email: string): string {
  return email.toLowerCase();
}

export function usernameKey(username: string): string {
  return username.toLowerCase();
}

export interface NewUser {
  id: string;
  email: string;
  username: string | null;
  name: string | null;
  passwordHash: string;
  now: number;
}

export function newUserRow(user: NewUser): UserRow {
  return {
    id: user.id,
    email: user.email,
    email_key: emailKey(user.email),
    username: user.username,
    username_key: user.username === null ? null : usernameKey(user.username),
    name: user.name,
    password_hash: user.passwordHash,
    email_verified: 0,
    mfa_enabled: 0,
    disabled_at: null,
    created_at: user.now,
    updated_at: user.now,
  };
}

/** Stores a user alone (sign-up when verification is required, so no session yet). */
export async function insertUser(db: Db, user: UserRow): Promise<void> {
  try {
    await db.kysely.insertInto('users').values(user).execute();
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

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findUserByLogin(db: Db, login: { email: string } | { username: string }): Promise<UserRow | undefined> {
  const query = db.kysely.selectFrom('users').selectAll();
  return 'email' in login
    ? query.where('email_key', '=', emailKey(login.email)).executeTakeFirst()
    : query.where('username_key', '=', usernameKey(login.username)).executeTakeFirst();
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
