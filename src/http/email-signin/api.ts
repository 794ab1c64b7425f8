import { json } from '../context.js';
import { respondToSignIn } from '../handlers/auth.js';
import { route } from '../route.js';
import { Accepted, SessionResponse, emailOnlyBody, emailSigninCodeBody, emailSigninLinkBody } from '../schemas.js';

export const requestEmailSigninRoute = route({
  method: 'POST',
  path: '/auth/email-signin',
  tag: 'Sign-in',
  summary: 'Mail a one-time sign-in code and/or link (EMAIL_SIGNIN) to an existing account',
  auth: 'none',
  body: emailOnlyBody,
  limit: 'mail.ip',
  success: { status: 202, description: 'Accepted, the same whether or not the account exists', schema: Accepted },
  errors: ['email_signin_disabled', 'rate_limited'],
  handle: (c, body) => {
    c.var.services.emailSignIn.request(body.email);
    return json({ message: 'If an account exists for this address, a sign-in email is on its way' }, 202);
  },
});

export const verifyEmailCodeRoute = route({
  method: 'POST',
  path: '/auth/email-signin/verify',
  tag: 'Sign-in',
  summary: 'Sign in with the emailed code (5 tries per code, 10 per account an hour)',
  auth: 'none',
  body: emailSigninCodeBody,
  csrf: 'cookie-mode',
  limit: 'emailcode.ip',
  success: {
    status: 200,
    description: 'Session started (amr `otp`), or `{mfaRequired, mfaToken, methods}` for an account with a second factor',
    schema: SessionResponse,
  },
  errors: ['invalid_code', 'email_signin_disabled', 'csrf_failed', 'rate_limited'],
  handle: async (c, body) => respondToSignIn(c, await c.var.services.emailSignIn.verifyCode(body.email, body.code, c.var.client)),
});

export const consumeEmailLinkRoute = route({
  method: 'POST',
  path: '/auth/email-signin/link',
  tag: 'Sign-in',
  summary: "Sign in with the emailed link's token (works once)",
  auth: 'none',
  body: emailSigninLinkBody,
  csrf: 'cookie-mode',
  limit: 'emailcode.ip',
  success: { status: 200, description: 'Session started (amr `otp`), or the second-factor challenge', schema: SessionResponse },
  errors: ['invalid_account_token', 'email_signin_disabled', 'csrf_failed', 'rate_limited'],
  handle: async (c, body) => respondToSignIn(c, await c.var.services.emailSignIn.consumeLink(body.token, c.var.client)),
});
