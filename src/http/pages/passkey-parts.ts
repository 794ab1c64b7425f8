import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { ZodType, z } from 'zod';
import { isSignetError } from '../../errors.js';
import type { Passkey } from '../../model.js';
import { PASSWORD_MAX_LENGTH } from '../../core/passwords.js';
import { html } from './html.js';
import type { Html } from './html.js';
import type { PageKit } from './layout.js';
import { field, formFields } from './layout.js';

/**
 * The passkey parts of the hosted pages: markup the pages' script
 * (passkeys.browser.js) enhances, and the reading of what it posts back.
 * Every control starts `hidden`; the script shows it only where WebAuthn works.
 */

/** The JSON routes the script fetches ceremony options from (always at the root, like every /auth/ route). */
const SIGN_IN_OPTIONS = '/auth/passkeys/signin/options';
const REGISTER_OPTIONS = '/auth/passkeys/register/options';

/** The alert the script fills in; shown at once when the server already has something to say. */
function passkeyAlert(message: string | undefined): Html {
  return message
    ? html`<div class="alert" role="alert" data-passkey-alert>${message}</div>`
    : html`<div class="alert" role="alert" data-passkey-alert hidden></div>`;
}

/** The messages the script may show, in the page's language. */
function messages(kit: PageKit, failed: string): Html {
  const { t } = kit;
  return html` data-msg-failed="${failed}" data-msg-cancelled="${t.passkeys.cancelled}" data-msg-rate="${t.errors.rateLimited}" data-msg-password="${t.errors.wrongPassword}" data-msg-exists="${t.passkeys.exists}" data-msg-too-many="${t.passkeys.tooMany}"`;
}

/**
 * "Sign in with a passkey" on the sign-in page, and the identifier field's
 * autofill (armed by the script unless a passkey was just refused, so an
 * authenticator that answers by itself cannot loop). After an `unknown_passkey`
 * the page asks the browser to forget that credential (WebAuthn L3 signals).
 */
export function signInWithPasskey(kit: PageKit, state: { refused: boolean; unknownPasskey?: string | undefined }): Html {
  const { t, config } = kit;
  const signal = state.unknownPasskey
    ? html`<span hidden data-unknown-passkey="${state.unknownPasskey}" data-rp-id="${config.webauthnRpId ?? ''}"></span>`
    : html``;
  return html`<div class="passkey-box" data-passkey="signin" data-options="${SIGN_IN_OPTIONS}" data-autofill="${state.refused ? 'off' : 'on'}"${messages(kit, t.passkeys.failed)} hidden>
<p class="or">${t.passkeys.or}</p>
<form method="post" action="${kit.to('sign-in/passkey')}">${formFields(kit)}<input type="hidden" name="credential" value=""><button type="button" class="secondary">${t.passkeys.signIn}</button></form>
${passkeyAlert(undefined)}
</div>${signal}`;
}

/** "Use a passkey" on the second-factor page: the options of this sign-in come with the page. */
export function secondFactorPasskey(
  kit: PageKit,
  request: PublicKeyCredentialRequestOptionsJSON,
  state: { error?: string | undefined; primary: boolean },
): Html {
  const { t } = kit;
  return html`<div class="passkey-box" data-passkey="mfa" data-request="${JSON.stringify(request)}"${messages(kit, t.passkeys.failed)}${state.error ? '' : html` hidden`}>
${state.primary ? '' : html`<p class="or">${t.passkeys.mfaOr}</p>`}
<form method="post" action="${kit.to('sign-in/mfa')}">${formFields(kit)}<input type="hidden" name="method" value="webauthn"><input type="hidden" name="credential" value=""><button type="button"${state.primary ? '' : html` class="secondary"`}>${t.passkeys.use}</button></form>
${passkeyAlert(state.error)}
</div>
${state.primary ? html`<noscript><p class="hint">${t.passkeys.needsScript}</p></noscript>` : ''}`;
}

/** The account page's passkeys: the list (rename, remove) and the form that adds one. */
export function passkeySection(kit: PageKit, passkeys: readonly Passkey[], state: { needsPassword: boolean; alert?: string | undefined }): Html {
  const { t } = kit;
  const when = new Intl.DateTimeFormat(t.lang, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
  const items = passkeys.map((p, i) => {
    const label = p.name ?? t.passkeys.unnamed;
    return html`<li>
<strong>${label}</strong>${p.backedUp ? html` <span class="tag">${t.passkeys.synced}</span>` : ''}
<dl>
<dt>${t.passkeys.added}</dt>
<dd>${when.format(p.createdAt)} UTC</dd>
<dt>${t.passkeys.lastUsed}</dt>
<dd>${p.lastUsedAt ? `${when.format(p.lastUsedAt)} UTC` : t.passkeys.neverUsed}</dd>
</dl>
<form method="post" action="${kit.to(`account/passkeys/${p.id}/rename`)}" novalidate>
${formFields(kit)}
${field({ name: 'name', id: `f-passkey-${i}-name`, label: t.passkeys.rename, value: p.name ?? '', maxlength: 64, autocomplete: 'off' }, t)}
<button type="submit" class="secondary" aria-label="${t.passkeys.renameLabel(label)}">${t.passkeys.renameButton}</button>
</form>
<form method="post" action="${kit.to(`account/passkeys/${p.id}/remove`)}">${formFields(kit)}<button type="submit" class="danger" aria-label="${t.passkeys.removeLabel(label)}">${t.passkeys.remove}</button></form>
</li>`;
  });
  const password = state.needsPassword
    ? field(
        {
          name: 'passkeyPassword',
          label: t.passkeys.password,
          type: 'password',
          hint: t.passkeys.passwordHint,
          autocomplete: 'current-password',
          required: true,
          maxlength: PASSWORD_MAX_LENGTH,
        },
        t,
      )
    : '';
  return html`<section aria-labelledby="passkeys-h" id="passkeys">
<h2 id="passkeys-h">${t.passkeys.section}</h2>
<p class="hint">${t.passkeys.lead}</p>
${state.alert ? html`<div class="alert" role="alert">${state.alert}</div>` : ''}
${passkeys.length > 0 ? html`<ul class="sessions passkey-list">${items}</ul>` : html`<p>${t.passkeys.none}</p>`}
<div class="passkey-box" data-passkey="register" data-options="${REGISTER_OPTIONS}" data-reauth="${kit.to('account', { error: 'passkey-reauth' })}#passkeys"${messages(kit, t.passkeys.addFailed)} hidden>
<form method="post" action="${kit.to('account/passkeys')}" novalidate>
${formFields(kit)}<input type="hidden" name="credential" value="">
${field({ name: 'passkeyName', label: t.passkeys.name, hint: t.passkeys.nameHint, maxlength: 64, autocomplete: 'off' }, t)}
${password}
<button type="submit">${t.passkeys.add}</button>
</form>
${passkeyAlert(undefined)}
</div>
<noscript><p class="hint">${t.passkeys.addNeedsScript}</p></noscript>
</section>`;
}

/**
 * What the script put in the form's `credential` field: JSON the schema
 * accepts, or undefined (the page then says the passkey did not work).
 */
export function postedCredential<S extends ZodType>(form: URLSearchParams, schema: S): z.output<S> | undefined {
  const raw = form.get('credential');
  if (!raw) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The message and status a page shows for a refused passkey; undefined for any other error (rethrown). */
export function passkeyRefusal(t: PageKit['t'], error: unknown): { message: string; status: number } | undefined {
  if (isSignetError(error, 'unknown_passkey')) return { message: t.passkeys.unknown, status: 401 };
  if (isSignetError(error, 'invalid_passkey')) return { message: t.passkeys.failed, status: 401 };
  if (isSignetError(error, 'challenge_expired')) return { message: t.passkeys.expired, status: 400 };
  if (isSignetError(error, 'too_many_passkeys')) return { message: t.passkeys.tooMany, status: 409 };
  return undefined;
}
