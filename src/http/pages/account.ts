import { UUID_PATTERN } from '../../core/crypto.js';
import type { TotpSetup } from '../../core/mfa.js';
import { PASSWORD_MAX_LENGTH } from '../../core/passwords.js';
import { SignetError, isSignetError } from '../../errors.js';
import type { Session } from '../../model.js';
import type { AppContext } from '../context.js';
import { clearSessionCookies } from '../cookies.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { currentPassword, name as nameSchema, newPassword, username as usernameSchema } from '../schemas.js';
import { html, trusted } from './html.js';
import type { Html } from './html.js';
import type { PageAssets, PageKit } from './layout.js';
import { alert, field, firstError, formFields, notice, page, pageKit, seeOther } from './layout.js';
import { appsSection } from '../oidc/apps.js';
import { passkeySection } from './passkey-parts.js';
import { connectionsSection } from '../federation/pages.js';

/** Notices a redirect back to the account page may name: fixed keys, never text from the URL. */
const NOTICES = {
  'profile-saved': 'profileSaved',
  'password-changed': 'passwordChanged',
  'session-ended': 'sessionEnded',
  'others-ended': 'othersEnded',
  '2fa-disabled': 'twoFactorDisabled',
  'app-removed': 'appRemoved',
  'passkey-added': 'passkeyAdded',
  'passkey-renamed': 'passkeyRenamed',
  'passkey-removed': 'passkeyRemoved',
  'identity-linked': 'identityLinked',
  'identity-unlinked': 'identityUnlinked',
} as const;

type Section = 'profile' | 'password' | 'twoFactor' | 'passkeys' | 'sessions';

export interface AccountState {
  errors?: Partial<Record<Section, Record<string, string | undefined>>>;
  alerts?: Partial<Record<Section, string>>;
  values?: { name?: string; username?: string };
  notice?: string | undefined;
  status?: number;
}

/**
 * The account page: profile, password, two-factor authentication and
 * sessions, each a plain form posting to its own row. Every action calls the
 * service its JSON route calls (re-authentication, its limits and admission
 * control included) and comes back here with a notice, or re-renders the page
 * with the error next to its field.
 */
export function accountPages(prefix: string, assets: PageAssets, minPasswordLength: number): Route[] {
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  const base = { tag: 'Pages', kind: 'page' as const, auth: 'page' as const };
  const post = { ...base, method: 'POST' as const, csrf: 'form' as const, success: { status: 303, description: 'Back to the account page' } };
  return [
    route({
      ...base,
      method: 'GET',
      path: `${prefix}account`,
      summary: 'Account page: profile, password, two-factor authentication, sessions',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const kit = kitOf(c);
        const key = c.req.query('notice') as keyof typeof NOTICES | undefined;
        return accountPage(c, kit, minPasswordLength, {
          notice: key && key in NOTICES ? kit.t.notices[NOTICES[key]] : undefined,
          // The page script came back here: the sign-in is too old to add a passkey without the password.
          alerts: c.req.query('error') === 'passkey-reauth' ? { passkeys: kit.t.passkeys.reauth } : {},
        });
      },
    }),
    route({
      ...post,
      path: `${prefix}account/profile`,
      summary: 'Save name and username',
      handle: async (c) => {
        const kit = kitOf(c);
        const { t } = kit;
        const values = { name: (c.var.form.get('name') ?? '').trim(), username: (c.var.form.get('username') ?? '').trim() };
        const name = values.name ? nameSchema.safeParse(values.name) : undefined;
        const username = values.username ? usernameSchema.safeParse(values.username) : undefined;
        const errors = {
          name: name && !name.success ? t.errors.nameTooLong : undefined,
          username: username && !username.success ? t.errors.usernameFormat : undefined,
        };
        if (errors.name || errors.username) return accountPage(c, kit, minPasswordLength, { values, errors: { profile: errors }, status: 400 });
        try {
          await c.var.services.lifecycle.updateProfile(c.var.auth.user, { name: name?.data ?? null, username: username?.data ?? null });
        } catch (error) {
          if (!isSignetError(error, 'username_taken')) throw error;
          return accountPage(c, kit, minPasswordLength, { values, errors: { profile: { username: t.errors.usernameTaken } }, status: 409 });
        }
        return seeOther(kit.to('account', { notice: 'profile-saved' }));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/password`,
      summary: 'Change the password (every other session ends)',
      handle: async (c) => {
        const kit = kitOf(c);
        const { t } = kit;
        const form = c.var.form;
        const current = currentPassword.safeParse(form.get('currentPassword') ?? '');
        const next = newPassword(minPasswordLength).safeParse(form.get('newPassword') ?? '');
        const confirm = newPassword(minPasswordLength).safeParse(form.get('confirmPassword') ?? '');
        const errors = {
          currentPassword: current.success ? undefined : t.errors.required,
          newPassword: next.success ? undefined : t.errors.passwordLength(minPasswordLength, PASSWORD_MAX_LENGTH),
          confirmPassword: next.success && confirm.data !== next.data ? t.errors.passwordsDiffer : undefined,
        };
        if (Object.values(errors).some(Boolean)) return accountPage(c, kit, minPasswordLength, { errors: { password: errors }, status: 400 });
        try {
          const { auth } = c.var;
          await c.var.services.lifecycle.changePassword(auth.user, { sessionId: auth.session.id, current: current.data!, next: next.data! }, c.var.client);
        } catch (error) {
          const failed = sectionError(t, error, 'currentPassword', 'newPassword');
          if (!failed) throw error;
          return accountPage(c, kit, minPasswordLength, { errors: { password: failed.fields }, alerts: { password: failed.alert }, status: failed.status });
        }
        return seeOther(kit.to('account', { notice: 'password-changed' }));
      },
    }),
    route({
      ...base,
      method: 'GET',
      path: `${prefix}account/two-factor`,
      summary: 'Two-factor setup in progress: the QR code and the code form',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const kit = kitOf(c);
        const pending = await c.var.services.mfa.pendingSetup(c.var.auth.user);
        return pending ? setupPage(kit, pending, {}) : seeOther(kit.to('account'));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/two-factor/setup`,
      summary: 'Start two-factor setup (needs the password)',
      handle: async (c) => {
        const kit = kitOf(c);
        const password = currentPassword.safeParse(c.var.form.get('password') ?? '');
        if (!password.success) return accountPage(c, kit, minPasswordLength, { errors: { twoFactor: { password: kit.t.errors.required } }, status: 400 });
        try {
          await c.var.services.mfa.setup(c.var.auth.user, password.data, c.var.client);
        } catch (error) {
          const failed = sectionError(kit.t, error, 'password');
          if (!failed) throw error;
          return accountPage(c, kit, minPasswordLength, { errors: { twoFactor: failed.fields }, alerts: { twoFactor: failed.alert }, status: failed.status });
        }
        return seeOther(kit.to('account/two-factor'));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/two-factor/enable`,
      summary: 'Confirm two-factor setup with a code; shows the recovery codes once',
      success: { status: 200, description: 'HTML: the recovery codes' },
      handle: async (c) => {
        const kit = kitOf(c);
        const { mfa } = c.var.services;
        const code = (c.var.form.get('code') ?? '').replace(/\s+/g, '');
        const pending = await mfa.pendingSetup(c.var.auth.user);
        if (!pending) return seeOther(kit.to('account'));
        if (!/^\d{6}$/.test(code)) return setupPage(kit, pending, { error: kit.t.errors.codeFormat, status: 400 });
        let codes: string[];
        try {
          codes = await mfa.enable(c.var.auth.user, code);
        } catch (error) {
          if (!isSignetError(error, 'invalid_code')) throw error;
          return setupPage(kit, pending, { error: kit.t.errors.invalidCode, status: 401 });
        }
        return recoveryCodesPage(kit, codes);
      },
    }),
    route({
      ...post,
      path: `${prefix}account/two-factor/disable`,
      summary: 'Turn two-factor authentication off (needs the password)',
      handle: async (c) => {
        const kit = kitOf(c);
        const password = currentPassword.safeParse(c.var.form.get('password') ?? '');
        if (!password.success) return accountPage(c, kit, minPasswordLength, { errors: { twoFactor: { password: kit.t.errors.required } }, status: 400 });
        try {
          await c.var.services.mfa.disable(c.var.auth.user, password.data, c.var.client);
        } catch (error) {
          const failed = sectionError(kit.t, error, 'password');
          if (!failed) throw error;
          return accountPage(c, kit, minPasswordLength, { errors: { twoFactor: failed.fields }, alerts: { twoFactor: failed.alert }, status: failed.status });
        }
        return seeOther(kit.to('account', { notice: '2fa-disabled' }));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/sessions/:id/end`,
      summary: 'End one of the user’s sessions',
      handle: async (c) => {
        const kit = kitOf(c);
        const { auth, services } = c.var;
        const id = c.req.param('id') ?? '';
        const owned = UUID_PATTERN.test(id) && (await services.sessions.list(auth.user.id)).some((s) => s.id === id);
        if (!owned) throw new SignetError('not_found');
        await services.sessions.end(id, 'revoked');
        if (id !== auth.session.id) return seeOther(kit.to('account', { notice: 'session-ended' }));
        // Ending the session of this very browser is signing out.
        clearSessionCookies(c);
        return seeOther(kit.to('sign-in', { notice: 'signed-out' }));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/sessions/end-others`,
      summary: 'End every session but this one',
      handle: async (c) => {
        const { auth, services } = c.var;
        await services.sessions.endAll(auth.user.id, 'signout_others', auth.session.id);
        return seeOther(kitOf(c).to('account', { notice: 'others-ended' }));
      },
    }),
  ];
}

/** Errors a re-authenticated action shows in its section (undefined: not one of them, rethrow). */
function sectionError(
  t: PageKit['t'],
  error: unknown,
  passwordField: string,
  newPasswordField?: string,
): { fields: Record<string, string>; alert?: string; status: number } | undefined {
  if (isSignetError(error, 'invalid_credentials')) return { fields: { [passwordField]: t.errors.wrongPassword }, status: 401 };
  if (newPasswordField && isSignetError(error, 'weak_password')) return { fields: { [newPasswordField]: t.errors.passwordWeak }, status: 400 };
  if (isSignetError(error, 'mfa_already_enabled')) return { fields: {}, alert: t.errors.alreadyEnabled, status: 409 };
  if (isSignetError(error, 'rate_limited')) return { fields: {}, alert: t.errors.rateLimited, status: 429 };
  if (isSignetError(error, 'unavailable')) return { fields: {}, alert: t.errors.unavailable, status: 503 };
  return undefined;
}

export async function accountPage(c: AppContext, kit: PageKit, minPasswordLength: number, state: AccountState): Promise<Response> {
  const { t } = kit;
  const { auth, services } = c.var;
  const user = auth.user;
  // Client grants are listed with their app below, not as devices.
  const sessions = (await services.sessions.list(user.id)).filter((s) => s.clientId === null);
  const apps = await services.oidc.clients.consentsOf(user.id);
  const identities = await services.federation.list(user.id);
  const errors = state.errors ?? {};
  const alerts = state.alerts ?? {};
  // Focus the first field in error, section by section.
  const focus =
    firstError(errors.profile ?? {}, ['name', 'username']) ??
    firstError(errors.password ?? {}, ['currentPassword', 'newPassword', 'confirmPassword']) ??
    firstError(errors.twoFactor ?? {}, ['password']);
  const at = (section: Section, name: string) => errors[section]?.[name];
  const values = state.values ?? { name: user.name ?? '', username: user.username ?? '' };

  const profile = html`<section aria-labelledby="profile-h">
<h2 id="profile-h">${t.text.profile}</h2>
<dl>
<dt>${t.fields.email}</dt>
<dd>${user.email} <span class="hint">${user.emailVerified ? t.text.emailVerified : t.text.emailUnverified}</span></dd>
</dl>
${alert(alerts.profile)}
<form method="post" action="${kit.to('account/profile')}" novalidate>
${formFields(kit)}
${field({ name: 'name', label: t.fields.name, hint: t.fields.nameHint, autocomplete: 'name', value: values.name, error: at('profile', 'name'), maxlength: 100, autofocus: focus === 'name' }, t)}
${field({ name: 'username', label: t.fields.username, hint: t.fields.usernameHint, autocomplete: 'username', value: values.username, error: at('profile', 'username'), maxlength: 32, autofocus: focus === 'username' }, t)}
<button type="submit">${t.buttons.save}</button>
</form>
</section>`;

  const password = html`<section aria-labelledby="password-h">
<h2 id="password-h">${t.text.security}</h2>
<p class="hint">${t.text.passwordChangeLead}</p>
${alert(alerts.password)}
<form method="post" action="${kit.to('account/password')}" novalidate>
${formFields(kit)}
<input type="hidden" name="username" value="${user.username ?? user.email}" autocomplete="username">
${field({ name: 'currentPassword', label: t.fields.currentPassword, type: 'password', autocomplete: 'current-password', error: at('password', 'currentPassword'), required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: focus === 'currentPassword' }, t)}
${field(
  {
    name: 'newPassword',
    label: t.fields.newPassword,
    type: 'password',
    hint: t.fields.passwordHint(minPasswordLength, PASSWORD_MAX_LENGTH),
    autocomplete: 'new-password',
    error: at('password', 'newPassword'),
    required: true,
    minlength: minPasswordLength,
    maxlength: PASSWORD_MAX_LENGTH,
    autofocus: focus === 'newPassword',
  },
  t,
)}
${field({ name: 'confirmPassword', label: t.fields.confirmPassword, type: 'password', autocomplete: 'new-password', error: at('password', 'confirmPassword'), required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: focus === 'confirmPassword' }, t)}
<button type="submit">${t.buttons.changePassword}</button>
</form>
</section>`;

  const twoFactorForm = (action: string, button: string, lead: string, danger: boolean) =>
    html`<p class="hint">${lead}</p>
${alert(alerts.twoFactor)}
<form method="post" action="${kit.to(action)}" novalidate>
${formFields(kit)}
${field({ name: 'password', label: t.fields.password, type: 'password', autocomplete: 'current-password', error: at('twoFactor', 'password'), required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: focus === 'password' }, t)}
<button type="submit" class="${danger ? 'danger' : ''}">${button}</button>
</form>`;
  // Listed even where the pages offer no passkeys: the two-factor text must say whether a passkey asks for the second step.
  const passkeyList = await services.passkeys.list(user.id);
  const twoFactor = html`<section aria-labelledby="mfa-h">
<h2 id="mfa-h">${t.text.twoFactor}</h2>
<p>${user.mfaEnabled ? t.text.twoFactorOn : passkeyList.length > 0 ? t.passkeys.twoFactorByPasskey : t.text.twoFactorOff}</p>
${user.mfaEnabled ? twoFactorForm('account/two-factor/disable', t.buttons.disableTwoFactor, t.text.twoFactorDisableLead, true) : twoFactorForm('account/two-factor/setup', t.buttons.setUpTwoFactor, t.text.twoFactorSetupPassword, false)}
</section>`;

  const sessionList = html`<section aria-labelledby="sessions-h">
<h2 id="sessions-h">${t.text.sessions}</h2>
<p class="hint">${t.text.sessionsLead}</p>
<ul class="sessions">
${sessions.map((s) => sessionItem(kit, s, s.id === auth.session.id))}
</ul>
${sessions.length > 1 ? html`<form method="post" action="${kit.to('account/sessions/end-others')}">${formFields(kit)}<button type="submit" class="secondary">${t.buttons.endOtherSessions}</button></form>` : ''}
</section>`;

  const passkeys = kit.assets.passkeys
    ? passkeySection(kit, passkeyList, { needsPassword: !services.passkeys.recentSignIn(auth.session), alert: alerts.passkeys })
    : '';

  return page(kit, {
    title: t.titles.account,
    status: state.status,
    wide: true,
    signedIn: true,
    passkeys: kit.assets.passkeys !== undefined,
    body: html`${notice(state.notice)}${profile}${password}${twoFactor}${passkeys}${connectionsSection(kit, identities, services.federation.providers(), c.req.query('error'))}${sessionList}${appsSection(kit, apps)}`,
  });
}

function sessionItem(kit: PageKit, session: Session, current: boolean): Html {
  const { t } = kit;
  const when = new Intl.DateTimeFormat(t.lang, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
  return html`<li>
<strong>${describeDevice(session.userAgent) ?? t.text.unknownDevice}</strong>
${current ? html`<span class="tag">${t.text.thisDevice}</span>` : ''}
<dl>
<dt>${t.text.started}</dt>
<dd>${when.format(session.createdAt)} UTC</dd>
<dt>${t.text.lastUsed}</dt>
<dd>${when.format(session.lastUsedAt)} UTC</dd>
${
  session.ip
    ? html`<dt>${t.text.address}</dt>
              <dd>${session.ip}</dd>`
    : ''
}
</dl>
<form method="post" action="${kit.to(`account/sessions/${session.id}/end`)}">
${formFields(kit)}<button
type="submit"
class="secondary"
aria-label="${t.buttons.endSession}: ${describeDevice(session.userAgent) ?? t.text.unknownDevice}"
>
${t.buttons.endSession}
</button>
</form>
</li>`;
}

/** "Firefox on Linux", from a User-Agent header; undefined when it says nothing recognisable. */
export function describeDevice(userAgent: string | null): string | undefined {
  if (!userAgent) return undefined;
  const browser = /Edg\//.test(userAgent)
    ? 'Edge'
    : /OPR\//.test(userAgent)
      ? 'Opera'
      : /Firefox\//.test(userAgent)
        ? 'Firefox'
        : /Chrome\/|Chromium\//.test(userAgent)
          ? 'Chrome'
          : /Safari\//.test(userAgent)
            ? 'Safari'
            : undefined;
  const os = /iPhone|iPad/.test(userAgent)
    ? 'iOS'
    : /Android/.test(userAgent)
      ? 'Android'
      : /Windows/.test(userAgent)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(userAgent)
          ? 'macOS'
          : /Linux|X11/.test(userAgent)
            ? 'Linux'
            : undefined;
  if (browser && os) return `${browser} · ${os}`;
  return browser ?? os ?? userAgent.slice(0, 60);
}

function setupPage(kit: PageKit, setup: TotpSetup, state: { error?: string; status?: number }): Response {
  const { t } = kit;
  return page(kit, {
    title: t.titles.twoFactorSetup,
    status: state.status,
    signedIn: true,
    body: html`<p class="lead">${t.text.twoFactorSetupLead}</p>
<div class="qr" role="img" aria-label="${t.a11y.qrCode}">${trusted(setup.qrSvg)}</div>
<p>${t.text.twoFactorSecret} <code class="secret">${setup.secret.replace(/(.{4})/g, '$1 ').trim()}</code></p>
<form method="post" action="${kit.to('account/two-factor/enable')}" novalidate>
${formFields(kit)}
${field({ name: 'code', label: t.fields.code, hint: t.fields.codeHint, autocomplete: 'one-time-code', inputmode: 'numeric', pattern: '[0-9]{6}', error: state.error, required: true, maxlength: 6, autofocus: true }, t)}
<button type="submit">${t.buttons.enableTwoFactor}</button>
</form>
<div class="links"><a href="${kit.to('account')}">${t.buttons.cancel}</a></div>`,
  });
}

function recoveryCodesPage(kit: PageKit, codes: string[]): Response {
  const { t } = kit;
  return page(kit, {
    title: t.titles.recoveryCodes,
    signedIn: true,
    body: html`<p class="lead">${t.text.recoveryLeadOnce}</p>
<ul class="codes" id="recovery-codes">
${codes.map((code) => html`<li>${code}</li>`)}
</ul>
<p><button type="button" class="secondary" data-copy="recovery-codes" data-done="${t.buttons.copied}" hidden>${t.buttons.copyCodes}</button></p>
<a class="button" href="${kit.to('account')}">${t.links.toAccount}</a>`,
  });
}
