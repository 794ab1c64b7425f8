import { PASSWORD_MAX_LENGTH } from '../../core/passwords.js';
import { SignetError, isSignetError } from '../../errors.js';
import type { AppContext } from '../context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { authenticationResponse, currentPassword, passkeyName, registrationResponse } from '../schemas.js';
import type { AccountState } from './account.js';
import { accountPage } from './account.js';
import { finishSignIn, signInPage } from './auth.js';
import { html } from './html.js';
import type { PageAssets, PageKit } from './layout.js';
import { alert, field, formFields, page, pageKit, seeOther } from './layout.js';
import { passkeyRefusal, postedCredential } from './passkey-parts.js';

/** A credential ID in a path: base64url, at most 1023 bytes; anything else names no passkey. */
const CREDENTIAL_ID = /^[A-Za-z0-9_-]{1,1364}$/;

/**
 * The passkey forms the page script posts, and the account page's: sign in
 * (the assertion it got), add (the registration it ran), rename, remove.
 * Adding and removing need a recent sign-in or the password, as over the JSON
 * API: the same core calls decide. Absent when the pages offer no passkeys.
 */
export function passkeyPages(prefix: string, assets: PageAssets, minPasswordLength: number): Route[] {
  if (!assets.passkeys) return [];
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  const post = { tag: 'Pages', kind: 'page' as const, auth: 'page' as const, method: 'POST' as const, csrf: 'form' as const };
  const back = (c: AppContext, kit: PageKit, state: AccountState) => accountPage(c, kit, minPasswordLength, state);
  return [
    route({
      method: 'POST',
      path: `${prefix}sign-in/passkey`,
      tag: 'Pages',
      summary: 'Sign in with a passkey: the assertion the page script got from the browser',
      kind: 'page',
      auth: 'none',
      csrf: 'form',
      limit: 'passkey.ip',
      success: { status: 303, description: 'On to the app or the account page' },
      handle: async (c) => {
        const kit = kitOf(c);
        const response = postedCredential(c.var.form, authenticationResponse);
        if (!response) return signInPage(kit, { alert: kit.t.passkeys.failed, passkeyRefused: true, status: 400 });
        try {
          return finishSignIn(c, kit, await c.var.services.accounts.signInWithPasskey(response, c.var.client));
        } catch (error) {
          if (isSignetError(error, 'email_not_verified')) return signInPage(kit, { alert: kit.t.errors.emailNotVerified, passkeyRefused: true, status: 403 });
          const refused = passkeyRefusal(kit.t, error);
          if (!refused) throw error;
          const unknownPasskey = isSignetError(error, 'unknown_passkey') ? response.id : undefined;
          return signInPage(kit, { alert: refused.message, passkeyRefused: true, unknownPasskey, status: refused.status });
        }
      },
    }),
    route({
      ...post,
      path: `${prefix}account/passkeys`,
      summary: 'Add a passkey: the registration the page script got from the browser, and its name',
      limit: 'passkey.ip',
      success: { status: 303, description: 'Back to the account page' },
      handle: async (c) => {
        const kit = kitOf(c);
        const { t } = kit;
        const response = postedCredential(c.var.form, registrationResponse);
        const name = passkeyName.safeParse(c.var.form.get('passkeyName') ?? '');
        if (!response || !name.success) return back(c, kit, { alerts: { passkeys: t.passkeys.addFailed }, status: 400 });
        try {
          await c.var.services.passkeys.register(c.var.auth.user, response, name.data);
        } catch (error) {
          const refused = passkeyRefusal(t, error);
          if (!refused) throw error;
          return back(c, kit, {
            alerts: { passkeys: isSignetError(error, 'too_many_passkeys') ? refused.message : t.passkeys.addFailed },
            status: refused.status,
          });
        }
        return seeOther(kit.to('account', { notice: 'passkey-added' }));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/passkeys/:id/rename`,
      summary: 'Rename a passkey (an empty name clears it)',
      success: { status: 303, description: 'Back to the account page' },
      handle: async (c) => {
        const kit = kitOf(c);
        const name = passkeyName.safeParse(c.var.form.get('name') ?? '');
        if (!name.success) return back(c, kit, { alerts: { passkeys: kit.t.errors.nameTooLong }, status: 400 });
        await c.var.services.passkeys.rename(c.var.auth.user.id, idOf(c), name.data);
        return seeOther(kit.to('account', { notice: 'passkey-renamed' }));
      },
    }),
    route({
      ...post,
      path: `${prefix}account/passkeys/:id/remove`,
      summary: 'Remove a passkey; after an older sign-in, a page asks for the password first',
      success: { status: 303, description: 'Back to the account page, or the password page (200)' },
      handle: async (c) => {
        const kit = kitOf(c);
        const id = idOf(c);
        const { passkeys } = c.var.services;
        const raw = c.var.form.get('password');
        const password = raw === null ? undefined : currentPassword.safeParse(raw);
        if (password && !password.success) return confirmRemoval(c, kit, id, { error: kit.t.errors.required, status: 400 });
        try {
          await passkeys.remove(c.var.auth, id, { password: password?.data }, c.var.client);
        } catch (error) {
          if (isSignetError(error, 'reauthentication_required')) return confirmRemoval(c, kit, id, {});
          if (isSignetError(error, 'invalid_credentials')) return confirmRemoval(c, kit, id, { error: kit.t.errors.wrongPassword, status: 401 });
          if (isSignetError(error, 'rate_limited')) return confirmRemoval(c, kit, id, { alert: kit.t.errors.rateLimited, status: 429 });
          if (isSignetError(error, 'unavailable')) return confirmRemoval(c, kit, id, { alert: kit.t.errors.unavailable, status: 503 });
          throw error;
        }
        return seeOther(kit.to('account', { notice: 'passkey-removed' }));
      },
    }),
  ];
}

/** The passkey id of the path; `not_found` (an HTML 404) for anything that cannot be one. */
function idOf(c: AppContext): string {
  const id = c.req.param('id') ?? '';
  if (!CREDENTIAL_ID.test(id)) throw new SignetError('not_found');
  return id;
}

/** Asks for the password before removing a passkey, after a sign-in more than 10 minutes ago. */
async function confirmRemoval(c: AppContext, kit: PageKit, id: string, state: { error?: string; alert?: string; status?: number }): Promise<Response> {
  const { t } = kit;
  const passkey = (await c.var.services.passkeys.list(c.var.auth.user.id)).find((p) => p.id === id);
  if (!passkey) throw new SignetError('not_found');
  const label = passkey.name ?? t.passkeys.unnamed;
  return page(kit, {
    title: t.passkeys.removeTitle,
    status: state.status,
    signedIn: true,
    body: html`<p class="lead">${t.passkeys.removeLead(label)}</p>
${alert(state.alert)}
<form method="post" action="${kit.to(`account/passkeys/${id}/remove`)}" novalidate>
${formFields(kit)}
<input type="hidden" name="username" value="${c.var.auth.user.username ?? c.var.auth.user.email}" autocomplete="username">
${field({ name: 'password', label: t.fields.password, type: 'password', autocomplete: 'current-password', error: state.error, required: true, maxlength: PASSWORD_MAX_LENGTH, autofocus: true }, t)}
<button type="submit" class="danger">${t.passkeys.removeLabel(label)}</button>
</form>
<div class="links"><a href="${kit.to('account')}">${t.buttons.cancel}</a></div>`,
  });
}
