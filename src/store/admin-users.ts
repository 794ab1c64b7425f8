import { sql } from 'kysely';
import type { Db } from './db.js';
import type { UserRecord } from '../model.js';
import { conflictError, emailKey, toUser, usernameKey } from './users.js';

/** What `users list` narrows by; every field optional. */
export interface UserFilter {
  /** Start of the email (case-insensitive): served by the email index. */
  emailPrefix?: string | undefined;
  /** Start of the username (case-insensitive): served by the username index. */
  usernamePrefix?: string | undefined;
  /** Anywhere in the email or username: reads every row, slower on large tables. */
  contains?: string | undefined;
  createdFrom?: Date | undefined;
  createdTo?: Date | undefined;
  verified?: boolean | undefined;
  mfa?: boolean | undefined;
  disabled?: boolean | undefined;
  role?: string | undefined;
}

/** Where a page ends, newest first: the last row's (created_at, id). */
export interface UserCursor {
  createdAt: number;
  id: string;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * One page of users newest first, after `cursor` (a keyset, never an offset:
 * page 10 000 costs what page 1 does). Returns one row more than `limit` when
 * another page follows.
 */
export async function listUsers(db: Db, filter: UserFilter, cursor: UserCursor | undefined, limit: number): Promise<UserRecord[]> {
  let query = db.kysely.selectFrom('users').selectAll();
  const prefix = (column: 'email_key' | 'username_key', value: string) => {
    // SQLite compares the key's range (its LIKE folds case and skips a BINARY index); PostgreSQL uses LIKE on a pattern_ops index.
    query =
      db.dialect === 'sqlite'
        ? query.where(column, '>=', value).where(column, '<', `${value}\u{10ffff}`)
        : query.where(sql<boolean>`${sql.ref(column)} like ${`${escapeLike(value)}%`}`);
  };
  if (filter.emailPrefix) prefix('email_key', emailKey(filter.emailPrefix));
  if (filter.usernamePrefix) prefix('username_key', usernameKey(filter.usernamePrefix));
  if (filter.contains) {
    const pattern = `%${escapeLike(filter.contains.toLowerCase())}%`;
    query = query.where((eb) =>
      eb.or([eb('email_key', 'like', sql<string>`${pattern} escape '\\'`), eb('username_key', 'like', sql<string>`${pattern} escape '\\'`)]),
    );
  }
  if (filter.createdFrom) query = query.where('created_at', '>=', filter.createdFrom.getTime());
  if (filter.createdTo) query = query.where('created_at', '<', filter.createdTo.getTime());
  if (filter.verified !== undefined) query = query.where('email_verified', '=', filter.verified ? 1 : 0);
  if (filter.mfa !== undefined) query = query.where('mfa_enabled', '=', filter.mfa ? 1 : 0);
  if (filter.disabled !== undefined) query = query.where('disabled_at', filter.disabled ? 'is not' : 'is', null);
  // Role names hold no quote or LIKE wildcard that matters here: `"name"` matches that array element only.
  if (filter.role) query = query.where('roles', 'like', `%${JSON.stringify(filter.role)}%`);
  if (cursor) query = query.where(sql<boolean>`(created_at, id) < (${cursor.createdAt}, ${cursor.id})`);
  const rows = await query
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  return rows.map(toUser);
}

/** Finds by id, else by email, else by username: what an operator types. */
export async function findUserByAnyKey(db: Db, key: string): Promise<UserRecord | undefined> {
  const row = await db.kysely
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb.or([eb('id', '=', key), eb('email_key', '=', emailKey(key)), eb('username_key', '=', usernameKey(key))]))
    .orderBy(sql`case when id = ${key} then 0 else 1 end`)
    .executeTakeFirst();
  return row && toUser(row);
}

/** The fields an operator may change; `undefined` leaves a field alone. */
export interface UserChanges {
  email?: string;
  emailVerified?: boolean;
  username?: string | null;
  name?: string | null;
  roles?: string[];
  appMetadata?: Record<string, unknown>;
  passwordHash?: string;
  disabledAt?: Date | null;
}

/** Applies `changes`; undefined when no such user. A taken email or username throws 409. */
export async function updateUser(db: Db, id: string, changes: UserChanges, now: number): Promise<UserRecord | undefined> {
  const set: Record<string, unknown> = { updated_at: now };
  if (changes.email !== undefined) Object.assign(set, { email: changes.email, email_key: emailKey(changes.email) });
  if (changes.emailVerified !== undefined) set.email_verified = changes.emailVerified ? 1 : 0;
  if (changes.username !== undefined)
    Object.assign(set, { username: changes.username, username_key: changes.username === null ? null : usernameKey(changes.username) });
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.roles !== undefined) set.roles = JSON.stringify(changes.roles);
  if (changes.appMetadata !== undefined) set.app_metadata = JSON.stringify(changes.appMetadata);
  if (changes.passwordHash !== undefined) set.password_hash = changes.passwordHash;
  if (changes.disabledAt !== undefined) set.disabled_at = changes.disabledAt === null ? null : changes.disabledAt.getTime();
  try {
    const result = await db.kysely.updateTable('users').set(set).where('id', '=', id).executeTakeFirst();
    if (result.numUpdatedRows === 0n) return undefined;
  } catch (error) {
    throw conflictError(error) ?? error;
  }
  const row = await db.kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return toUser(row);
}

/** Deletes a user; everything of theirs goes with them (foreign keys cascade). */
export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.kysely.deleteFrom('users').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
