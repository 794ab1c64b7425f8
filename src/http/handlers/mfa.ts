import { json } from '../context.js';
import { route } from '../route.js';
import { RecoveryCodes, TotpSetup, mfaEnableBody, passwordOnlyBody } from '../schemas.js';

export const totpSetupRoute = route({
  method: 'POST',
  path: '/auth/mfa/totp/setup',
  tag: 'Two-factor',
  summary: 'Start TOTP setup (re-authenticates with the password): secret, otpauth URI and QR code',
  auth: 'bearer',
  body: passwordOnlyBody,
  success: { status: 200, description: 'A pending secret; enable it with a valid code', schema: TotpSetup },
  errors: ['invalid_credentials', 'mfa_already_enabled'],
  handle: async (c, body) => json(await c.var.services.mfa.setup(c.var.auth.user, body.password, c.var.client)),
});

export const totpEnableRoute = route({
  method: 'POST',
  path: '/auth/mfa/totp/enable',
  tag: 'Two-factor',
  summary: 'Confirm TOTP setup with a code; returns ten single-use recovery codes, shown once',
  auth: 'bearer',
  body: mfaEnableBody,
  success: { status: 200, description: 'Two-factor authentication enabled', schema: RecoveryCodes },
  errors: ['invalid_code'],
  handle: async (c, body) => json({ recoveryCodes: await c.var.services.mfa.enable(c.var.auth.user, body.code) }),
});

export const totpDisableRoute = route({
  method: 'POST',
  path: '/auth/mfa/totp/disable',
  tag: 'Two-factor',
  summary: 'Turn two-factor authentication off (needs the password)',
  auth: 'bearer',
  body: passwordOnlyBody,
  success: { status: 204, description: 'Disabled; recovery codes deleted' },
  errors: ['invalid_credentials'],
  handle: async (c, body) => {
    await c.var.services.mfa.disable(c.var.auth.user, body.password, c.var.client);
    return c.body(null, 204);
  },
});
