import { SignetError, isSignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import type { User, UserRecord } from '../model.js';
import { bcryptCosts, emailKey, findUserByLogin, insertUser, newUser, replacePasswordHash, usernameKey } from '../store/users.js';
import { BackgroundWork } from './background.js';
import type { DeviceCookies } from './devices.js';
import type { MfaProof, MfaService, SecondFactor } from './mfa.js';
import { PASSWORD_AMR, passkeyAmr } from './amr.js';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { PasskeyService } from './passkeys/service.js';
import type { Attempt, SignInGuard } from './signin-guard.js';
import type { Clock } from './clock.js';
import { uuidv7 } from './crypto.js';
import { hasUsablePassword } from '../store/federation.js';
import { assertNotWeak } from './passwords.js';
import type { HashOptions, PasswordHasher, VerifyResult } from './passwords.js';
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

export function toPublicUser(user: User): PublicUser {
  return {
    id: user.id,
    email: user.email,
    emailVerified: user.emailVerified,
    username: user.username,
    name: user.name,
    mfaEnabled: user.mfaEnabled,
    createdAt: user.createdAt.toISOString(),
    updatedAt: user.updatedAt.toISOString(),
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

export type SignInResult = { kind: 'session'; grant: Grant; deviceCookie: string } | { kind: 'mfa'; mfaToken: string; methods: SecondFactor[] };

export interface AccountParts {
  db: Db;
  hasher: PasswordHasher;
  sessions: SessionService;
  lifecycle: AccountLifecycle;
  guard: SignInGuard;
  devices: DeviceCookies;
  mfa: MfaService;
  passkeys: PasskeyService;
  clock: Clock;
  config: Pick<SignetConfig, 'emailVerification'>;
  onEvent: AccountEventSink;
}

/** Sign-up and sign-in. Knows nothing of HTTP. */
export class AccountService {
  readonly #db: Db;
  readonly #hasher: PasswordHasher;
  readonly #sessions: SessionService;
  readonly #lifecycle: AccountLifecycle;
  readonly #guard: SignInGuard;
  readonly #devices: DeviceCookies;
  readonly #mfa: MfaService;
  readonly #passkeys: PasskeyService;
  readonly #config: Pick<SignetConfig, 'emailVerification'>;
  readonly #clock: Clock;
  readonly #onEvent: AccountEventSink;
  readonly #background: BackgroundWork;

  constructor(parts: AccountParts) {
    const { db, hasher, sessions, lifecycle, guard, devices, mfa, passkeys, clock, config, onEvent } = parts;
    this.#db = db;
    this.#hasher = hasher;
    this.#sessions = sessions;
    this.#lifecycle = lifecycle;
    this.#guard = guard;
    this.#devices = devices;
    this.#mfa = mfa;
    this.#passkeys = passkeys;
    this.#config = config;
    this.#clock = clock;
    this.#onEvent = onEvent;
    this.#background = new BackgroundWork((error) => onEvent('auth.password_rehash_failed', { error: error instanceof Error ? error.message : String(error) }));
  }

  /**
   * Creates the account and, unless EMAIL_VERIFICATION=required, its first
   * session. A verification mail is queued unless verification is off.
   *
   * With verification required, an email that already has an account gets
   * the very same answer after the same work, and its owner gets a notice
   * instead: sign-up then reveals nothing about who has an account.
   */
  async signUp(input: SignUpInput, context: ClientContext): Promise<{ user: User; grant?: Grant }> {
    assertNotWeak(input.password, input);
    const required = this.#config.emailVerification === 'required';
    this.#guard.admitHash('signup');
    const existing = await findUserByLogin(this.#db, { email: input.email });
    if (existing && !required) throw new SignetError('email_taken');
    if (input.username !== undefined && (await findUserByLogin(this.#db, { username: input.username }))) throw new SignetError('username_taken');
    const passwordHash = await this.#hasher.hash(input.password, { signal: context.signal });
    const now = this.#clock.now();
    const user = newUser({ id: uuidv7(now), email: input.email, username: input.username ?? null, name: input.name ?? null, passwordHash, now });
    if (existing) {
      await this.#lifecycle.notifyExistingAccount(existing);
      this.#onEvent('user.signup_existing_email', { userId: existing.id });
      return { user };
    }
    let grant: Grant | undefined;
    if (required) {
      await insertUser(this.#db, user).catch((error: unknown) => {
        // A concurrent sign-up of the same address: still the same answer.
        if (!isSignetError(error, 'email_taken')) throw error;
      });
    } else {
      grant = await this.#sessions.start(user, context, { amr: PASSWORD_AMR, newUser: true });
    }
    this.#onEvent('user.signed_up', { userId: user.id });
    await this.#lifecycle.sendVerification(user);
    return grant ? { user, grant } : { user };
  }

  /**
   * Password sign-in. Unknown account, disabled account, wrong password and a
   * throttled account end the same way: one `invalid_credentials`. An account
   * with a second factor (TOTP, or a passkey) gets a challenge instead of a session.
   */
  async signIn(login: Login, context: ClientContext): Promise<SignInResult> {
    const { user, secondFactors } = await this.verifyLogin(login, context);
    if (secondFactors.length > 0) {
      this.#onEvent('auth.mfa_challenged', { userId: user.id, methods: secondFactors });
      return { kind: 'mfa', mfaToken: await this.#mfa.challenge(user), methods: secondFactors };
    }
    return { kind: 'session', grant: await this.#sessions.start(user, context, { amr: PASSWORD_AMR }), deviceCookie: this.#devices.issue(user.id) };
  }

  /** Second step of a sign-in: a TOTP code, a recovery code or a passkey. */
  async completeMfa(mfaToken: string, proof: MfaProof, context: ClientContext): Promise<SignInResult> {
    const { user, amr } = await this.#mfa.verify(mfaToken, proof);
    this.#onEvent('auth.signin_succeeded', {
      userId: user.id,
      mfa: true,
      method: 'webauthn' in proof ? 'passkey' : 'code' in proof ? 'totp' : 'recovery_code',
    });
    return { kind: 'session', grant: await this.#sessions.start(user, context, { amr }), deviceCookie: this.#devices.issue(user.id) };
  }

  /**
   * Sign-in with a passkey alone (a discoverable credential, with user
   * verification): it proves two factors, and asks for no other. The email
   * rule applies as to a password sign-in.
   */
  async signInWithPasskey(response: AuthenticationResponseJSON, context: ClientContext): Promise<SignInResult> {
    const { user, passkey } = await this.#passkeys.authenticate(response);
    if (this.#config.emailVerification === 'required' && !user.emailVerified) {
      this.#onEvent('auth.signin_unverified', { userId: user.id });
      throw new SignetError('email_not_verified');
    }
    this.#onEvent('auth.signin_succeeded', { userId: user.id, method: 'passkey', passkeyId: passkey.id });
    return { kind: 'session', grant: await this.#sessions.start(user, context, { amr: passkeyAmr(passkey) }), deviceCookie: this.#devices.issue(user.id) };
  }

  /**
   * Checks a login behind every sign-in defence (see SignInGuard) and returns
   * the user; shared by sign-in and the OAuth password grant. Every
   * `invalid_credentials` (unknown account, wrong password, disabled account,
   * throttled account) is answered after the same time: no sooner than the
   * slowest kind of stored hash takes to verify.
   */
  async verifyLogin(login: Login, context: ClientContext): Promise<{ user: UserRecord; secondFactors: SecondFactor[] }> {
    const started = performance.now();
    try {
      return await this.#checkLogin(login, context);
    } catch (error) {
      if (isSignetError(error, 'invalid_credentials')) await this.#hasher.padFailure(started);
      throw error;
    }
  }

  async #checkLogin(login: Login, context: ClientContext): Promise<{ user: UserRecord; secondFactors: SecondFactor[] }> {
    const identifier = 'email' in login ? { email: login.email } : { username: login.username };
    const user = await findUserByLogin(this.#db, identifier);
    const attempt: Attempt = {
      // One counter per account whichever identifier is typed; an unknown one gets its own, at the same count.
      identifier: user ? `user:${user.id}` : 'email' in login ? `email:${emailKey(login.email)}` : `username:${usernameKey(login.username)}`,
      ip: context.ip,
      device: user ? this.#devices.verify(context.deviceCookie, user.id) : undefined,
    };
    await this.#guard.admit(attempt);
    const options = { priority: attempt.device !== undefined ? ('high' as const) : ('normal' as const), signal: context.signal };
    let ok: boolean;
    let needsRehash = false;
    try {
      // An account without a password (made by another identity provider) is checked like an unknown one: the same work, never a match.
      ({ ok, needsRehash } =
        user && hasUsablePassword(user.passwordHash)
          ? await this.#hasher.verify(login.password, user.passwordHash, options)
          : await this.#unknown(login.password, options));
    } catch (error) {
      // The password was never checked (the client left, or the server is stopping): the attempt costs nothing.
      await this.#guard.unchecked(attempt);
      throw error;
    }
    if (!user) throw this.#failure(attempt, 'unknown_user');
    if (!ok) throw this.#failure(attempt, 'wrong_password', user.id);
    if (user.disabledAt !== null) throw this.#failure(attempt, 'disabled', user.id);
    await this.#guard.succeeded(attempt);
    if (needsRehash) this.#background.run(() => this.#upgradeHash(user, login.password));
    // Only after the right password, so the answer reveals nothing to a guesser.
    if (this.#config.emailVerification === 'required' && !user.emailVerified) {
      this.#onEvent('auth.signin_unverified', { userId: user.id });
      throw new SignetError('email_not_verified');
    }
    const secondFactors = await this.#mfa.methods(user);
    if (secondFactors.length === 0) this.#onEvent('auth.signin_succeeded', { userId: user.id, knownDevice: attempt.device !== undefined });
    return { user, secondFactors };
  }

  /** The same work as checking a real account's password, for an identifier that names none. */
  async #unknown(password: string, options: HashOptions): Promise<VerifyResult> {
    return { ok: await this.#hasher.verifyDummy(password, options), needsRehash: false };
  }

  /**
   * Starts timing the kinds of hash the store holds (Argon2id, and bcrypt at
   * each cost imported accounts still use), in the background.
   */
  calibrate(): void {
    this.#background.run(async () => this.#hasher.calibrate(await bcryptCosts(this.#db)));
  }

  /** Resolves when background work (hash upgrades) has finished. */
  async settle(): Promise<void> {
    await this.#background.settle();
  }

  /** A checked, wrong attempt: it keeps the budget it spent in `admit`. */
  #failure(attempt: Attempt, reason: string, userId?: string): SignetError {
    this.#onEvent('auth.signin_failed', { reason, userId, knownDevice: attempt.device !== undefined });
    return new SignetError('invalid_credentials');
  }

  /** Re-hashes with the configured algorithm and parameters after a successful sign-in. */
  async #upgradeHash(user: UserRecord, password: string): Promise<void> {
    const next = await this.#hasher.hash(password);
    const replaced = await replacePasswordHash(this.#db, user.id, user.passwordHash, next, this.#clock.now());
    if (replaced) this.#onEvent('auth.password_rehashed', { userId: user.id });
  }
}
