import type { Passkey } from '../model.js';

/**
 * Authentication Method Reference values (RFC 8176 §2) that Signet puts in a
 * session's `amr`, and so in every access token of that session:
 *
 * - `pwd`: a password;
 * - `otp`: a one-time code (TOTP, or a single-use recovery code);
 * - `hwk` / `swk`: proof of possession of a key held in hardware / in software. A passkey
 *   that may be synced between devices (backup eligible) lives in software that can copy
 *   it (`swk`); a device-bound one (`hwk`) never leaves its authenticator;
 * - `user`: the authenticator verified the user (PIN or biometric; RFC 8176 has no value
 *   naming user verification, and `user` is the closest one);
 * - `mfa`: more than one factor was proven;
 * - `fed`: another identity provider vouched for the user ("Sign in with …", docs/federation.md). Not
 *   in the RFC 8176 registry (it has no value for a federated sign-in); a short, Signet-specific value
 *   as RFC 8176 §5 allows for methods the registry does not name.
 *
 * A code or link sent by email is `otp` (a one-time password, RFC 8176 §2), on its own: possession of
 * the mailbox is one factor.
 */
export type AuthMethod = 'pwd' | 'otp' | 'hwk' | 'swk' | 'user' | 'mfa' | 'fed';

export const FEDERATED_AMR: readonly AuthMethod[] = ['fed'];
export const EMAIL_OTP_AMR: readonly AuthMethod[] = ['otp'];

export const PASSWORD_AMR: readonly AuthMethod[] = ['pwd'];
export const PASSWORD_OTP_AMR: readonly AuthMethod[] = ['pwd', 'otp', 'mfa'];

/** The key kind of a passkey: `swk` when it may be synced, `hwk` when bound to one authenticator. */
export function keyMethod(passkey: Pick<Passkey, 'deviceType'>): 'hwk' | 'swk' {
  return passkey.deviceType === 'multiDevice' ? 'swk' : 'hwk';
}

/**
 * A passkey sign-in: the key (something you have) and user verification by the
 * authenticator (something you know or are), so two factors (WebAuthn §6.2.3).
 */
export function passkeyAmr(passkey: Pick<Passkey, 'deviceType'>): AuthMethod[] {
  return [keyMethod(passkey), 'user', 'mfa'];
}

/** A first factor (a password unless said otherwise), then a passkey as the second factor. */
export function passwordPasskeyAmr(passkey: Pick<Passkey, 'deviceType'>, first: readonly AuthMethod[] = PASSWORD_AMR): AuthMethod[] {
  return [...new Set<AuthMethod>([...first, keyMethod(passkey), 'mfa'])];
}

/** A first factor, then a TOTP or recovery code. */
export function withOtpAmr(first: readonly AuthMethod[]): AuthMethod[] {
  return [...new Set<AuthMethod>([...first, 'otp', 'mfa'])];
}

/** The stored form of a first factor (space-separated), and back; unknown values are dropped. */
export function parseAmr(stored: string | null | undefined): AuthMethod[] | undefined {
  if (!stored) return undefined;
  const known = new Set<string>(LONGEST_AMR);
  return stored.split(' ').filter((m): m is AuthMethod => known.has(m));
}

/** The longest `amr` Signet issues, for the token size check. */
export const LONGEST_AMR: readonly AuthMethod[] = ['pwd', 'otp', 'hwk', 'swk', 'user', 'mfa', 'fed'];
