import type { SignetConfig } from '../config.js';
import { SignetError } from '../errors.js';
import type { UserRecord } from '../model.js';
import type { AuthMethod } from './amr.js';
import type { DeviceCookies } from './devices.js';
import type { MfaService } from './mfa.js';
import type { ClientContext, SessionService } from './sessions.js';
import type { SignInResult } from './users.js';

export interface FirstFactorParts {
  sessions: SessionService;
  devices: DeviceCookies;
  mfa: MfaService;
  config: Pick<SignetConfig, 'emailVerification'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * The end of a sign-in whose first factor is not a password (another identity
 * provider, an emailed code or link): the same rules as a password sign-in.
 * A verified address when EMAIL_VERIFICATION=required; and an account with a
 * second factor (TOTP, a passkey) must still prove it: these first factors
 * never stand in for it (docs/federation.md, "Second factors").
 */
export async function finishFirstFactor(
  parts: FirstFactorParts,
  user: UserRecord,
  amr: readonly AuthMethod[],
  context: ClientContext,
  fields: Record<string, unknown>,
): Promise<SignInResult> {
  if (parts.config.emailVerification === 'required' && !user.emailVerified) {
    parts.onEvent('auth.signin_unverified', { userId: user.id });
    throw new SignetError('email_not_verified');
  }
  const secondFactors = await parts.mfa.methods(user);
  if (secondFactors.length > 0) {
    parts.onEvent('auth.mfa_challenged', { userId: user.id, methods: secondFactors, ...fields });
    return { kind: 'mfa', mfaToken: await parts.mfa.challenge(user, amr), methods: secondFactors };
  }
  parts.onEvent('auth.signin_succeeded', { userId: user.id, ...fields });
  return { kind: 'session', grant: await parts.sessions.start(user, context, { amr }), deviceCookie: parts.devices.issue(user.id) };
}
