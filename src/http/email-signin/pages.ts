import { SignetError, isSignetError } from '../../errors.js';
import type { AppContext } from '../context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { email as emailSchema } from '../schemas.js';
import { finishSignIn } from '../pages/auth.js';
import { html } from '../pages/html.js';
import type { PageAssets, PageKit } from '../pages/layout.js';
import { alert, field, formFields, page, pageKit } from '../pages/layout.js';

const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Passwordless sign-in on the hosted pages: "Email me a code" from the
 * sign-in page, the code page, and the emailed link's page. The link's page
 * asks for one click before the token is used (a POST), so a mail scanner
 * that fetches links does not spend it.
 */
export function emailSigninPages(prefix: string, assets: PageAssets): Route[] {
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  const base = { tag: 'Pages', kind: 'page' as const, auth: 'none' as const };
  const enabled = (c: AppContext) => {
    if (!c.var.services.emailSignIn.enabled) throw new SignetError('not_found');
    return c.var.services.emailSignIn;
  };
  return [
    route({
      ...base,
      method: 'GET',
      path: `${prefix}sign-in/email`,
      summary: 'Sign in by email: ask for a one-time code or link',
      success: { status: 200, description: 'HTML' },
      handle: (c) => {
        enabled(c);
        return requestPage(kitOf(c), {});
      },
    }),
    route({
      ...base,
      method: 'POST',
      path: `${prefix}sign-in/email`,
      summary: 'Mail a sign-in code or link (the same answer whether or not the account exists)',
      csrf: 'form',
      limit: 'mail.ip',
      success: { status: 200, description: 'The code page, or "check your email"' },
      handle: (c) => {
        const service = enabled(c);
        const kit = kitOf(c);
        const value = (c.var.form.get('email') ?? '').trim();
        const parsed = emailSchema.safeParse(value);
        if (!parsed.success) return requestPage(kit, { email: value, error: value ? kit.t.errors.emailInvalid : kit.t.errors.required, status: 400 });
        service.request(parsed.data);
        if (!service.codes) return page(kit, { title: kit.t.emailSignin.title, body: html`<p>${kit.t.emailSignin.linkSent}</p>` });
        return codePage(kit, { email: parsed.data });
      },
    }),
    route({
      ...base,
      method: 'POST',
      path: `${prefix}sign-in/email/code`,
      summary: 'Sign in with the emailed code',
      csrf: 'form',
      limit: 'emailcode.ip',
      success: { status: 303, description: 'On to the app, the account page or the second step' },
      handle: async (c) => {
        const service = enabled(c);
        const kit = kitOf(c);
        const email = emailSchema.safeParse((c.var.form.get('email') ?? '').trim());
        const code = (c.var.form.get('code') ?? '').replace(/\s+/g, '');
        if (!email.success) return requestPage(kit, { error: kit.t.errors.emailInvalid, status: 400 });
        if (!/^\d{6}$/.test(code)) return codePage(kit, { email: email.data, error: kit.t.errors.codeFormat, status: 400 });
        try {
          return finishSignIn(c, kit, await service.verifyCode(email.data, code, c.var.client));
        } catch (error) {
          if (isSignetError(error, 'invalid_code')) return codePage(kit, { email: email.data, error: kit.t.emailSignin.wrongCode, status: 401 });
          if (isSignetError(error, 'email_not_verified')) return codePage(kit, { email: email.data, error: kit.t.errors.emailNotVerified, status: 403 });
          throw error;
        }
      },
    }),
    route({
      ...base,
      method: 'GET',
      path: `${prefix}sign-in/email/link`,
      summary: "The emailed link's page: one click signs in",
      success: { status: 200, description: 'HTML' },
      handle: (c) => {
        enabled(c);
        const kit = kitOf(c);
        const token = c.req.query('token') ?? '';
        if (!LINK_TOKEN.test(token)) return linkInvalid(kit);
        return page(kit, {
          title: kit.t.emailSignin.linkTitle,
          body: html`<p class="lead">${kit.t.emailSignin.linkLead}</p>
<form method="post" action="${kit.to('sign-in/email/link')}">
${formFields(kit)}<input type="hidden" name="token" value="${token}">
<button type="submit">${kit.t.buttons.signIn}</button>
</form>`,
        });
      },
    }),
    route({
      ...base,
      method: 'POST',
      path: `${prefix}sign-in/email/link`,
      summary: 'Sign in with the emailed link (works once)',
      csrf: 'form',
      limit: 'emailcode.ip',
      success: { status: 303, description: 'On to the app, the account page or the second step' },
      handle: async (c) => {
        const service = enabled(c);
        const kit = kitOf(c);
        try {
          return finishSignIn(c, kit, await service.consumeLink(c.var.form.get('token') ?? '', c.var.client));
        } catch (error) {
          if (isSignetError(error, 'invalid_account_token') || isSignetError(error, 'invalid_code')) return linkInvalid(kit);
          if (isSignetError(error, 'email_not_verified')) return linkInvalid(kit);
          throw error;
        }
      },
    }),
  ];
}

function requestPage(kit: PageKit, state: { email?: string; error?: string; status?: number }): Response {
  const { t } = kit;
  return page(kit, {
    title: t.emailSignin.title,
    status: state.status,
    body: html`<p class="lead">${t.emailSignin.lead}</p>
<form method="post" action="${kit.to('sign-in/email')}" novalidate>
${formFields(kit)}
${field({ name: 'email', label: t.fields.email, type: 'email', autocomplete: 'email', value: state.email, error: state.error, required: true, maxlength: 254, autofocus: true }, t)}
<button type="submit">${t.emailSignin.send}</button>
</form>
<div class="links"><a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${t.links.backToSignIn}</a></div>`,
  });
}

function codePage(kit: PageKit, state: { email: string; error?: string; status?: number }): Response {
  const { t } = kit;
  return page(kit, {
    title: t.emailSignin.codeTitle,
    status: state.status,
    body: html`<p class="lead">${t.emailSignin.codeLead}</p>
${alert(state.error && state.status === 401 ? state.error : undefined)}
<form method="post" action="${kit.to('sign-in/email/code')}" novalidate>
${formFields(kit)}<input type="hidden" name="email" value="${state.email}">
${field({ name: 'code', label: t.emailSignin.code, hint: t.emailSignin.codeHint, autocomplete: 'one-time-code', inputmode: 'numeric', pattern: '[0-9]{6}', error: state.error, required: true, maxlength: 6, autofocus: true }, t)}
<button type="submit">${t.buttons.signIn}</button>
</form>
<div class="links"><a href="${kit.to('sign-in/email', { return_to: kit.returnTo })}">${t.emailSignin.again}</a></div>`,
  });
}

function linkInvalid(kit: PageKit): Response {
  return page(kit, {
    title: kit.t.emailSignin.linkTitle,
    status: 400,
    body: html`${alert(kit.t.emailSignin.linkInvalid)}
<div class="links"><a href="${kit.to('sign-in/email', { return_to: kit.returnTo })}">${kit.t.emailSignin.again}</a></div>`,
  });
}
