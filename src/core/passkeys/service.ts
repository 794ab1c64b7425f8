import { randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { SignetConfig } from '../../config.js';
import { SignetError } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';
import type { Passkey, PasskeyRecord, Session, User, UserRecord } from '../../model.js';
import type { Db } from '../../store/db.js';
import {
  deletePasskey,
  ensureUserHandle,
  findPasskey,
  findUserHandle,
  hasPasskeys,
  insertPasskey,
  insertWebauthnChallenge,
  listPasskeys,
  recordPasskeyUse,
  renamePasskey,
  takeWebauthnChallenge,
  withoutSecrets,
} from '../../store/passkeys.js';
import type { WebauthnChallengeRow, WebauthnPurpose } from '../../store/schema.js';
import { findUserById } from '../../store/users.js';
import type { Clock } from '../clock.js';
import { sha256 } from '../crypto.js';
import type { PasswordHasher } from '../passwords.js';
import type { ClientContext } from '../sessions.js';
import type { SignInGuard } from '../signin-guard.js';
import { CeremonyError, RelyingParty, challengeOf } from './relying-party.js';

/** A challenge lives this long: one ceremony, then it is gone (WebAuthn §13.4.3 asks for short-lived, single-use). */
export const CHALLENGE_TTL_MS = 5 * 60 * 1000;
/** A session this young counts as a recent sign-in: adding or removing a passkey needs no password then. */
export const RECENT_SIGN_IN_MS = 10 * 60 * 1000;
/** Passkeys one account may hold: bounds the allow-list of a second-factor request and the rows of one user. */
export const MAX_PASSKEYS = 20;
const NAME_MAX = 64;

export type PasskeyEventSink = (event: string, fields: Record<string, unknown>) => void;

export interface PasskeyServiceOptions {
  db: Db;
  hasher: PasswordHasher;
  guard: SignInGuard;
  clock: Clock;
  config: Pick<SignetConfig, 'webauthnRpId' | 'webauthnOrigins' | 'webauthnRpName'>;
  onEvent: PasskeyEventSink;
}

/** The part of an authenticated request that decides how recently the user proved who they are. */
export interface SignedIn {
  user: User;
  session: Pick<Session, 'createdAt'>;
}

/** Which ceremony failed, for the audit event. */
type Step = 'signin' | 'second_factor' | 'register';

/**
 * Passkeys (WebAuthn public-key credentials): registration by a signed-in
 * user, sign-in with a discoverable credential, and the second factor after a
 * password. Knows nothing of HTTP.
 *
 * Every ceremony's challenge is stored (as a hash) with its purpose and, where
 * there is one, its user, and is taken out of the store with one conditional
 * write before the response is checked: it is single-use even when the same
 * response arrives twice at once, whatever the outcome of the check.
 */
export class PasskeyService {
  readonly #db: Db;
  readonly #hasher: PasswordHasher;
  readonly #guard: SignInGuard;
  readonly #clock: Clock;
  readonly #onEvent: PasskeyEventSink;
  readonly #rp: RelyingParty | undefined;

  constructor(options: PasskeyServiceOptions) {
    this.#db = options.db;
    this.#hasher = options.hasher;
    this.#guard = options.guard;
    this.#clock = options.clock;
    this.#onEvent = options.onEvent;
    const { webauthnRpId, webauthnOrigins, webauthnRpName } = options.config;
    this.#rp = webauthnRpId === undefined ? undefined : new RelyingParty({ rpId: webauthnRpId, rpName: webauthnRpName, origins: webauthnOrigins });
  }

  /** False when no relying-party ID is configured (PUBLIC_URL on an IP address and no WEBAUTHN_RP_ID). */
  get enabled(): boolean {
    return this.#rp !== undefined;
  }

  get rpId(): string | undefined {
    return this.#rp?.rpId;
  }

  async list(userId: string): Promise<Passkey[]> {
    return (await listPasskeys(this.#db, userId)).map(withoutSecrets);
  }

  /** Whether the user has a passkey: a password sign-in then asks for a second factor. */
  async has(userId: string): Promise<boolean> {
    return hasPasskeys(this.#db, userId);
  }

  /**
   * Starts registering a passkey. Needs a recent sign-in (the session is
   * younger than RECENT_SIGN_IN_MS) or the password, checked behind the
   * re-authentication budgets (ASVS 6.4.x: adding an authenticator needs the
   * current one).
   */
  async registrationOptions(
    signedIn: SignedIn,
    proof: { password?: string | undefined },
    context: Pick<ClientContext, 'ip'>,
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const rp = this.#relyingParty();
    await this.#assertRecent(signedIn, proof.password, context);
    const { user } = signedIn;
    const existing = await listPasskeys(this.#db, user.id);
    if (existing.length >= MAX_PASSKEYS) throw new SignetError('too_many_passkeys');
    const now = this.#clock.now();
    const handle = await ensureUserHandle(this.#db, user.id, randomBytes(32).toString('base64url'), now);
    const options = await rp.creationOptions(user, handle, existing);
    await this.#storeChallenge(options.challenge, 'register', user.id, null, now);
    return options;
  }

  /** Finishes a registration started by `registrationOptions` for the same user. */
  async register(user: User, response: RegistrationResponseJSON, name: string | undefined): Promise<Passkey> {
    const rp = this.#relyingParty();
    const { challenge } = await this.#takeChallenge(response, 'register', 'register', user.id);
    let verified;
    try {
      verified = await rp.verifyCreation(response, challenge);
    } catch (error) {
      throw this.#refused('register', error, user.id);
    }
    if ((await listPasskeys(this.#db, user.id)).length >= MAX_PASSKEYS) throw new SignetError('too_many_passkeys');
    const now = new Date(this.#clock.now());
    const record: PasskeyRecord = {
      ...verified,
      userId: user.id,
      name: cleanName(name),
      createdAt: now,
      lastUsedAt: null,
      emailProven: user.emailVerified,
    };
    // A credential ID already on record (for anyone) is never taken over.
    if (!(await insertPasskey(this.#db, record))) throw this.#failure('register', 'duplicate', 'invalid_passkey', user.id);
    this.#onEvent('account.passkey_added', { userId: user.id, passkeyId: record.id, deviceType: record.deviceType, backedUp: record.backedUp });
    return withoutSecrets(record);
  }

  async rename(userId: string, id: string, name: string | undefined): Promise<Passkey> {
    const renamed = await renamePasskey(this.#db, userId, id, cleanName(name));
    if (!renamed) throw new SignetError('passkey_not_found');
    this.#onEvent('account.passkey_renamed', { userId, passkeyId: id });
    return withoutSecrets(renamed);
  }

  /**
   * Removes one of the user's passkeys. Like adding one, it needs a recent
   * sign-in or the password: a stolen session alone must not strip a second factor.
   */
  async remove(signedIn: SignedIn, id: string, proof: { password?: string | undefined }, context: Pick<ClientContext, 'ip'>): Promise<void> {
    await this.#assertRecent(signedIn, proof.password, context);
    if (!(await deletePasskey(this.#db, signedIn.user.id, id))) throw new SignetError('passkey_not_found');
    this.#onEvent('account.passkey_removed', { userId: signedIn.user.id, passkeyId: id });
  }

  /** Options for a sign-in with any passkey the browser holds for this site (modal or autofill). */
  async signInOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await this.#relyingParty().requestOptions();
    await this.#storeChallenge(options.challenge, 'authenticate', null, null, this.#clock.now());
    return options;
  }

  /**
   * Passkey as the first (and only) factor: the credential names its user, the
   * user handle must be that user's (WebAuthn §7.2 step 6), and the
   * authenticator must have verified the user.
   */
  async authenticate(response: AuthenticationResponseJSON): Promise<{ user: UserRecord; passkey: Passkey }> {
    const rp = this.#relyingParty();
    const { challenge } = await this.#takeChallenge(response, 'authenticate', 'signin');
    const passkey = await findPasskey(this.#db, response.id);
    if (!passkey) throw this.#failure('signin', 'unknown_credential', 'unknown_passkey');
    const user = await findUserById(this.#db, passkey.userId);
    if (!user || user.disabledAt !== null) throw this.#failure('signin', 'disabled', 'invalid_passkey', passkey.userId);
    const handle = await findUserHandle(this.#db, user.id);
    if (handle === undefined || response.response.userHandle !== handle) throw this.#failure('signin', 'user_handle', 'invalid_passkey', user.id);
    await this.#verifyUse(rp, 'signin', response, challenge, passkey, true);
    return { user, passkey: withoutSecrets(passkey) };
  }

  /** Options for the second step of a password sign-in: the user's own passkeys only. */
  async secondFactorOptions(userId: string, mfaChallengeId: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.#relyingParty();
    const passkeys = await listPasskeys(this.#db, userId);
    if (passkeys.length === 0) throw new SignetError('passkey_not_found');
    const options = await rp.requestOptions(passkeys);
    await this.#storeChallenge(options.challenge, 'second_factor', userId, mfaChallengeId, this.#clock.now());
    return options;
  }

  /**
   * A passkey as the second factor of the password sign-in `mfaChallengeId`:
   * the challenge must have been issued for that sign-in, and the passkey must
   * be its user's. Presence is enough (the password was the other factor).
   */
  async verifySecondFactor(userId: string, mfaChallengeId: string, response: AuthenticationResponseJSON): Promise<Passkey> {
    const rp = this.#relyingParty();
    const { challenge, row } = await this.#takeChallenge(response, 'second_factor', 'second_factor', userId);
    if (row.mfa_challenge_id !== mfaChallengeId) throw this.#failure('second_factor', 'challenge', 'challenge_expired', userId);
    const passkey = await findPasskey(this.#db, response.id);
    if (!passkey) throw this.#failure('second_factor', 'unknown_credential', 'unknown_passkey', userId);
    if (passkey.userId !== userId) throw this.#failure('second_factor', 'other_user', 'invalid_passkey', userId);
    const handle = response.response.userHandle;
    if (handle !== undefined && handle !== '' && handle !== (await findUserHandle(this.#db, userId))) {
      throw this.#failure('second_factor', 'user_handle', 'invalid_passkey', userId);
    }
    await this.#verifyUse(rp, 'second_factor', response, challenge, passkey, false);
    return withoutSecrets(passkey);
  }

  #relyingParty(): RelyingParty {
    if (!this.#rp) throw new SignetError('passkeys_disabled');
    return this.#rp;
  }

  /** Whether the session's sign-in is recent enough to add or remove a passkey without the password. */
  recentSignIn(session: Pick<Session, 'createdAt'>): boolean {
    return this.#clock.now() - session.createdAt.getTime() < RECENT_SIGN_IN_MS;
  }

  async #assertRecent(signedIn: SignedIn, password: string | undefined, context: Pick<ClientContext, 'ip'>): Promise<void> {
    const { user, session } = signedIn;
    if (password === undefined) {
      if (this.recentSignIn(session)) return;
      throw new SignetError('reauthentication_required');
    }
    const ok = await this.#guard.reauthenticate(user.id, context.ip, async () => {
      const record = await findUserById(this.#db, user.id);
      return record !== undefined && (await this.#hasher.verify(password, record.passwordHash)).ok;
    });
    if (!ok) {
      this.#onEvent('account.reauthentication_failed', { userId: user.id, for: 'passkeys' });
      throw new SignetError('invalid_credentials');
    }
  }

  async #storeChallenge(challenge: string, purpose: WebauthnPurpose, userId: string | null, mfaChallengeId: string | null, now: number): Promise<void> {
    await insertWebauthnChallenge(this.#db, {
      challenge_hash: sha256(challenge),
      purpose,
      user_id: userId,
      mfa_challenge_id: mfaChallengeId,
      created_at: now,
      expires_at: now + CHALLENGE_TTL_MS,
    });
  }

  /**
   * Takes the response's challenge out of the store before anything else is
   * checked: used once, whatever follows. Unknown, used, expired, of another
   * purpose or another user: `challenge_expired`.
   */
  async #takeChallenge(
    response: { response: { clientDataJSON: string } },
    purpose: WebauthnPurpose,
    step: Step,
    userId?: string,
  ): Promise<{ challenge: string; row: WebauthnChallengeRow }> {
    const challenge = challengeOf(response);
    const row = challenge === undefined ? undefined : await takeWebauthnChallenge(this.#db, sha256(challenge));
    const fits = row !== undefined && row.purpose === purpose && row.expires_at > this.#clock.now() && (userId === undefined || row.user_id === userId);
    if (!fits || challenge === undefined) throw this.#failure(step, 'challenge', 'challenge_expired', userId);
    return { challenge, row };
  }

  /** Verifies an assertion and records the use (counter, backup state, time) in one conditional write. */
  async #verifyUse(
    rp: RelyingParty,
    step: Step,
    response: AuthenticationResponseJSON,
    challenge: string,
    passkey: PasskeyRecord,
    requireUv: boolean,
  ): Promise<void> {
    let verified;
    try {
      verified = await rp.verifyAssertion(response, challenge, passkey, { requireUserVerification: requireUv });
    } catch (error) {
      if (error instanceof CeremonyError && error.reason === 'counter') {
        this.#onEvent('security.passkey_counter_regression', { userId: passkey.userId, passkeyId: passkey.id });
      }
      throw this.#refused(step, error, passkey.userId);
    }
    const recorded = await recordPasskeyUse(this.#db, {
      id: passkey.id,
      expectedCounter: passkey.counter,
      counter: verified.counter,
      backedUp: verified.backedUp,
      now: this.#clock.now(),
    });
    // Another assertion moved the counter (or removed the passkey) since it was read: this one is not accepted.
    if (!recorded) {
      this.#onEvent('security.passkey_counter_regression', { userId: passkey.userId, passkeyId: passkey.id });
      throw this.#failure(step, 'counter', 'invalid_passkey', passkey.userId);
    }
  }

  #refused(step: Step, error: unknown, userId?: string): SignetError {
    if (!(error instanceof CeremonyError)) throw error;
    return this.#failure(step, error.reason, 'invalid_passkey', userId, error);
  }

  /** A refused ceremony: audited like a failed sign-in (the reason stays in the log), answered with one catalog code. */
  #failure(step: Step, reason: string, code: ErrorCode, userId?: string, cause?: unknown): SignetError {
    const event = step === 'signin' ? 'auth.signin_failed' : step === 'second_factor' ? 'auth.mfa_failed' : 'account.passkey_add_failed';
    this.#onEvent(event, { method: 'passkey', reason, ...(userId !== undefined ? { userId } : {}) });
    return new SignetError(code, { cause: cause ?? new Error(reason) });
  }
}

/** A name as stored: trimmed, at most NAME_MAX characters, none for an empty one. */
function cleanName(name: string | undefined): string | null {
  const trimmed = name?.trim().slice(0, NAME_MAX);
  return trimmed ? trimmed : null;
}

/** A passkey as clients see it (JSON: ISO times). */
export interface PublicPasskey {
  id: string;
  name: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
  transports: string[];
}

export function toPublicPasskey(passkey: Passkey): PublicPasskey {
  return {
    id: passkey.id,
    name: passkey.name,
    createdAt: passkey.createdAt.toISOString(),
    lastUsedAt: passkey.lastUsedAt === null ? null : passkey.lastUsedAt.toISOString(),
    deviceType: passkey.deviceType,
    backedUp: passkey.backedUp,
    transports: passkey.transports,
  };
}
