import { z } from 'zod';
import { ERROR_CATALOG, publicCode } from '../errors.js';
import { PASSWORD_MAX_LENGTH, normalizePassword, passwordLength } from '../core/passwords.js';

/**
 * Request and response schemas: the same objects validate requests and
 * generate /openapi.json.
 */

// U+0000–U+001F and U+007F, left after trimming, are refused in every field.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const noControl = (s: string) => !CONTROL.test(s);
const NO_CONTROL = 'must not contain control characters';

/** The WHATWG HTML rule for `<input type=email>` (valid e-mail address). */
const WHATWG_EMAIL = /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

const string = (what = 'a string') => z.string({ error: `must be ${what}` });

export const email = string()
  .trim()
  .refine(noControl, NO_CONTROL)
  .max(254, 'must be at most 254 characters')
  .regex(WHATWG_EMAIL, 'must be a valid email address')
  .meta({ format: 'email', example: 'ada@example.com' });

export const username = string()
  .trim()
  .refine(noControl, NO_CONTROL)
  .min(3, 'must be at least 3 characters')
  .max(32, 'must be at most 32 characters')
  .regex(/^[A-Za-z0-9_.-]+$/, 'may contain only letters, digits, "_", "." and "-"')
  .meta({ example: 'ada' });

export const name = string().trim().refine(noControl, NO_CONTROL).max(100, 'must be at most 100 characters').meta({ example: 'Ada Lovelace' });

/** A password being set: NFKC, then counted in code points (never truncated). */
export function newPassword(minLength: number) {
  return string()
    .refine(noControl, NO_CONTROL)
    .transform(normalizePassword)
    .refine((p) => passwordLength(p) >= minLength, `must be at least ${minLength} characters`)
    .refine((p) => passwordLength(p) <= PASSWORD_MAX_LENGTH, `must be at most ${PASSWORD_MAX_LENGTH} characters`)
    .meta({ description: `${minLength}–${PASSWORD_MAX_LENGTH} code points after NFKC normalisation; not on the common-password list`, format: 'password' });
}

/** A password being checked: any non-empty string within the maximum. */
export const currentPassword = string()
  .refine(noControl, NO_CONTROL)
  .transform(normalizePassword)
  .refine((p) => p.length > 0, 'is required')
  .refine((p) => passwordLength(p) <= PASSWORD_MAX_LENGTH, `must be at most ${PASSWORD_MAX_LENGTH} characters`)
  .meta({ format: 'password' });

export function signUpBody(minLength: number) {
  return z.object({ email, password: newPassword(minLength), username: username.optional(), name: name.optional() });
}

export const signInBody = z.object({ email: email.optional(), username: username.optional(), password: currentPassword }).meta({
  description: 'Exactly one of email and username.',
});

// No length rule: any string that is not a live refresh token is `401 invalid_refresh_token` (the body limit bounds it).
const refreshToken = string().refine(noControl, NO_CONTROL);

export const refreshBody = z.object({ refreshToken });

export const signOutBody = z.object({ refreshToken: refreshToken.optional() });

// ---- responses (documentation only; built by the handlers) ----

export const User = z
  .object({
    id: z.string().meta({ format: 'uuid' }),
    email: z.string(),
    emailVerified: z.boolean(),
    username: z.string().nullable(),
    name: z.string().nullable(),
    mfaEnabled: z.boolean(),
    createdAt: z.string().meta({ format: 'date-time' }),
    updatedAt: z.string().meta({ format: 'date-time' }),
  })
  .meta({ id: 'User' });

export const SessionResponse = z
  .object({
    token: z.string().meta({ description: 'JWT access token (RFC 9068)' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int(),
    refreshToken: z.string(),
    refreshExpiresIn: z.number().int(),
    user: User,
  })
  .meta({ id: 'SessionResponse' });

export const UserResponse = z.object({ user: User }).meta({ id: 'UserResponse' });

export const SessionList = z
  .object({
    sessions: z.array(
      z.object({
        id: z.string(),
        createdAt: z.string().meta({ format: 'date-time' }),
        lastUsedAt: z.string().meta({ format: 'date-time' }),
        userAgent: z.string().nullable(),
        ip: z.string().nullable(),
        current: z.boolean(),
      }),
    ),
  })
  .meta({ id: 'SessionList' });

export const ErrorBody = z
  .object({
    statusCode: z.number().int(),
    error: z.string().meta({ description: 'HTTP reason phrase' }),
    message: z.string(),
    code: z.enum([...new Set(Object.keys(ERROR_CATALOG).map((c) => publicCode(c as keyof typeof ERROR_CATALOG)))] as [string, ...string[]]),
    details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });

export const Status = z.object({ status: z.string() }).meta({ id: 'Status' });

export const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).meta({ id: 'JWKSet' });

export const Discovery = z.record(z.string(), z.unknown()).meta({ id: 'DiscoveryDocument' });

export const RevocationList = z
  .object({
    sessions: z.array(z.string()).meta({ description: 'Session ids (the `sid` claim) ended after the cursor asked for, within the horizon, oldest first' }),
    horizon: z.number().int().meta({ description: 'Seconds an ended session stays listed: access-token lifetime plus clock leeway' }),
    cursor: z.string().meta({ description: 'Pass as `since` on the next call' }),
    complete: z.boolean().meta({ description: 'False when more ids wait: call again at once with `since=cursor`' }),
  })
  .meta({ id: 'RevocationList' });

/** POST /auth/token (RFC 6749 §4.1.3, §4.3, §6), form-encoded or JSON. Documentation; the handler parses. */
export const TokenRequest = z
  .object({
    grant_type: z.enum(['authorization_code', 'refresh_token', 'password']),
    code: z.string().optional().meta({ description: 'authorization_code grant: the code from the redirect' }),
    redirect_uri: z.string().optional().meta({ description: 'authorization_code grant: the redirect_uri of the authorization request' }),
    code_verifier: z.string().optional().meta({ description: 'authorization_code grant: the PKCE verifier (RFC 7636)' }),
    username: z.string().optional().meta({ description: 'password grant: an email or a username' }),
    password: z.string().optional().meta({ description: 'password grant' }),
    refresh_token: z.string().optional().meta({ description: 'refresh_token grant' }),
    client_id: z
      .string()
      .optional()
      .meta({ description: 'A registered client (public clients; or client_secret_post with client_secret). Confidential clients may use HTTP Basic instead' }),
    client_secret: z.string().optional().meta({ description: 'client_secret_post only' }),
    scope: z.string().optional(),
  })
  .meta({ id: 'TokenRequest' });

export const TokenResponse = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    refresh_token: z.string().optional().meta({ description: 'Always for first-party grants; for a client only with offline_access' }),
    id_token: z.string().optional().meta({ description: 'OpenID Connect grants (the openid scope)' }),
    scope: z.string().optional(),
  })
  .meta({ id: 'TokenResponse' });

// ---- account lifecycle ----

const accountToken = string()
  .refine(noControl, NO_CONTROL)
  .refine((t) => t.length > 0, 'is required')
  .meta({ description: 'The token from the mailed link' });

export const verifyEmailBody = z.object({ token: accountToken });
export const emailOnlyBody = z.object({ email });
export function resetPasswordBody(minLength: number) {
  return z.object({ token: accountToken, password: newPassword(minLength) });
}
export function changePasswordBody(minLength: number) {
  return z.object({ currentPassword, newPassword: newPassword(minLength) });
}
export const profileBody = z.object({ name: name.nullable().optional(), username: username.nullable().optional() });

export const Accepted = z.object({ message: z.string() }).meta({ id: 'Accepted' });

// ---- two-factor ----

const totpCode = string()
  .regex(/^\d{6}$/, 'must be six digits')
  .meta({ example: '492039' });

// ---- passkeys (WebAuthn; the JSON forms of W3C WebAuthn Level 3 §5.1) ----

const base64url = (max: number) =>
  string()
    .max(max, `must be at most ${max} characters`)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url');
// A credential ID is at most 1023 bytes (WebAuthn §5.8.3): 1364 characters of base64url.
const credentialId = base64url(1364).min(1, 'is required');

export const authenticationResponse = z
  .object({
    id: credentialId,
    rawId: credentialId,
    type: z.literal('public-key', { error: 'must be "public-key"' }),
    response: z.object({
      clientDataJSON: base64url(4096),
      authenticatorData: base64url(4096),
      signature: base64url(2048),
      userHandle: base64url(128)
        .nullable()
        .optional()
        .transform((v) => v ?? undefined),
    }),
    clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  })
  .meta({ id: 'AuthenticationResponse', description: 'What `navigator.credentials.get()` returned, as `PublicKeyCredential.toJSON()` gives it' });

export const registrationResponse = z
  .object({
    id: credentialId,
    rawId: credentialId,
    type: z.literal('public-key', { error: 'must be "public-key"' }),
    response: z.object({
      clientDataJSON: base64url(4096),
      attestationObject: base64url(8192),
      transports: z.array(string().max(32)).max(10).optional(),
    }),
    clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  })
  .meta({ id: 'RegistrationResponse', description: 'What `navigator.credentials.create()` returned, as `PublicKeyCredential.toJSON()` gives it' });

export const passkeyName = string().trim().refine(noControl, NO_CONTROL).max(64, 'must be at most 64 characters').meta({ example: 'Laptop' });

export const passkeyRegisterOptionsBody = z.object({
  password: currentPassword.optional().meta({ description: 'Needed when the session started more than 10 minutes ago' }),
});
export const passkeyRegisterBody = z.object({ response: registrationResponse, name: passkeyName.optional() });
export const passkeyRenameBody = z.object({ name: passkeyName.nullable() });
export const passkeySignInBody = z.object({ response: authenticationResponse });
export const mfaTokenBody = z.object({ mfaToken: string().refine(noControl, NO_CONTROL) });

export const Passkey = z
  .object({
    id: z.string().meta({ description: 'The credential ID, base64url' }),
    name: z.string().nullable(),
    createdAt: z.string().meta({ format: 'date-time' }),
    lastUsedAt: z.string().nullable().meta({ format: 'date-time' }),
    deviceType: z.enum(['singleDevice', 'multiDevice']).meta({ description: '`multiDevice`: may be synced between devices' }),
    backedUp: z.boolean(),
    transports: z.array(z.string()),
  })
  .meta({ id: 'Passkey' });
export const PasskeyResponse = z.object({ passkey: Passkey }).meta({ id: 'PasskeyResponse' });
export const PasskeyList = z.object({ passkeys: z.array(Passkey) }).meta({ id: 'PasskeyList' });
export const CreationOptions = z.record(z.string(), z.unknown()).meta({
  id: 'PublicKeyCredentialCreationOptionsJSON',
  description: 'Give to `navigator.credentials.create()` (`PublicKeyCredential.parseCreationOptionsFromJSON`)',
});
export const RequestOptions = z.record(z.string(), z.unknown()).meta({
  id: 'PublicKeyCredentialRequestOptionsJSON',
  description: 'Give to `navigator.credentials.get()` (`PublicKeyCredential.parseRequestOptionsFromJSON`)',
});

export const mfaVerifyBody = z.object({
  mfaToken: string().refine(noControl, NO_CONTROL),
  code: totpCode.optional(),
  recoveryCode: string().refine(noControl, NO_CONTROL).max(64, 'must be at most 64 characters').optional(),
  webauthn: authenticationResponse.optional(),
});
export const passwordOnlyBody = z.object({ password: currentPassword });
export const mfaEnableBody = z.object({ code: totpCode });

export const MfaChallenge = z
  .object({ mfaRequired: z.literal(true), mfaToken: z.string(), methods: z.array(z.enum(['totp', 'webauthn'])) })
  .meta({ id: 'MfaChallenge' });
export const TotpSetup = z.object({ secret: z.string(), otpauthUri: z.string(), qrSvg: z.string() }).meta({ id: 'TotpSetup' });
export const RecoveryCodes = z.object({ recoveryCodes: z.array(z.string()).length(10) }).meta({ id: 'RecoveryCodes' });

/** Passwordless sign-in by email (EMAIL_SIGNIN). */
export const emailSigninCodeBody = z.object({
  email,
  code: string('a string of 6 digits')
    .trim()
    .regex(/^\d{6}$/, 'must be 6 digits')
    .meta({ example: '042917' }),
});
export const emailSigninLinkBody = z.object({ token: accountToken });

export const ProviderList = z
  .object({ providers: z.array(z.object({ id: z.string(), name: z.string(), type: z.enum(['oidc', 'github']), startUrl: z.string() })) })
  .meta({ id: 'ProviderList' });
export const IdentityList = z
  .object({
    identities: z.array(
      z.object({
        id: z.string(),
        provider: z.string(),
        providerName: z.string(),
        email: z.string().nullable(),
        createdAt: z.string(),
        lastUsedAt: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'IdentityList' });
