import { createHmac, randomInt } from 'node:crypto';
import type { SignetConfig } from '../../config.js';
import { SignetError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { claimCodeAttempt, consumeCode, consumeLink, issueEmailCode, markEmailVerified, takeAccountAttempt } from '../../store/email-signin.js';
import { findUserById, findUserByLogin } from '../../store/users.js';
import { EMAIL_OTP_AMR } from '../amr.js';
import { BackgroundWork } from '../background.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual, randomToken, sha256, uuidv7 } from '../crypto.js';
import type { DeviceCookies } from '../devices.js';
import { finishFirstFactor } from '../first-factor.js';
import type { Limits } from '../limits.js';
import type { Mailer } from '../mailer.js';
import type { MfaService } from '../mfa.js';
import type { ClientContext, SessionService } from '../sessions.js';
import type { SignInResult } from '../users.js';

/** Digits in a code: one in a million per guess. */
export const CODE_DIGITS = 6;
/** Guesses one code allows; then it is dead (a new one must be requested). */
export const CODE_MAX_ATTEMPTS = 5;
/** Guesses one account allows across all its codes in ACCOUNT_WINDOW_MS: new codes buy no new guesses. */
export const ACCOUNT_MAX_ATTEMPTS = 10;
export const ACCOUNT_WINDOW_MS = 60 * 60 * 1000;
const CODE = new RegExp(`^\\d{${CODE_DIGITS}}$`);
const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export type EmailSigninConfig = Pick<SignetConfig, 'emailSignin' | 'emailSigninTtl' | 'publicUrl' | 'pagesPrefix' | 'emailVerification'>;

export interface EmailSignInOptions {
  db: Db;
  mailer: Mailer;
  limits: Limits;
  sessions: SessionService;
  devices: DeviceCookies;
  mfa: MfaService;
  clock: Clock;
  config: EmailSigninConfig;
  /** Key of the codes' HMAC (a six-digit code's plain hash could be reversed by trying them all). */
  codeKey: Buffer;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * Passwordless sign-in by email (EMAIL_SIGNIN): a one-time code, a one-time
 * link, or one mail with both. Only existing accounts get mail; the request
 * answers the same at once whether or not one exists (the work runs after the
 * response, as for forgot-password), and mail goes through the same durable queue.
 *
 * A code is checked only after one attempt has been claimed, both on the
 * account's budget and on the code, each with one conditional write: a burst
 * of guesses gets exactly the allowed number checked, on either database.
 */
export class EmailSignIn {
  readonly #options: EmailSignInOptions;
  readonly #background: BackgroundWork;

  constructor(options: EmailSignInOptions) {
    this.#options = options;
    this.#background = new BackgroundWork((error) =>
      options.onEvent('account.background_error', { error: error instanceof Error ? error.message : String(error) }),
    );
  }

  get codes(): boolean {
    return this.#options.config.emailSignin === 'code' || this.#options.config.emailSignin === 'both';
  }

  get links(): boolean {
    return this.#options.config.emailSignin === 'link' || this.#options.config.emailSignin === 'both';
  }

  get enabled(): boolean {
    return this.#options.config.emailSignin !== 'off';
  }

  /** POST /auth/email-signin: same answer and timing whether or not the account exists. */
  request(email: string): void {
    this.#assertEnabled();
    this.#background.run(async () => {
      const { db, limits, mailer, clock, config, onEvent } = this.#options;
      const user = await findUserByLogin(db, { email });
      if (!user || user.disabledAt !== null) return;
      if (!(await limits.take('mail.address', `signin:${user.id}`)).allowed) return onEvent('mail.suppressed', { template: 'email-signin', userId: user.id });
      const now = clock.now();
      const id = uuidv7(now);
      const code = this.codes ? String(randomInt(0, 10 ** CODE_DIGITS)).padStart(CODE_DIGITS, '0') : undefined;
      const link = this.links ? randomToken() : undefined;
      await issueEmailCode(db, {
        id,
        user_id: user.id,
        code_hash: code === undefined ? null : this.#codeHash(id, code),
        link_hash: link === undefined ? null : sha256(link),
        attempts: 0,
        created_at: now,
        expires_at: now + config.emailSigninTtl * 1000,
        consumed_at: null,
      });
      const vars = {
        email: user.email,
        expiresIn: `${Math.round(config.emailSigninTtl / 60)} minutes`,
        ...(code !== undefined ? { code } : {}),
        ...(link !== undefined ? { link: `${config.publicUrl}${config.pagesPrefix}sign-in/email/link?token=${link}` } : {}),
      };
      await mailer.enqueue(code && link ? 'signin-code-link' : code ? 'signin-code' : 'signin-link', user.email, vars);
      onEvent('auth.email_signin_requested', { userId: user.id });
    });
  }

  /**
   * POST /auth/email-signin/verify. Unknown account, no live code, spent
   * budgets and a wrong code all answer `invalid_code`.
   */
  async verifyCode(email: string, code: string, context: ClientContext): Promise<SignInResult> {
    if (!this.codes) throw new SignetError('email_signin_disabled');
    const { db, clock, onEvent } = this.#options;
    const now = clock.now();
    const user = await findUserByLogin(db, { email });
    if (!user || user.disabledAt !== null) {
      // The same kind of write an existing account costs, for a similar time.
      await claimCodeAttempt(db, uuidv7(now), now, CODE_MAX_ATTEMPTS);
      throw this.#refused('unknown_user');
    }
    if (!(await takeAccountAttempt(db, user.id, now, ACCOUNT_MAX_ATTEMPTS, ACCOUNT_WINDOW_MS))) {
      onEvent('security.email_code_throttled', { userId: user.id });
      throw this.#refused('throttled', user.id);
    }
    const row = await claimCodeAttempt(db, user.id, now, CODE_MAX_ATTEMPTS);
    if (!row || row.code_hash === null) throw this.#refused('no_live_code', user.id);
    if (!CODE.test(code) || !constantTimeEqual(this.#codeHash(row.id, code), row.code_hash)) throw this.#refused('wrong_code', user.id);
    if (!(await consumeCode(db, row.id, now))) throw this.#refused('used', user.id);
    return this.#signIn(user.id, context, 'email_code');
  }

  /** POST /auth/email-signin/link: the link's token, used once. */
  async consumeLink(token: string, context: ClientContext): Promise<SignInResult> {
    if (!this.links) throw new SignetError('email_signin_disabled');
    const { db, clock } = this.#options;
    const row = LINK_TOKEN.test(token) ? await consumeLink(db, sha256(token), clock.now()) : undefined;
    if (!row) {
      this.#options.onEvent('auth.signin_failed', { method: 'email_link', reason: 'unknown_used_or_expired' });
      throw new SignetError('invalid_account_token', { cause: new Error('unknown, used or expired') });
    }
    return this.#signIn(row.user_id, context, 'email_link');
  }

  async settle(): Promise<void> {
    await this.#background.settle();
  }

  /** A used code or link proved the mailbox: the address counts as verified (as a password reset does). */
  async #signIn(userId: string, context: ClientContext, method: string): Promise<SignInResult> {
    const { db, clock, sessions, devices, mfa, config, onEvent } = this.#options;
    const user = await findUserById(db, userId);
    if (!user || user.disabledAt !== null) throw this.#refused('disabled', userId);
    if (!user.emailVerified) {
      await markEmailVerified(db, user.id, user.email, clock.now());
      user.emailVerified = true;
      onEvent('account.email_verified', { userId: user.id, by: method });
    }
    return finishFirstFactor({ sessions, devices, mfa, config, onEvent }, user, EMAIL_OTP_AMR, context, { method });
  }

  #codeHash(id: string, code: string): string {
    return createHmac('sha256', this.#options.codeKey).update(`${id}:${code}`).digest('base64url');
  }

  #assertEnabled(): void {
    if (!this.enabled) throw new SignetError('email_signin_disabled');
  }

  #refused(reason: string, userId?: string): SignetError {
    this.#options.onEvent('auth.signin_failed', { method: 'email_code', reason, ...(userId !== undefined ? { userId } : {}) });
    return new SignetError('invalid_code', { cause: new Error(reason) });
  }
}
