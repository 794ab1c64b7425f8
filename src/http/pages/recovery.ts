import { isSignetError } from '../../errors.js';
import { PASSWORD_MAX_LENGTH } from '../../core/passwords.js';
import type { AppContext } from '../context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { email as emailSchema, newPassword } from '../schemas.js';
import { html } from './html.js';
import type { PageAssets, PageKit } from './layout.js';
import { alert, field, formFields, page, pageKit } from './layout.js';

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Forgot password, reset password and email verification: the pages the
 * mailed links open, and the one that mails a reset link. Opening a link
 * changes nothing (mail scanners prefetch links); only the page's form post
 * spends the token. The forgot page answers the same whether or not the
 * account exists, like the JSON route.
 */
export function recoveryPages(prefix: string, assets: PageAssets, minPasswordLength: number): Route[] {
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  return [
    route({
      method: 'GET',
      path: `${prefix}forgot-password`,
      tag: 'Pages',
      summary: 'Forgot-password page',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: (c) => forgotPage(kitOf(c), {}),
    }),
    route({
      method: 'POST',
      path: `${prefix}forgot-password`,
      tag: 'Pages',
      summary: 'Mail a password-reset link (the same answer whether or not the account exists)',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      limit: 'mail.ip',
      success: { status: 200, description: 'HTML: check your email' },
      handle: (c) => {
        const kit = kitOf(c);
        const value = (c.var.form.get('email') ?? '').trim();
        const parsed = emailSchema.safeParse(value);
        if (!parsed.success) return forgotPage(kit, { email: value, error: value ? kit.t.errors.emailInvalid : kit.t.errors.required, status: 400 });
        c.var.services.lifecycle.requestPasswordReset(parsed.data);
        return page(kit, {
          title: kit.t.titles.forgotSent,
          body: html`<p>${kit.t.text.forgotSent}</p>
<div class="links"><a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${kit.t.links.backToSignIn}</a></div>`,
        });
      },
    }),
    route({
      method: 'GET',
      path: `${prefix}reset-password`,
      tag: 'Pages',
      summary: 'Reset-password page (opened from the mailed link)',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: (c) => {
        const kit = kitOf(c);
        const token = c.req.query('token') ?? '';
        return TOKEN.test(token) ? resetPage(kit, minPasswordLength, { token }) : invalidLink(kit);
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}reset-password`,
      tag: 'Pages',
      summary: 'Set a new password with the mailed token',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      success: { status: 200, description: 'HTML: password changed' },
      handle: async (c) => {
        const kit = kitOf(c);
        const { t } = kit;
        const form = c.var.form;
        const token = form.get('token') ?? '';
        if (!TOKEN.test(token)) return invalidLink(kit);
        const password = newPassword(minPasswordLength).safeParse(form.get('password') ?? '');
        if (!password.success)
          return resetPage(kit, minPasswordLength, {
            token,
            errors: { password: t.errors.passwordLength(minPasswordLength, PASSWORD_MAX_LENGTH) },
            status: 400,
          });
        if (password.data !== newPassword(minPasswordLength).safeParse(form.get('confirm') ?? '').data) {
          return resetPage(kit, minPasswordLength, { token, errors: { confirm: t.errors.passwordsDiffer }, status: 400 });
        }
        try {
          await c.var.services.lifecycle.resetPassword(token, password.data);
        } catch (error) {
          // A rejected password leaves the link usable (the contract).
          if (isSignetError(error, 'weak_password'))
            return resetPage(kit, minPasswordLength, { token, errors: { password: t.errors.passwordWeak }, status: 400 });
          if (isSignetError(error, 'invalid_account_token')) return invalidLink(kit);
          throw error;
        }
        return page(kit, {
          title: t.titles.resetDone,
          body: html`<p>${t.text.resetDone}</p>
<div class="links"><a class="button" href="${kit.to('sign-in', { return_to: kit.returnTo })}">${t.buttons.signIn}</a></div>`,
        });
      },
    }),
    route({
      method: 'GET',
      path: `${prefix}verify-email`,
      tag: 'Pages',
      summary: 'Email confirmation page (opened from the mailed link)',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: (c) => {
        const kit = kitOf(c);
        const token = c.req.query('token') ?? '';
        if (!TOKEN.test(token)) return invalidLink(kit);
        return page(kit, {
          title: kit.t.titles.verify,
          body: html`<p class="lead">${kit.t.text.verifyLead}</p>
<form method="post" action="${kit.to('verify-email')}">
${formFields(kit)}<input type="hidden" name="token" value="${token}"><button type="submit">${kit.t.buttons.confirmEmail}</button>
</form>`,
        });
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}verify-email`,
      tag: 'Pages',
      summary: 'Confirm the email address with the mailed token',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      success: { status: 200, description: 'HTML: confirmed' },
      handle: async (c) => {
        const kit = kitOf(c);
        try {
          const user = await c.var.services.lifecycle.verifyEmail(c.var.form.get('token') ?? '');
          return page(kit, {
            title: kit.t.titles.verified,
            body: html`<p>${kit.t.text.verified(user.email)}</p>
<div class="links"><a href="${kit.returnTo ?? kit.to('account')}">${kit.t.buttons.continue}</a></div>`,
          });
        } catch (error) {
          if (isSignetError(error, 'invalid_account_token')) return invalidLink(kit);
          throw error;
        }
      },
    }),
  ];
}

function forgotPage(kit: PageKit, state: { email?: string; error?: string; status?: number }): Response {
  const { t } = kit;
  return page(kit, {
    title: t.titles.forgot,
    status: state.status,
    body: html`<p class="lead">${t.text.forgotLead}</p>
${alert(state.error ? t.errors.summary : undefined)}
<form method="post" action="${kit.to('forgot-password')}" novalidate>
${formFields(kit)}
${field({ name: 'email', label: t.fields.email, type: 'email', autocomplete: 'email', value: state.email, error: state.error, required: true, maxlength: 254, autofocus: true }, t)}
<button type="submit">${t.buttons.sendLink}</button>
</form>
<div class="links"><a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${t.links.backToSignIn}</a></div>`,
  });
}

function resetPage(kit: PageKit, minPasswordLength: number, state: { token: string; errors?: Record<string, string | undefined>; status?: number }): Response {
  const { t } = kit;
  const errors = state.errors ?? {};
  return page(kit, {
    title: t.titles.reset,
    status: state.status,
    body: html`${alert(Object.values(errors).some(Boolean) ? t.errors.summary : undefined)}
<form method="post" action="${kit.to('reset-password')}" novalidate>
${formFields(kit)}<input type="hidden" name="token" value="${state.token}">
${field(
  {
    name: 'password',
    label: t.fields.newPassword,
    type: 'password',
    hint: t.fields.passwordHint(minPasswordLength, PASSWORD_MAX_LENGTH),
    autocomplete: 'new-password',
    error: errors.password,
    required: true,
    minlength: minPasswordLength,
    maxlength: PASSWORD_MAX_LENGTH,
    autofocus: errors.confirm === undefined,
  },
  t,
)}
${field({ name: 'confirm', label: t.fields.confirmPassword, type: 'password', autocomplete: 'new-password', error: errors.confirm, required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: errors.confirm !== undefined }, t)}
<button type="submit">${t.buttons.setPassword}</button>
</form>`,
  });
}

function invalidLink(kit: PageKit): Response {
  return page(kit, {
    title: kit.t.titles.linkInvalid,
    status: 400,
    body: html`<p>${kit.t.text.linkInvalid}</p>
<div class="links"><a href="${kit.to('forgot-password')}">${kit.t.links.newLink}</a></div>`,
  });
}
