import { SignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import type { UserRow } from '../store/schema.js';
import { findUserByLogin, insertUser, newUserRow, replacePasswordHash } from '../store/users.js';
import type { Clock } from './clock.js';
import { uuidv7 } from './crypto.js';
import { assertNotWeak } from './passwords.js';
import type { PasswordHasher } from './passwords.js';
import type { SignetConfig } from '../config.js';
import type { AccountLifecycle } from './lifecycle.js';
import type { ClientContext, Grant, SessionService } from './sessions.js';

/** The user as every client sees it: never a hash, secret or token. */
export interface PublicUser {
  id: string;
  email: string;
  emailVerified: boolean;
  username: string | null;
  name: string | null;
  mfaEnabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export function toPublicUser(row: UserRow): PublicUser {
  return {
    id: row.id,
    email: row.email,
    emailVerified: row.email_verified === 1,
    username: row.username,
    name: row.name,
    mfaEnabled: false,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

export interface SignUpInput {
  email: string;
  /** NFKC-normalised, length already checked. */
  password: string;
  username?: string | undefined;
  name?: string | undefined;
}

export type Login = { email: string; password: string } | { username: string; password: string };

export type AccountEventSink = (event: string, fields: Record<string, unknown>) => void;

/** Sign-up and sign-in. Knows nothing of HTTP. */
export class AccountService {
  readonly #db: Db;
  readonly #hasher: PasswordHasher;
  readonly #sessions: SessionService;
  readonly #lifecycle: AccountLifecycle;
  readonly #config: Pick<SignetConfig, 'emailVerification'>;
  readonly #clock: Clock;
  readonly #onEvent: AccountEventSink;
  readonly #background = new Set<Promise<void>>();

  constructor(db: Db, hasher: PasswordHasher, sessions: SessionService, lifecycle: AccountLifecycle, clock: Clock, config: Pick<SignetConfig, 'emailVerification'>, onEvent: AccountEventSink) {
    this.#db = db;
    this.#hasher = hasher;
    this.#sessions = sessions;
    this.#lifecycle = lifecycle;
    this.#config = config;
    this.#clock = clock;
    this.#onEvent = onEvent;
  }

  /**
   * Creates the account and, unless EMAIL_VERIFICATION=required, its first
   * session. A verification mail is queued unless verification is off.
   */
  async signUp(input: SignUpInput, context: ClientContext): Promise<{ user: UserRow; grant?: Grant }> {
    assertNotWeak(input.password, input);
    // Cheap early answer for the common case; the unique keys still decide races.
    if (await findUserByLogin(this.#db, { email: input.email })) throw new SignetError('email_taken');
    if (input.username !== undefined && (await findUserByLogin(this.#db, { username: input.username }))) throw new SignetError('username_taken');
    const passwordHash = await this.#hasher.hash(input.password);
    const now = this.#clock.now();
    const user = newUserRow({
      id: uuidv7(now),
      email: input.email,
      username: input.username ?? null,
      name: input.name ?? null,
      passwordHash,
      now,
    });
    let grant: Grant | undefined;
    if (this.#config.emailVerification === 'required') await insertUser(this.#db, user);
    else grant = await this.#sessions.start(user, context, { newUser: true });
    this.#onEvent('user.signed_up', { userId: user.id });
    await this.#lifecycle.sendVerification(user);
    return grant ? { user, grant } : { user };
  }

  /**
   * Unknown account, disabled account and wrong password end the same way, after
   * the same hashing work: one `invalid_credentials`.
   */
  async signIn(login: Login, context: ClientContext): Promise<Grant> {
    const user = await this.verifyLogin(login);
    return this.#sessions.start(user, context);
  }

  /** Checks a login and returns the user; shared by sign-in and the OAuth password grant. */
  async verifyLogin(login: Login): Promise<UserRow> {
    const identifier = 'email' in login ? { email: login.email } : { username: login.username };
    const user = await findUserByLogin(this.#db, identifier);
    if (!user) {
      await this.#hasher.verifyDummy(login.password);
      throw this.#failure('unknown_user');
    }
    const { ok, needsRehash } = await this.#hasher.verify(login.password, user.password_hash);
    if (!ok) throw this.#failure('wrong_password', user.id);
    if (user.disabled_at !== null) throw this.#failure('disabled', user.id);
    if (needsRehash) this.#track(this.#upgradeHash(user, login.password));
    // Only after the right password, so the answer reveals nothing to a guesser.
    if (this.#config.emailVerification === 'required' && user.email_verified !== 1) {
      this.#onEvent('auth.signin_unverified', { userId: user.id });
      throw new SignetError('email_not_verified');
    }
    this.#onEvent('auth.signin_succeeded', { userId: user.id });
    return user;
  }

  /** Resolves when background work (hash upgrades) has finished. */
  async settle(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #failure(reason: string, userId?: string): SignetError {
    this.#onEvent('auth.signin_failed', { reason, userId });
    return new SignetError('invalid_credentials');
  }

  /** Re-hashes with the configured algorithm and parameters after a successful sign-in. */
  async #upgradeHash(user: UserRow, password: string): Promise<void> {
    const next = await this.#hasher.hash(password);
    const replaced = await replacePasswordHash(this.#db, user.id, user.password_hash, next, this.#clock.now());
    if (replaced) this.#onEvent('auth.password_rehashed', { userId: user.id });
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.#onEvent('auth.password_rehash_failed', { error: error instanceof Error ? error.message : String(error) }));
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }
}
