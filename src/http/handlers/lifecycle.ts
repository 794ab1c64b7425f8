import { toPublicUser } from '../../core/users.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { Accepted, UserResponse, changePasswordBody, emailOnlyBody, profileBody, resetPasswordBody, verifyEmailBody } from '../schemas.js';

/** The same words whether or not the account exists (OWASP Forgot Password Cheat Sheet). */
const ACCEPTED = { message: 'If an account exists for this address, an email is on its way.' };

export const verifyEmailRoute = route({
  method: 'POST',
  path: '/auth/email/verify',
  tag: 'Account',
  summary: 'Confirm an email address with the token from the mailed link',
  auth: 'none',
  body: verifyEmailBody,
  success: { status: 200, description: 'Email verified; repeating with the same unexpired token answers the same', schema: UserResponse },
  errors: ['invalid_account_token'],
  handle: async (c, body) => json({ user: toPublicUser(await c.var.services.lifecycle.verifyEmail(body.token)) }),
});

export const resendVerificationRoute = route({
  method: 'POST',
  path: '/auth/email/resend',
  tag: 'Account',
  summary: 'Send the verification mail again',
  auth: 'none',
  body: emailOnlyBody,
  success: { status: 202, description: 'Accepted, whatever the account state', schema: Accepted },
  errors: ['rate_limited'],
  limit: 'mail.ip',
  handle: (c, body) => {
    c.var.services.lifecycle.requestVerification(body.email);
    return json(ACCEPTED, 202);
  },
});

export const forgotPasswordRoute = route({
  method: 'POST',
  path: '/auth/password/forgot',
  tag: 'Account',
  summary: 'Mail a password-reset link',
  auth: 'none',
  body: emailOnlyBody,
  success: { status: 202, description: 'Accepted, the same whether or not the account exists', schema: Accepted },
  errors: ['rate_limited'],
  limit: 'mail.ip',
  handle: (c, body) => {
    c.var.services.lifecycle.requestPasswordReset(body.email);
    return json(ACCEPTED, 202);
  },
});

export function resetPasswordRoute(minPasswordLength: number) {
  return route({
    method: 'POST',
    path: '/auth/password/reset',
    tag: 'Account',
    summary: 'Set a new password with the token from the mailed link; every session ends',
    auth: 'none',
    body: resetPasswordBody(minPasswordLength),
    success: { status: 204, description: 'Password set' },
    errors: ['invalid_account_token', 'weak_password'],
    handle: async (c, body) => {
      await c.var.services.lifecycle.resetPassword(body.token, body.password);
      return new Response(null, { status: 204 });
    },
  });
}

export function changePasswordRoute(minPasswordLength: number) {
  return route({
    method: 'POST',
    path: '/auth/password/change',
    tag: 'Account',
    summary: 'Change the password (the current one is required); every other session ends',
    auth: 'bearer',
    body: changePasswordBody(minPasswordLength),
    success: { status: 204, description: 'Password changed' },
    errors: ['invalid_credentials', 'weak_password'],
    handle: async (c, body) => {
      const { auth, services } = c.var;
      await services.lifecycle.changePassword(auth.user, { sessionId: auth.session.id, current: body.currentPassword, next: body.newPassword }, c.var.client);
      return new Response(null, { status: 204 });
    },
  });
}

export const updateProfileRoute = route({
  method: 'PATCH',
  path: '/auth/me',
  tag: 'Account',
  summary: 'Update name and username (null clears)',
  auth: 'bearer',
  body: profileBody,
  success: { status: 200, description: 'The updated user', schema: UserResponse },
  errors: ['username_taken'],
  handle: async (c, body) => {
    const changes: { name?: string | null; username?: string | null } = {};
    if (body.name !== undefined) changes.name = body.name === '' ? null : body.name;
    if (body.username !== undefined) changes.username = body.username;
    return json({ user: toPublicUser(await c.var.services.lifecycle.updateProfile(c.var.auth.user, changes)) });
  },
});
