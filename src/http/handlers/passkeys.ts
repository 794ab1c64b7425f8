import { toPublicPasskey } from '../../core/passkeys/service.js';
import { SignetError } from '../../errors.js';
import { json } from '../context.js';
import { route } from '../route.js';
import {
  CreationOptions,
  PasskeyList,
  PasskeyResponse,
  RequestOptions,
  SessionResponse,
  mfaTokenBody,
  passkeyRegisterBody,
  passkeyRegisterOptionsBody,
  passkeyRenameBody,
  passkeySignInBody,
} from '../schemas.js';
import { respondToSignIn } from './auth.js';

/** A credential ID in a path: base64url, at most 1023 bytes; anything else names no passkey. */
const CREDENTIAL_ID = /^[A-Za-z0-9_-]{1,1364}$/;

function passkeyId(raw: string | undefined): string {
  if (raw === undefined || !CREDENTIAL_ID.test(raw)) throw new SignetError('passkey_not_found');
  return raw;
}

export const passkeyRegisterOptionsRoute = route({
  method: 'POST',
  path: '/auth/passkeys/register/options',
  tag: 'Passkeys',
  summary: 'Start adding a passkey: creation options for navigator.credentials.create() (a recent sign-in, or the password)',
  auth: 'bearer',
  body: passkeyRegisterOptionsBody,
  bodyOptional: true,
  limit: 'passkey.ip',
  success: { status: 200, description: 'Creation options; the challenge lives 5 minutes and works once', schema: CreationOptions },
  errors: ['reauthentication_required', 'invalid_credentials', 'too_many_passkeys', 'passkeys_disabled', 'rate_limited', 'unavailable'],
  handle: async (c, body) => json(await c.var.services.passkeys.registrationOptions(c.var.auth, { password: body?.password }, c.var.client)),
});

export const passkeyRegisterRoute = route({
  method: 'POST',
  path: '/auth/passkeys/register/verify',
  tag: 'Passkeys',
  summary: 'Finish adding a passkey: the response of navigator.credentials.create(), and an optional name',
  auth: 'bearer',
  body: passkeyRegisterBody,
  limit: 'passkey.ip',
  success: { status: 201, description: 'The passkey was added', schema: PasskeyResponse },
  errors: ['invalid_passkey', 'challenge_expired', 'too_many_passkeys', 'passkeys_disabled', 'rate_limited'],
  handle: async (c, body) => json({ passkey: toPublicPasskey(await c.var.services.passkeys.register(c.var.auth.user, body.response, body.name)) }, 201),
});

export const listPasskeysRoute = route({
  method: 'GET',
  path: '/auth/passkeys',
  tag: 'Passkeys',
  summary: "The user's passkeys, oldest first",
  auth: 'bearer',
  success: { status: 200, description: 'Passkeys', schema: PasskeyList },
  handle: async (c) => json({ passkeys: (await c.var.services.passkeys.list(c.var.auth.user.id)).map(toPublicPasskey) }),
});

export const renamePasskeyRoute = route({
  method: 'PATCH',
  path: '/auth/passkeys/:id',
  tag: 'Passkeys',
  summary: 'Rename a passkey (null or an empty name clears it)',
  auth: 'bearer',
  body: passkeyRenameBody,
  success: { status: 200, description: 'The renamed passkey', schema: PasskeyResponse },
  errors: ['passkey_not_found'],
  handle: async (c, body) =>
    json({ passkey: toPublicPasskey(await c.var.services.passkeys.rename(c.var.auth.user.id, passkeyId(c.req.param('id')), body.name ?? undefined)) }),
});

export const removePasskeyRoute = route({
  method: 'DELETE',
  path: '/auth/passkeys/:id',
  tag: 'Passkeys',
  summary: 'Remove a passkey (needs a sign-in within the last 10 minutes)',
  auth: 'bearer',
  success: { status: 204, description: 'Removed' },
  errors: ['passkey_not_found', 'reauthentication_required'],
  handle: async (c) => {
    await c.var.services.passkeys.remove(c.var.auth, passkeyId(c.req.param('id')), {}, c.var.client);
    return c.body(null, 204);
  },
});

export const passkeySignInOptionsRoute = route({
  method: 'POST',
  path: '/auth/passkeys/signin/options',
  tag: 'Passkeys',
  summary: 'Start a passkey sign-in: request options for navigator.credentials.get() (any passkey of this site; autofill too)',
  auth: 'none',
  limit: 'passkey.ip',
  success: { status: 200, description: 'Request options; the challenge lives 5 minutes and works once', schema: RequestOptions },
  errors: ['passkeys_disabled', 'rate_limited'],
  handle: async (c) => json(await c.var.services.passkeys.signInOptions()),
});

export const passkeySignInRoute = route({
  method: 'POST',
  path: '/auth/passkeys/signin/verify',
  tag: 'Passkeys',
  summary: 'Sign in with a passkey: the response of navigator.credentials.get()',
  auth: 'none',
  body: passkeySignInBody,
  csrf: 'cookie-mode',
  limit: 'passkey.ip',
  success: { status: 200, description: 'Session started (its amr says two factors were proven)', schema: SessionResponse },
  errors: ['invalid_passkey', 'unknown_passkey', 'challenge_expired', 'email_not_verified', 'passkeys_disabled', 'csrf_failed', 'rate_limited'],
  handle: async (c, body) => respondToSignIn(c, await c.var.services.accounts.signInWithPasskey(body.response, c.var.client)),
});

export const mfaPasskeyOptionsRoute = route({
  method: 'POST',
  path: '/auth/mfa/webauthn/options',
  tag: 'Two-factor',
  summary: "Second sign-in step with a passkey: request options listing the user's passkeys, for the mfaToken",
  auth: 'none',
  body: mfaTokenBody,
  limit: 'mfa.ip',
  success: { status: 200, description: 'Request options; answer them at POST /auth/mfa/verify with `webauthn`', schema: RequestOptions },
  errors: ['invalid_mfa_token', 'passkey_not_found', 'passkeys_disabled', 'rate_limited'],
  handle: async (c, body) => json(await c.var.services.mfa.passkeyOptions(body.mfaToken)),
});
