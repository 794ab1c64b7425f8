import { getCookie } from 'hono/cookie';
import { isSignetError } from '../../errors.js';
import type { SignInResult } from '../../core/users.js';
import type { MfaProof } from '../../core/mfa.js';
import { PASSWORD_MAX_LENGTH } from '../../core/passwords.js';
import type { AppContext } from '../context.js';
import { clearSessionCookies, cookieNames, cookieSession, setCookie, setDeviceCookie } from '../cookies.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { authenticationResponse, currentPassword, email as emailSchema, name as nameSchema, newPassword, username as usernameSchema } from '../schemas.js';
import { pageSession } from './dispatch.js';
import { html } from './html.js';
import type { PageAssets, PageKit } from './layout.js';
import { alert, field, firstError, formFields, notice, page, pageKit, seeOther } from './layout.js';
import { providerButtons } from '../federation/pages.js';
import { passkeyRefusal, postedCredential, secondFactorPasskey, signInWithPasskey } from './passkey-parts.js';

/** How long the second step of a sign-in may take: the mfaToken's own lifetime. */
const MFA_COOKIE_TTL = 5 * 60;

/** Notices and errors a redirect may name in its query: fixed keys, never text from the URL. */
const SIGN_IN_NOTICES = { 'signed-out': 'signedOut' } as const;

/**
 * Sign-in (email or username), the second factor, sign-up and sign-out, as
 * hosted pages. They call the very services the JSON routes call, so every
 * sign-in defence applies (limits, device cookies, admission control, the
 * failure floor), and a successful sign-in starts a cookie session like
 * `X-Session-Mode: cookie` does.
 */
export function authPages(prefix: string, assets: PageAssets, minPasswordLength: number): Route[] {
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  return [
    route({
      method: 'GET',
      path: `${prefix}sign-in`,
      tag: 'Pages',
      summary: 'Sign-in page',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const kit = kitOf(c);
        // Already signed in: straight on, unless an application asked for a new sign-in (OpenID Connect prompt=login).
        if (c.req.query('prompt') !== 'login' && (await pageSession(c))) return seeOther(kit.returnTo ?? kit.to('account'));
        const key = c.req.query('notice') as keyof typeof SIGN_IN_NOTICES | undefined;
        const said = key && key in SIGN_IN_NOTICES ? kit.t.notices[SIGN_IN_NOTICES[key]] : undefined;
        // An application's login_hint fills the field in; it says nothing about whether the account exists.
        const hint = c.req.query('login_hint')?.slice(0, 254);
        return signInPage(kit, { identifier: hint, notice: said, alert: c.req.query('error') === 'mfa-expired' ? kit.t.errors.mfaExpired : undefined });
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}sign-in`,
      tag: 'Pages',
      summary: 'Sign in with email or username and password',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      success: { status: 303, description: 'On to the app, the account page or the second step' },
      handle: async (c) => {
        const kit = kitOf(c);
        const form = c.var.form;
        const identifier = (form.get('identifier') ?? '').trim();
        const password = currentPassword.safeParse(form.get('password') ?? '');
        const errors: Record<string, string | undefined> = {
          identifier: identifier ? undefined : kit.t.errors.required,
          password: password.success ? undefined : kit.t.errors.required,
        };
        if (errors.identifier || errors.password) return signInPage(kit, { identifier, errors, status: 400 });
        const login = identifier.includes('@')
          ? emailSchema.safeParse(identifier).success && { email: identifier, password: password.data! }
          : usernameSchema.safeParse(identifier).success && { username: identifier, password: password.data! };
        // A malformed identifier names no account: the same answer as a wrong password.
        if (!login) return signInPage(kit, { identifier, alert: kit.t.errors.invalidCredentials, status: 401 });
        try {
          return finishSignIn(c, kit, await c.var.services.accounts.signIn(login, c.var.client));
        } catch (error) {
          if (isSignetError(error, 'invalid_credentials')) return signInPage(kit, { identifier, alert: kit.t.errors.invalidCredentials, status: 401 });
          if (isSignetError(error, 'email_not_verified')) return signInPage(kit, { identifier, alert: kit.t.errors.emailNotVerified, status: 403 });
          throw error;
        }
      },
    }),
    route({
      method: 'GET',
      path: `${prefix}sign-in/mfa`,
      tag: 'Pages',
      summary: 'Second sign-in step: a TOTP code, a recovery code or a passkey',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const kit = kitOf(c);
        const mfaToken = readMfaCookie(c);
        if (!mfaToken) return seeOther(kit.to('sign-in', { return_to: kit.returnTo }));
        return mfaPage(c, kit, mfaToken, { recovery: c.req.query('method') === 'recovery' });
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}sign-in/mfa`,
      tag: 'Pages',
      summary: 'Complete a sign-in with a TOTP code, a recovery code or a passkey',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      limit: 'mfa.ip',
      success: { status: 303, description: 'On to the app or the account page' },
      handle: async (c) => {
        const kit = kitOf(c);
        const mfaToken = readMfaCookie(c);
        if (!mfaToken) return seeOther(kit.to('sign-in', { return_to: kit.returnTo, error: 'mfa-expired' }));
        const method = c.var.form.get('method');
        const recovery = method === 'recovery';
        let proof: MfaProof;
        if (method === 'webauthn') {
          const webauthn = postedCredential(c.var.form, authenticationResponse);
          if (!webauthn) return mfaPage(c, kit, mfaToken, { recovery, passkeyError: kit.t.passkeys.failed, status: 400 });
          proof = { webauthn };
        } else {
          const value = (c.var.form.get(recovery ? 'recoveryCode' : 'code') ?? '').replace(/\s+/g, '');
          if (!recovery && !/^\d{6}$/.test(value)) return mfaPage(c, kit, mfaToken, { recovery, error: kit.t.errors.codeFormat, status: 400 });
          if (recovery && (value.length === 0 || value.length > 64))
            return mfaPage(c, kit, mfaToken, { recovery, error: kit.t.errors.invalidRecoveryCode, status: 400 });
          proof = recovery ? { recoveryCode: value } : { code: value };
        }
        try {
          const result = await c.var.services.accounts.completeMfa(mfaToken, proof, c.var.client);
          clearMfaCookie(c);
          return finishSignIn(c, kit, result);
        } catch (error) {
          if (isSignetError(error, 'invalid_code')) {
            return mfaPage(c, kit, mfaToken, { recovery, error: recovery ? kit.t.errors.invalidRecoveryCode : kit.t.errors.invalidCode, status: 401 });
          }
          const refused = passkeyRefusal(kit.t, error);
          if (refused) return mfaPage(c, kit, mfaToken, { recovery, passkeyError: refused.message, status: refused.status });
          if (isSignetError(error, 'invalid_mfa_token')) {
            clearMfaCookie(c);
            return seeOther(kit.to('sign-in', { return_to: kit.returnTo, error: 'mfa-expired' }));
          }
          throw error;
        }
      },
    }),
    route({
      method: 'GET',
      path: `${prefix}sign-up`,
      tag: 'Pages',
      summary: 'Sign-up page',
      kind: 'page',
      auth: 'none',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const kit = kitOf(c);
        if (await pageSession(c)) return seeOther(kit.returnTo ?? kit.to('account'));
        return signUpPage(kit, minPasswordLength, {});
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}sign-up`,
      tag: 'Pages',
      summary: 'Create an account',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      limit: 'signup.ip',
      success: { status: 303, description: 'On to the app or the account page; a "check your email" page when verification is required' },
      handle: async (c) => {
        const kit = kitOf(c);
        const { t } = kit;
        const form = c.var.form;
        const values = { email: (form.get('email') ?? '').trim(), username: (form.get('username') ?? '').trim(), name: (form.get('name') ?? '').trim() };
        const email = emailSchema.safeParse(values.email);
        const username = values.username ? usernameSchema.safeParse(values.username) : undefined;
        const name = values.name ? nameSchema.safeParse(values.name) : undefined;
        const password = newPassword(minPasswordLength).safeParse(form.get('password') ?? '');
        const errors: Record<string, string | undefined> = {
          email: values.email === '' ? t.errors.required : email.success ? undefined : t.errors.emailInvalid,
          username: username && !username.success ? t.errors.usernameFormat : undefined,
          name: name && !name.success ? t.errors.nameTooLong : undefined,
          password: password.success ? undefined : t.errors.passwordLength(minPasswordLength, PASSWORD_MAX_LENGTH),
        };
        if (Object.values(errors).some(Boolean)) return signUpPage(kit, minPasswordLength, { values, errors, status: 400 });
        try {
          const { grant } = await c.var.services.accounts.signUp(
            { email: email.data!, password: password.data!, username: username?.data, name: name?.data || undefined },
            c.var.client,
          );
          // EMAIL_VERIFICATION=required: no session until the address is confirmed (and the same page for a taken address).
          if (!grant) return page(kit, { title: t.titles.verifySent, body: html`<p>${t.text.verifySent}</p>` });
          cookieSession(c, grant);
          return seeOther(kit.returnTo ?? kit.to('account'));
        } catch (error) {
          const field = isSignetError(error, 'email_taken')
            ? { email: t.errors.emailTaken }
            : isSignetError(error, 'username_taken')
              ? { username: t.errors.usernameTaken }
              : isSignetError(error, 'weak_password')
                ? { password: t.errors.passwordWeak }
                : undefined;
          if (!field) throw error;
          return signUpPage(kit, minPasswordLength, { values, errors: field, status: 400 });
        }
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}sign-out`,
      tag: 'Pages',
      summary: 'Sign out: end this session and clear its cookies',
      kind: 'page',
      auth: 'page',
      csrf: 'form',
      success: { status: 303, description: 'To the sign-in page' },
      handle: async (c) => {
        await c.var.services.sessions.end(c.var.auth.session.id, 'signout');
        clearSessionCookies(c);
        return seeOther(kitOf(c).to('sign-in', { notice: 'signed-out' }));
      },
    }),
  ];
}

/** A session starts as cookies (and a device cookie); a second factor first sends the browser to its page. */
export function finishSignIn(c: AppContext, kit: PageKit, result: SignInResult): Response {
  if (result.kind === 'mfa') {
    setCookie(c, mfaCookieName(c), result.mfaToken, { path: '/', httpOnly: true, secure: cookieNames(c).secure, sameSite: 'Strict', maxAge: MFA_COOKIE_TTL });
    return seeOther(kit.to('sign-in/mfa', { return_to: kit.returnTo }));
  }
  cookieSession(c, result.grant);
  setDeviceCookie(c, result.deviceCookie);
  return seeOther(kit.returnTo ?? kit.to('account'));
}

function mfaCookieName(c: AppContext): string {
  return cookieNames(c).secure ? '__Host-signet-mfa' : 'signet-mfa';
}

function readMfaCookie(c: AppContext): string | undefined {
  const value = getCookie(c, mfaCookieName(c));
  return value && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
}

function clearMfaCookie(c: AppContext): void {
  setCookie(c, mfaCookieName(c), '', { path: '/', httpOnly: true, secure: cookieNames(c).secure, sameSite: 'Strict', maxAge: 0 });
}

export interface SignInState {
  identifier?: string;
  errors?: Record<string, string | undefined>;
  alert?: string | undefined;
  notice?: string | undefined;
  /** A passkey was just refused (the alert says why): autofill is not armed again on this page. */
  passkeyRefused?: boolean;
  /** The credential the server does not know: the page asks the browser to forget it. */
  unknownPasskey?: string | undefined;
  status?: number;
}

export function signInPage(kit: PageKit, state: SignInState): Response {
  const { t, config } = kit;
  const errors = state.errors ?? {};
  const passkeys = kit.assets.passkeys !== undefined;
  const focus = firstError(errors, ['identifier', 'password']) ?? (state.alert || state.identifier ? 'password' : 'identifier');
  return page(kit, {
    title: t.titles.signIn,
    status: state.status,
    passkeys,
    body: html`<p class="lead">${t.text.signInLead(config.appName)}</p>
${notice(state.notice)}${alert(state.alert ?? (Object.values(errors).some(Boolean) ? t.errors.summary : undefined))}
<form method="post" action="${kit.to('sign-in')}" novalidate>
${formFields(kit)}
${field({ name: 'identifier', label: t.fields.identifier, autocomplete: passkeys ? 'username webauthn' : 'username', value: state.identifier, error: errors.identifier, required: true, maxlength: 254, autofocus: focus === 'identifier' }, t)}
${field({ name: 'password', label: t.fields.password, type: 'password', autocomplete: 'current-password', error: errors.password, required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: focus === 'password' }, t)}
<button type="submit">${t.buttons.signIn}</button>
</form>
${passkeys ? signInWithPasskey(kit, { refused: state.passkeyRefused ?? false, unknownPasskey: state.unknownPasskey }) : ''}
${providerButtons(kit, providersOf(kit))}
<div class="links">
${config.emailSignin !== 'off' ? html`<a href="${kit.to('sign-in/email', { return_to: kit.returnTo })}">${t.emailSignin.link}</a>` : ''}
<a href="${kit.to('forgot-password', { return_to: kit.returnTo })}">${t.links.forgot}</a>
<p>${t.text.noAccount} <a href="${kit.to('sign-up', { return_to: kit.returnTo })}">${t.links.signUp}</a></p>
</div>`,
  });
}

interface MfaState {
  recovery: boolean;
  /** A wrong code (shown at its field). */
  error?: string;
  /** A refused passkey (shown in the passkey box). */
  passkeyError?: string;
  status?: number;
}

/**
 * The second step, offering the methods the user has: a TOTP code (or a
 * recovery code) and, with a passkey, "Use a passkey" with request options
 * made for this sign-in. A sign-in that is no longer pending starts over.
 */
async function mfaPage(c: AppContext, kit: PageKit, mfaToken: string, state: MfaState): Promise<Response> {
  const { t } = kit;
  const { mfa } = c.var.services;
  const pending = await mfa.pending(mfaToken);
  if (!pending) {
    clearMfaCookie(c);
    return seeOther(kit.to('sign-in', { return_to: kit.returnTo, error: 'mfa-expired' }));
  }
  const totp = pending.methods.includes('totp');
  const passkey = kit.assets.passkeys !== undefined && pending.methods.includes('webauthn') ? await mfa.passkeyOptions(mfaToken) : undefined;
  const recovery = state.recovery && totp;
  const switchTo = kit.to('sign-in/mfa', { return_to: kit.returnTo, method: recovery ? undefined : 'recovery' });
  const input = recovery
    ? field(
        {
          name: 'recoveryCode',
          label: t.fields.recoveryCode,
          hint: t.fields.recoveryCodeHint,
          autocomplete: 'one-time-code',
          error: state.error,
          required: true,
          maxlength: 64,
          autofocus: true,
        },
        t,
      )
    : field(
        {
          name: 'code',
          label: t.fields.code,
          hint: t.fields.codeHint,
          autocomplete: 'one-time-code',
          inputmode: 'numeric',
          pattern: '[0-9]{6}',
          error: state.error,
          required: true,
          maxlength: 6,
          autofocus: true,
        },
        t,
      );
  const codeForm = totp
    ? html`<form method="post" action="${kit.to('sign-in/mfa')}" novalidate>
${formFields(kit)}<input type="hidden" name="method" value="${recovery ? 'recovery' : 'totp'}">
${input}
<button type="submit">${t.buttons.verify}</button>
</form>`
    : '';
  return page(kit, {
    title: t.titles.mfa,
    status: state.status,
    passkeys: passkey !== undefined,
    body: html`<p class="lead">${!totp ? t.passkeys.mfaLead : recovery ? t.text.recoveryLead : t.text.mfaLead}</p>
${codeForm}
${passkey ? secondFactorPasskey(kit, passkey, { error: state.passkeyError, primary: !totp }) : ''}
<div class="links">
${totp ? html`<a href="${switchTo}">${recovery ? t.links.useAuthenticator : t.links.useRecoveryCode}</a>` : ''}
<a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${t.links.backToSignIn}</a>
</div>`,
  });
}

interface SignUpState {
  values?: { email: string; username: string; name: string };
  errors?: Record<string, string | undefined>;
  status?: number;
}

function signUpPage(kit: PageKit, minPasswordLength: number, state: SignUpState): Response {
  const { t, config } = kit;
  const errors = state.errors ?? {};
  const values = state.values ?? { email: '', username: '', name: '' };
  const focus = firstError(errors, ['email', 'username', 'name', 'password']) ?? 'email';
  return page(kit, {
    title: t.titles.signUp,
    status: state.status,
    body: html`<p class="lead">${t.text.signUpLead(config.appName)}</p>
${alert(Object.values(errors).some(Boolean) ? t.errors.summary : undefined)}
<form method="post" action="${kit.to('sign-up')}" novalidate>
${formFields(kit)}
${field({ name: 'email', label: t.fields.email, type: 'email', autocomplete: 'email', value: values.email, error: errors.email, required: true, maxlength: 254, autofocus: focus === 'email' }, t)}
${field({ name: 'username', label: t.fields.username, hint: t.fields.usernameHint, autocomplete: 'username', value: values.username, error: errors.username, maxlength: 32, autofocus: focus === 'username' }, t)}
${field({ name: 'name', label: t.fields.name, hint: t.fields.nameHint, autocomplete: 'name', value: values.name, error: errors.name, maxlength: 100, autofocus: focus === 'name' }, t)}
${field(
  {
    name: 'password',
    label: t.fields.password,
    type: 'password',
    hint: t.fields.passwordHint(minPasswordLength, PASSWORD_MAX_LENGTH),
    autocomplete: 'new-password',
    error: errors.password,
    required: true,
    minlength: minPasswordLength,
    maxlength: PASSWORD_MAX_LENGTH,
    autofocus: focus === 'password',
  },
  t,
)}
<button type="submit">${t.buttons.signUp}</button>
</form>
${providerButtons(kit, providersOf(kit))}
<div class="links">
<p>${t.text.haveAccount} <a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${t.links.signIn}</a></p>
</div>`,
  });
}

function providersOf(kit: PageKit) {
  return kit.config.federationProviders.map((p) => ({ id: p.id, name: p.name, type: p.type }));
}
