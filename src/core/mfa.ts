import { randomBytes } from 'node:crypto';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';
import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { Db } from '../store/db.js';
import {
  advanceTotpStep,
  claimChallengeAttempt,
  completeChallenge,
  disableTotp,
  findLiveChallenge,
  enableTotp,
  findTotp,
  insertChallenge,
  savePendingTotp,
  useRecoveryCode,
} from '../store/mfa.js';
import type { User, UserRecord } from '../model.js';
import { findUserById } from '../store/users.js';
import type { Clock } from './clock.js';
import { randomToken, sha256, uuidv7 } from './crypto.js';
import type { Sealer } from './secrets.js';
import type { ClientContext } from './sessions.js';
import type { Limits } from './limits.js';
import type { SignInGuard } from './signin-guard.js';
import type { PasswordHasher } from './passwords.js';
import type { AuthMethod } from './amr.js';
import { PASSWORD_AMR, parseAmr, passwordPasskeyAmr, withOtpAmr } from './amr.js';
import type { PasskeyService } from './passkeys/service.js';

const PERIOD = 30;
/** Steps accepted either side of now: RFC 6238 §5.2 allows for clock drift. */
const WINDOW = 1;
const CHALLENGE_TTL_MS = 5 * 60 * 1000;
/** Codes one mfaToken may have checked (the contract: it dies after five wrong ones). */
const CHALLENGE_MAX_ATTEMPTS = 5;
const RECOVERY_CODES = 10;
const SEAL_PURPOSE = 'signet totp secret v1';
const MFA_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** The second factors a password sign-in may be completed with. */
export type SecondFactor = 'totp' | 'webauthn';

/** What completes the second step: a TOTP code, a recovery code, or a passkey's assertion. */
export type MfaProof = { code: string } | { recoveryCode: string } | { webauthn: AuthenticationResponseJSON };

export interface TotpSetup {
  secret: string;
  otpauthUri: string;
  qrSvg: string;
}

export interface MfaServiceOptions {
  db: Db;
  hasher: PasswordHasher;
  limits: Limits;
  guard: SignInGuard;
  sealer: Sealer;
  passkeys: PasskeyService;
  clock: Clock;
  config: Pick<SignetConfig, 'appName'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * Two-factor authentication: the second step of a password sign-in, with TOTP
 * (RFC 6238, SHA-1, 6 digits, 30 s), a recovery code, or a passkey (see
 * passkeys/service.ts; a user with a passkey is asked for a second factor even
 * without TOTP). TOTP secrets are sealed at rest (see core/secrets.ts); recovery codes carry 125 bits
 * each, so a SHA-256 of them is safe to store (ASVS 6.5.2 asks ≥ 112 bits for that).
 *
 * Guessing is capped twice, and both caps are claimed before a code is
 * checked: each mfaToken allows five codes (one conditional update per
 * attempt in the database, so a burst of a hundred codes gets exactly five
 * checked), and each account allows `mfa.account` codes across all its tokens.
 * A passkey's assertion is claimed and counted the same way.
 */
export class MfaService {
  readonly #db: Db;
  readonly #hasher: PasswordHasher;
  readonly #clock: Clock;
  readonly #limits: Limits;
  readonly #guard: SignInGuard;
  readonly #sealer: Sealer;
  readonly #passkeys: PasskeyService;
  readonly #config: Pick<SignetConfig, 'appName'>;
  readonly #onEvent: (event: string, fields: Record<string, unknown>) => void;

  constructor(options: MfaServiceOptions) {
    this.#db = options.db;
    this.#hasher = options.hasher;
    this.#limits = options.limits;
    this.#guard = options.guard;
    this.#sealer = options.sealer;
    this.#passkeys = options.passkeys;
    this.#clock = options.clock;
    this.#config = options.config;
    this.#onEvent = options.onEvent;
  }

  /** Re-authenticates (ASVS 7.5.1), then creates a pending secret. */
  async setup(user: User, password: string, context: Pick<ClientContext, 'ip'>): Promise<TotpSetup> {
    // Before the hash: an account that has it on needs no password check to be told so.
    if (user.mfaEnabled) throw new SignetError('mfa_already_enabled');
    await this.#reauthenticate(user, password, context);
    const secret = new Secret({ size: 20 });
    const totp = this.#totp(user, secret);
    const now = this.#clock.now();
    await savePendingTotp(this.#db, {
      user_id: user.id,
      secret: this.#sealer.seal(SEAL_PURPOSE, secret.base32),
      created_at: now,
      enabled_at: null,
      last_step: 0,
      email_proven: 0,
    });
    this.#onEvent('account.mfa_setup_started', { userId: user.id });
    return describeSetup(secret.base32, totp);
  }

  /**
   * The setup started and not confirmed yet, shown again (the hosted page
   * after a mistyped code), or undefined when there is none.
   */
  async pendingSetup(user: User): Promise<TotpSetup | undefined> {
    const row = await findTotp(this.#db, user.id);
    if (!row || row.enabled_at !== null) return undefined;
    const secret = this.#sealer.openOrThrow(SEAL_PURPOSE, row.secret, 'a TOTP secret').value;
    return describeSetup(secret, this.#totp(user, Secret.fromBase32(secret)));
  }

  /**
   * Confirms setup with a valid code; returns the ten recovery codes, shown
   * once. Whether the email address was verified at this moment is kept: a
   * password reset (which proves the address) removes a second factor that was
   * set up before the address was ever proven (see docs/security.md).
   */
  async enable(user: User, code: string): Promise<string[]> {
    const row = await findTotp(this.#db, user.id);
    if (!row || row.enabled_at !== null) throw new SignetError('invalid_code');
    const step = this.#validStep(user, row.secret, code);
    if (step === undefined) throw new SignetError('invalid_code');
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    const rows = codes.map((c) => ({ id: uuidv7(), user_id: user.id, code_hash: sha256(normalizeRecovery(c)), used_at: null }));
    if (!(await enableTotp(this.#db, { userId: user.id, step, codes: rows, emailProven: user.emailVerified, now: this.#clock.now() }))) {
      throw new SignetError('invalid_code');
    }
    this.#onEvent('account.mfa_enabled', { userId: user.id, emailProven: user.emailVerified });
    return codes;
  }

  async disable(user: User, password: string, context: Pick<ClientContext, 'ip'>): Promise<void> {
    await this.#reauthenticate(user, password, context);
    await disableTotp(this.#db, user.id, this.#clock.now());
    this.#onEvent('account.mfa_disabled', { userId: user.id });
  }

  /**
   * After a correct first factor (a password unless `firstAmr` says otherwise): the single-use token
   * that `verify` exchanges for a session.
   */
  async challenge(user: User, firstAmr?: readonly AuthMethod[]): Promise<string> {
    const token = randomToken();
    const now = this.#clock.now();
    await insertChallenge(this.#db, {
      id: uuidv7(now),
      user_id: user.id,
      token_hash: sha256(token),
      created_at: now,
      expires_at: now + CHALLENGE_TTL_MS,
      attempts: 0,
      used_at: null,
      client_id: null,
      first_amr: firstAmr === undefined ? null : firstAmr.join(' '),
    });
    return token;
  }

  /** The second factors `user` has: a password sign-in must be completed with one of them (none: one step). */
  async methods(user: User): Promise<SecondFactor[]> {
    const methods: SecondFactor[] = user.mfaEnabled ? ['totp'] : [];
    if (this.#passkeys.enabled && (await this.#passkeys.has(user.id))) methods.push('webauthn');
    return methods;
  }

  /**
   * The live password sign-in an mfaToken stands for, without spending one of
   * its attempts (the hosted page shows the methods it may use); undefined for
   * an unknown, used, expired or exhausted token.
   */
  async pending(mfaToken: string): Promise<{ user: UserRecord; methods: SecondFactor[]; challengeId: string } | undefined> {
    const challenge = MFA_TOKEN.test(mfaToken) ? await findLiveChallenge(this.#db, sha256(mfaToken), this.#clock.now(), CHALLENGE_MAX_ATTEMPTS) : undefined;
    if (!challenge) return undefined;
    const user = await findUserById(this.#db, challenge.user_id);
    if (!user || user.disabledAt !== null) return undefined;
    return { user, methods: await this.methods(user), challengeId: challenge.id };
  }

  /** Request options for completing the sign-in of `mfaToken` with one of its user's passkeys. */
  async passkeyOptions(mfaToken: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const pending = await this.pending(mfaToken);
    if (!pending || pending.methods.length === 0) throw new SignetError('invalid_mfa_token');
    if (!pending.methods.includes('webauthn')) throw new SignetError('passkey_not_found');
    return this.#passkeys.secondFactorOptions(pending.user.id, pending.challengeId);
  }

  /**
   * Second step of sign-in. A wrong, replayed or expired code is `invalid_code`
   * (a refused passkey `invalid_passkey`, `unknown_passkey` or
   * `challenge_expired`); the mfaToken dies after five attempts, at expiry,
   * and once it succeeds. Returns the user and how the sign-in was proven.
   */
  async verify(mfaToken: string, proof: MfaProof): Promise<{ user: UserRecord; amr: AuthMethod[] }> {
    const now = this.#clock.now();
    // The attempt is claimed (counted) before anything is checked.
    const challenge = MFA_TOKEN.test(mfaToken) ? await claimChallengeAttempt(this.#db, sha256(mfaToken), now, CHALLENGE_MAX_ATTEMPTS) : undefined;
    if (!challenge) throw new SignetError('invalid_mfa_token');
    const user = await findUserById(this.#db, challenge.user_id);
    const methods = user && user.disabledAt === null ? await this.methods(user) : [];
    if (!user || methods.length === 0) throw new SignetError('invalid_mfa_token');

    // Past the account's budget nothing is even checked: the answer stays a refusal.
    const budget = await this.#limits.take('mfa.account', user.id);
    if (!budget.allowed) this.#onEvent('security.mfa_throttled', { userId: user.id });
    let amr: AuthMethod[];
    const first = parseAmr(challenge.first_amr) ?? PASSWORD_AMR;
    if ('webauthn' in proof) {
      if (!budget.allowed || !methods.includes('webauthn')) {
        this.#onEvent('auth.mfa_failed', { userId: user.id, method: 'passkey', reason: budget.allowed ? 'no_passkey' : 'throttled' });
        throw new SignetError('invalid_passkey');
      }
      // Refusals are audited (auth.mfa_failed) by the passkey service itself.
      amr = passwordPasskeyAmr(await this.#passkeys.verifySecondFactor(user.id, challenge.id, proof.webauthn), first);
    } else {
      if (!(await this.#checkCode(user, budget.allowed && methods.includes('totp'), proof, now))) {
        this.#onEvent('auth.mfa_failed', { userId: user.id });
        throw new SignetError('invalid_code');
      }
      amr = withOtpAmr(first);
    }
    await this.#limits.refund('mfa.account', user.id);
    if (!(await completeChallenge(this.#db, challenge.id, now))) throw new SignetError('invalid_mfa_token');
    return { user, amr };
  }

  /** A TOTP or recovery code; false without checking when `allowed` is false (throttled, or no TOTP). */
  async #checkCode(user: User, allowed: boolean, proof: { code: string } | { recoveryCode: string }, now: number): Promise<boolean> {
    if (!allowed) return false;
    const totp = await findTotp(this.#db, user.id);
    if (!totp || totp.enabled_at === null) return false;
    if ('code' in proof) {
      const step = this.#validStep(user, totp.secret, proof.code);
      return step !== undefined && (await advanceTotpStep(this.#db, user.id, step));
    }
    const ok = await useRecoveryCode(this.#db, user.id, sha256(normalizeRecovery(proof.recoveryCode)), now);
    if (ok) this.#onEvent('account.mfa_recovery_code_used', { userId: user.id });
    return ok;
  }

  async #reauthenticate(user: User, password: string, context: Pick<ClientContext, 'ip'>): Promise<void> {
    const ok = await this.#guard.reauthenticate(user.id, context.ip, async () => {
      const record = await findUserById(this.#db, user.id);
      return record !== undefined && (await this.#hasher.verify(password, record.passwordHash)).ok;
    });
    if (!ok) throw new SignetError('invalid_credentials');
  }

  #totp(user: User, secret: Secret): TOTP {
    return new TOTP({ issuer: this.#config.appName, label: user.email, algorithm: 'SHA1', digits: 6, period: PERIOD, secret });
  }

  /** The 30-second step a code belongs to, if it is valid now. */
  #validStep(user: User, sealed: string, code: string): number | undefined {
    const secret = this.#sealer.openOrThrow(SEAL_PURPOSE, sealed, 'a TOTP secret').value;
    const timestamp = this.#clock.now();
    const delta = this.#totp(user, Secret.fromBase32(secret)).validate({ token: code, timestamp, window: WINDOW });
    return delta === null ? undefined : Math.floor(timestamp / 1000 / PERIOD) + delta;
  }
}

async function describeSetup(secret: string, totp: TOTP): Promise<TotpSetup> {
  const otpauthUri = totp.toString();
  return { secret, otpauthUri, qrSvg: await QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }) };
}

/** 25 base32 characters (125 bits) in groups of five: `k7d2m-…`. */
function recoveryCode(): string {
  const bytes = randomBytes(25);
  const chars = Array.from(bytes, (b) => BASE32[b & 31]).join('');
  return chars.match(/.{5}/g)!.join('-');
}

function normalizeRecovery(code: string): string {
  return code.toLowerCase().replace(/[^a-z2-7]/g, '');
}
