import { toPublicUser } from '../users.js';
import type { PublicUser } from '../users.js';
import { SignetError } from '../../errors.js';
import type { SignetConfig } from '../../config.js';
import type { Session, User, UserRecord } from '../../model.js';
import type { Db } from '../../store/db.js';
import { deleteUser, findUserByAnyKey, listUsers, updateUser } from '../../store/admin-users.js';
import type { UserChanges, UserCursor, UserFilter } from '../../store/admin-users.js';
import { insertUser, newUser } from '../../store/users.js';
import type { Clock } from '../clock.js';
import { uuidv7 } from '../crypto.js';
import { assertNotWeak, normalizePassword } from '../passwords.js';
import type { PasswordHasher } from '../passwords.js';
import type { SessionService } from '../sessions.js';
import type { SignInGuard } from '../signin-guard.js';
import { validateAppMetadata, validateRoles } from './claims.js';
import { assertFields, emailProblem, importedHashProblem, nameProblem, passwordProblem, usernameProblem } from './fields.js';

export type { UserFilter } from '../../store/admin-users.js';

/** Who did an admin action, as the audit log records it: `cli`, or `admin_key:<id>`. */
export type Actor = string;

export interface NewUserInput {
  email: string;
  username?: string | null | undefined;
  name?: string | null | undefined;
  /** A password to hash, or… */
  password?: string | undefined;
  /** …an existing bcrypt or Argon2 hash (checked for format and cost only). */
  passwordHash?: string | undefined;
  emailVerified?: boolean | undefined;
  roles?: string[] | undefined;
  appMetadata?: Record<string, unknown> | undefined;
}

export interface UserUpdate {
  email?: string | undefined;
  username?: string | null | undefined;
  name?: string | null | undefined;
  emailVerified?: boolean | undefined;
  roles?: string[] | undefined;
  appMetadata?: Record<string, unknown> | undefined;
}

export interface UserPage {
  users: User[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

export const LIST_MAX = 1000;

/** A user as an operator sees it (CLI `--json`, admin API): no hash, ISO times. */
export interface AdminUserView extends PublicUser {
  disabled: boolean;
  disabledAt: string | null;
  roles: string[];
  appMetadata: Record<string, unknown>;
}

export function adminUserView(user: User): AdminUserView {
  // What the user sees of themselves, and what only operators see.
  return {
    ...toPublicUser(user),
    disabled: user.disabledAt !== null,
    disabledAt: user.disabledAt?.toISOString() ?? null,
    roles: user.roles,
    appMetadata: user.appMetadata,
  };
}

export interface UserAdminOptions {
  db: Db;
  clock: Clock;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
  /** Needed only to set passwords (hashing) … */
  hasher?: PasswordHasher | undefined;
  /** … to end sessions (disable, delete, new password, revoke) … */
  sessions?: SessionService | undefined;
  /** … and to unlock throttled sign-ins. */
  guard?: SignInGuard | undefined;
  config: Pick<SignetConfig, 'passwordMinLength'>;
}

/**
 * What an operator does to accounts, for the CLI and the admin API alike.
 * Every change is an audited event naming its actor. Read-only uses need only
 * the store: the CLI builds the hasher and session machinery for the commands
 * that change something.
 */
export class UserAdmin {
  readonly #o: UserAdminOptions;

  constructor(options: UserAdminOptions) {
    this.#o = options;
  }

  async list(filter: UserFilter, page: { cursor?: string | undefined; limit?: number | undefined } = {}): Promise<UserPage> {
    const limit = page.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) throw invalid('limit', `must be an integer from 1 to ${LIST_MAX}`);
    const cursor = page.cursor === undefined ? undefined : parseCursor(page.cursor);
    if (filter.role !== undefined) validateRoles([filter.role], 'role');
    const rows = await listUsers(this.#o.db, filter, cursor, limit);
    const users = rows.slice(0, limit).map(publicPart);
    const last = users.at(-1);
    return { users, nextCursor: rows.length > limit && last ? formatCursor({ createdAt: last.createdAt.getTime(), id: last.id }) : null };
  }

  /** By id, email or username; `user_not_found` otherwise. */
  async get(key: string): Promise<User> {
    return publicPart(await this.#find(key));
  }

  async create(input: NewUserInput, actor: Actor): Promise<User> {
    const { hasher } = this.#need('hasher');
    const email = input.email.trim();
    const password = input.password === undefined ? undefined : normalizePassword(input.password);
    assertFields({
      email: emailProblem(email),
      username: input.username ? usernameProblem(input.username) : undefined,
      name: input.name ? nameProblem(input.name) : undefined,
      password:
        password !== undefined
          ? passwordProblem(password, this.#o.config.passwordMinLength)
          : input.passwordHash === undefined
            ? 'a password or a password hash is required'
            : undefined,
      passwordHash: input.passwordHash === undefined ? undefined : importedHashProblem(input.passwordHash)?.message,
    });
    if (password !== undefined) assertNotWeak(password, { email, username: input.username });
    const roles = input.roles === undefined ? [] : validateRoles(input.roles);
    const appMetadata = input.appMetadata === undefined ? {} : validateAppMetadata(input.appMetadata);
    const passwordHash = password !== undefined ? await hasher.hash(password) : input.passwordHash!;
    const now = this.#o.clock.now();
    const user: UserRecord = {
      ...newUser({ id: uuidv7(now), email, username: input.username ?? null, name: input.name ?? null, passwordHash, now }),
      emailVerified: input.emailVerified ?? false,
      roles,
      appMetadata,
    };
    await insertUser(this.#o.db, user);
    this.#o.onEvent('admin.user_created', { userId: user.id, actor });
    return publicPart(user);
  }

  async update(key: string, input: UserUpdate, actor: Actor): Promise<User> {
    const user = await this.#find(key);
    const changes: UserChanges = {};
    const email = input.email?.trim();
    assertFields({
      email: email === undefined ? undefined : emailProblem(email),
      username: input.username ? usernameProblem(input.username) : undefined,
      name: input.name ? nameProblem(input.name) : undefined,
    });
    if (email !== undefined && email !== user.email) {
      changes.email = email;
      // A new address is unproven unless the operator says otherwise.
      changes.emailVerified = input.emailVerified ?? false;
    } else if (input.emailVerified !== undefined) changes.emailVerified = input.emailVerified;
    if (input.username !== undefined) changes.username = input.username;
    if (input.name !== undefined) changes.name = input.name;
    if (input.roles !== undefined) changes.roles = validateRoles(input.roles);
    if (input.appMetadata !== undefined) changes.appMetadata = validateAppMetadata(input.appMetadata);
    const updated = await this.#apply(user.id, changes);
    this.#o.onEvent('admin.user_updated', { userId: user.id, actor, fields: Object.keys(changes) });
    return updated;
  }

  /** Disabling refuses sign-in (answered like a wrong password) and ends every session at once. */
  async setDisabled(key: string, disabled: boolean, actor: Actor): Promise<User> {
    const { sessions } = this.#need('sessions');
    const user = await this.#find(key);
    const updated = await this.#apply(user.id, { disabledAt: disabled ? (user.disabledAt ?? new Date(this.#o.clock.now())) : null });
    if (disabled) await sessions.endAll(user.id, 'user_disabled');
    this.#o.onEvent(disabled ? 'admin.user_disabled' : 'admin.user_enabled', { userId: user.id, actor });
    return updated;
  }

  /** Ends the sessions first (back-channel logout fires), then deletes the account and everything of it. */
  async remove(key: string, actor: Actor): Promise<void> {
    const { sessions } = this.#need('sessions');
    const user = await this.#find(key);
    await sessions.endAll(user.id, 'user_deleted');
    if (!(await deleteUser(this.#o.db, user.id))) throw new SignetError('user_not_found');
    this.#o.onEvent('admin.user_deleted', { userId: user.id, actor });
  }

  /** Sets a new password (hashed with the configured Argon2id) and ends every session. */
  async setPassword(key: string, password: string, actor: Actor): Promise<User> {
    const { hasher, sessions } = this.#need('hasher', 'sessions');
    const user = await this.#find(key);
    const normalized = normalizePassword(password);
    assertFields({ password: passwordProblem(normalized, this.#o.config.passwordMinLength) });
    assertNotWeak(normalized, user);
    const updated = await this.#apply(user.id, { passwordHash: await hasher.hash(normalized) });
    await sessions.endAll(user.id, 'password_set_by_admin');
    this.#o.onEvent('admin.password_set', { userId: user.id, actor });
    return updated;
  }

  async verifyEmail(key: string, actor: Actor): Promise<User> {
    const user = await this.#find(key);
    const updated = await this.#apply(user.id, { emailVerified: true });
    this.#o.onEvent('admin.email_verified', { userId: user.id, actor });
    return updated;
  }

  /** Clears the failed-sign-in throttle of the account (see SignInGuard.unlock for its reach). */
  async unlock(key: string, actor: Actor): Promise<User> {
    const { guard } = this.#need('guard');
    const user = await this.#find(key);
    await guard.unlock(user.id);
    this.#o.onEvent('admin.user_unlocked', { userId: user.id, actor });
    return publicPart(user);
  }

  async sessionsOf(key: string): Promise<Session[]> {
    const { sessions } = this.#need('sessions');
    return sessions.list((await this.#find(key)).id);
  }

  /** Ends one session (with the client grants under it); `session_not_found` if it is not live. */
  async revokeSession(sessionId: string, actor: Actor): Promise<void> {
    const { sessions } = this.#need('sessions');
    if (!(await sessions.end(sessionId, 'admin_revoked'))) throw new SignetError('session_not_found');
    this.#o.onEvent('admin.session_revoked', { sessionId, actor });
  }

  /** Ends every session of a user; returns how many. */
  async revokeAllSessions(key: string, actor: Actor): Promise<number> {
    const { sessions } = this.#need('sessions');
    const user = await this.#find(key);
    const count = await sessions.endAll(user.id, 'admin_revoked');
    this.#o.onEvent('admin.sessions_revoked', { userId: user.id, actor, count });
    return count;
  }

  async #find(key: string): Promise<UserRecord> {
    const user = key.length > 0 && key.length <= 254 ? await findUserByAnyKey(this.#o.db, key) : undefined;
    if (!user) throw new SignetError('user_not_found');
    return user;
  }

  async #apply(id: string, changes: UserChanges): Promise<User> {
    const updated = await updateUser(this.#o.db, id, changes, this.#o.clock.now());
    if (!updated) throw new SignetError('user_not_found');
    return publicPart(updated);
  }

  #need<K extends 'hasher' | 'sessions' | 'guard'>(...parts: K[]): Required<Pick<UserAdminOptions, K>> {
    for (const part of parts) {
      // A caller mistake (the entry point built too little), not a request problem.
      if (this.#o[part] === undefined) throw new TypeError(`UserAdmin needs ${part} for this operation`);
    }
    return this.#o as unknown as Required<Pick<UserAdminOptions, K>>;
  }
}

/** The user without the hash. */
function publicPart(user: UserRecord | User): User {
  const { id, email, emailVerified, username, name, mfaEnabled, disabledAt, createdAt, updatedAt, roles, appMetadata } = user;
  return { id, email, emailVerified, username, name, mfaEnabled, disabledAt, createdAt, updatedAt, roles, appMetadata };
}

function formatCursor(cursor: UserCursor): string {
  return Buffer.from(`${cursor.createdAt}.${cursor.id}`).toString('base64url');
}

function parseCursor(text: string): UserCursor {
  const match = /^(\d{1,15})\.(.{1,128})$/s.exec(Buffer.from(text, 'base64url').toString());
  if (!match) throw invalid('cursor', 'must be a nextCursor from an earlier page');
  return { createdAt: Number(match[1]), id: match[2] };
}

function invalid(field: string, message: string): SignetError {
  return new SignetError('validation_failed', { details: [{ field, message }] });
}
