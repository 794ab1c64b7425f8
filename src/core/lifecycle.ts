import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import { changePassword, findAccountToken, issueAccountToken, resetPasswordWithToken, updateProfile, verifyEmailWithToken } from '../store/account-tokens.js';
import type { User } from '../model.js';
import type { AccountTokenKind } from '../store/schema.js';
import { findUserById, findUserByLogin } from '../store/users.js';
import { BackgroundWork } from './background.js';
import type { Clock } from './clock.js';
import { randomToken, sha256, uuidv7 } from './crypto.js';
import type { Limits } from './limits.js';
import type { SignInGuard } from './signin-guard.js';
import type { Mailer } from './mailer.js';
import { assertNotWeak } from './passwords.js';
import type { PasswordHasher } from './passwords.js';
import type { SessionEnds } from './session-ends.js';
import type { ClientContext } from './sessions.js';

export type EmailVerification = 'off' | 'optional' | 'required';

const ACCOUNT_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export type LifecycleConfig = Pick<SignetConfig, 'publicUrl' | 'pagesPrefix' | 'emailVerification' | 'verifyTokenTtl' | 'resetTokenTtl'>;

export interface AccountLifecycleOptions {
  db: Db;
  hasher: PasswordHasher;
  mailer: Mailer;
  limits: Limits;
  guard: SignInGuard;
  clock: Clock;
  config: LifecycleConfig;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
  ends: SessionEnds;
}

/**
 * Everything after sign-up that proves or changes what an account holds:
 * email verification, forgotten and changed passwords, the profile. Mails go
 * through the durable queue, so no request waits on SMTP.
 */
export class AccountLifecycle {
  readonly #db: Db;
  readonly #hasher: PasswordHasher;
  readonly #mailer: Mailer;
  readonly #limits: Limits;
  readonly #guard: SignInGuard;
  readonly #clock: Clock;
  readonly #config: LifecycleConfig;
  readonly #onEvent: (event: string, fields: Record<string, unknown>) => void;
  readonly #background: BackgroundWork;
  readonly #ends: SessionEnds;

  constructor(options: AccountLifecycleOptions) {
    this.#db = options.db;
    this.#hasher = options.hasher;
    this.#mailer = options.mailer;
    this.#limits = options.limits;
    this.#guard = options.guard;
    this.#clock = options.clock;
    this.#config = options.config;
    this.#onEvent = options.onEvent;
    this.#ends = options.ends;
    this.#background = new BackgroundWork((error) =>
      options.onEvent('account.background_error', { error: error instanceof Error ? error.message : String(error) }),
    );
  }

  /** Mails a verification link for the user's current address (after sign-up, or on resend). */
  async sendVerification(user: User): Promise<void> {
    if (this.#config.emailVerification === 'off' || user.emailVerified) return;
    const token = await this.#issue(user, 'email_verify', this.#config.verifyTokenTtl);
    await this.#mailer.enqueue('verify-email', user.email, {
      email: user.email,
      link: this.#link('verify-email', token),
      expiresIn: humanDuration(this.#config.verifyTokenTtl),
    });
  }

  /**
   * POST /auth/email/resend. The caller always gets the same answer; the work
   * runs after the response, so its timing reveals nothing either.
   */
  requestVerification(email: string): void {
    this.#background.run(async () => {
      if (this.#config.emailVerification === 'off') return;
      const user = await findUserByLogin(this.#db, { email });
      if (!user || user.disabledAt !== null || user.emailVerified) return;
      if (!(await this.#limits.take('mail.address', `verify:${user.id}`)).allowed)
        return this.#onEvent('mail.suppressed', { template: 'verify-email', userId: user.id });
      await this.sendVerification(user);
    });
  }

  /** Someone signed up with an address that has an account (enumeration-resistant sign-up): tell its owner. */
  async notifyExistingAccount(user: User): Promise<void> {
    if (!(await this.#limits.take('mail.address', `exists:${user.id}`)).allowed) return;
    await this.#mailer.enqueue('account-exists', user.email, { email: user.email, resetLink: this.#link('forgot-password') });
  }

  /** POST /auth/email/verify. Repeating it with the same unexpired token answers the same. */
  async verifyEmail(raw: string): Promise<User> {
    const token = await this.#find('email_verify', raw);
    const user = await findUserById(this.#db, token.user_id);
    // A token mailed to an address the account no longer has proves nothing.
    if (!user || user.disabledAt !== null || user.email !== token.email) throw invalidToken('email changed');
    if (token.used_at === null) {
      await verifyEmailWithToken(this.#db, token, this.#clock.now());
      this.#onEvent('account.email_verified', { userId: user.id });
    } else if (!user.emailVerified) {
      throw invalidToken('superseded');
    }
    return (await findUserById(this.#db, user.id))!;
  }

  /** POST /auth/password/forgot: same answer and timing whether or not the account exists. */
  requestPasswordReset(email: string): void {
    this.#background.run(async () => {
      const user = await findUserByLogin(this.#db, { email });
      if (!user || user.disabledAt !== null) return;
      if (!(await this.#limits.take('mail.address', `reset:${user.id}`)).allowed)
        return this.#onEvent('mail.suppressed', { template: 'password-reset', userId: user.id });
      const token = await this.#issue(user, 'password_reset', this.#config.resetTokenTtl);
      await this.#mailer.enqueue('password-reset', user.email, {
        email: user.email,
        link: this.#link('reset-password', token),
        expiresIn: humanDuration(this.#config.resetTokenTtl),
      });
      this.#onEvent('account.password_reset_requested', { userId: user.id });
    });
  }

  /**
   * POST /auth/password/reset. The new password is checked before the token is
   * spent, so a rejected password leaves the link usable.
   */
  async resetPassword(raw: string, password: string): Promise<void> {
    const token = await this.#find('password_reset', raw);
    if (token.used_at !== null) throw invalidToken('used');
    const user = await findUserById(this.#db, token.user_id);
    if (!user || user.disabledAt !== null) throw invalidToken('user gone');
    assertNotWeak(password, user);
    const hash = await this.#hasher.hash(password);
    const reset = await resetPasswordWithToken(this.#db, token, hash, this.#clock.now());
    if (!reset) throw invalidToken('used');
    this.#ends.publish(reset.ended, 'password_reset');
    this.#onEvent('account.password_reset', { userId: user.id });
    // The reset proved the address; a second factor set up before it was ever proven was not the owner's to set.
    if (reset.mfaRemoved) this.#onEvent('account.mfa_removed', { userId: user.id, reason: 'set_up_before_email_proven' });
    if (reset.passkeysRemoved > 0)
      this.#onEvent('account.passkeys_removed', { userId: user.id, count: reset.passkeysRemoved, reason: 'added_before_email_proven' });
    await this.#notifyPasswordChanged(user);
  }

  /**
   * POST /auth/password/change: needs the current password; every other
   * session ends. The new password is judged before any hash is spent.
   */
  async changePassword(user: User, change: { sessionId: string; current: string; next: string }, context: Pick<ClientContext, 'ip'>): Promise<void> {
    const { sessionId, current, next } = change;
    assertNotWeak(next, user);
    // The hash as stored now: the change below is conditional on it.
    const stored = (await findUserById(this.#db, user.id))?.passwordHash;
    const ok = await this.#guard.reauthenticate(user.id, context.ip, async () => stored !== undefined && (await this.#hasher.verify(current, stored)).ok);
    if (!ok) {
      this.#onEvent('account.password_change_failed', { userId: user.id });
      throw new SignetError('invalid_credentials');
    }
    const hash = await this.#hasher.hash(next);
    // Conditional on the verified hash: a concurrent change makes this one fail instead of silently winning.
    const ended = await changePassword(this.#db, user.id, stored!, hash, sessionId, this.#clock.now());
    if (!ended) throw new SignetError('invalid_credentials');
    this.#ends.publish(ended, 'password_changed');
    this.#onEvent('account.password_changed', { userId: user.id });
    await this.#notifyPasswordChanged(user);
  }

  /** PATCH /auth/me: name and username, with the sign-up rules; `null` clears. */
  async updateProfile(user: User, changes: { name?: string | null; username?: string | null }): Promise<User> {
    if (changes.name === undefined && changes.username === undefined) return user;
    const updated = await updateProfile(this.#db, user.id, changes, this.#clock.now());
    this.#onEvent('account.profile_updated', { userId: user.id, fields: Object.keys(changes) });
    return updated;
  }

  async settle(): Promise<void> {
    await this.#background.settle();
  }

  /** A link into the hosted pages (PAGES_PREFIX), as mails carry it. */
  #link(page: string, token?: string): string {
    return `${this.#config.publicUrl}${this.#config.pagesPrefix}${page}${token === undefined ? '' : `?token=${token}`}`;
  }

  async #notifyPasswordChanged(user: User): Promise<void> {
    await this.#mailer.enqueue('password-changed', user.email, {
      email: user.email,
      when: new Date(this.#clock.now()).toUTCString(),
      resetLink: this.#link('forgot-password'),
    });
  }

  async #issue(user: User, kind: AccountTokenKind, ttlSeconds: number): Promise<string> {
    const raw = randomToken();
    const now = this.#clock.now();
    await issueAccountToken(this.#db, {
      id: uuidv7(now),
      user_id: user.id,
      kind,
      token_hash: sha256(raw),
      email: user.email,
      created_at: now,
      expires_at: now + ttlSeconds * 1000,
      used_at: null,
    });
    return raw;
  }

  /** A token of this kind, unexpired; anything else is one `invalid_token`. */
  async #find(kind: AccountTokenKind, raw: string) {
    if (!ACCOUNT_TOKEN.test(raw)) throw invalidToken('malformed');
    const token = await findAccountToken(this.#db, kind, sha256(raw));
    if (!token || token.expires_at <= this.#clock.now()) throw invalidToken('unknown or expired');
    return token;
  }
}

function invalidToken(reason: string): SignetError {
  return new SignetError('invalid_account_token', { cause: new Error(reason) });
}

function humanDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  return `${Math.round(seconds / 60)} minutes`;
}
