import { getCookie } from 'hono/cookie';
import type { FederatedIdentity } from '../../store/federation.js';
import type { ProviderSummary } from '../../core/federation/service.js';
import { isSignetError } from '../../errors.js';
import type { AppContext } from '../context.js';
import { cookieNames, setCookie } from '../cookies.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { finishSignIn } from '../pages/auth.js';
import { pageSession } from '../pages/dispatch.js';
import { html } from '../pages/html.js';
import type { Html } from '../pages/html.js';
import type { PageAssets, PageKit } from '../pages/layout.js';
import { alert, formFields, page, pageKit, seeOther } from '../pages/layout.js';
import { safeReturnTo } from '../pages/return-to.js';

/** As long as the pending flow itself. */
const BINDING_TTL = 10 * 60;

/** Errors the account page may show after a link attempt: fixed keys, never text from the URL. */
export const LINK_ERRORS = ['identity-taken', 'link-failed', 'last-method'] as const;

/**
 * "Sign in with …": the start (sends the browser to the provider) and the
 * callback (the redirect URI registered at the provider), both browser
 * navigations answered as pages, and the account page's "Connected accounts".
 *
 * The flow is bound to the browser by a random value in an HttpOnly cookie
 * (`__Host-signet-fed`, SameSite=Lax so that it comes back on the provider's
 * top-level redirect); the server keeps only its hash, next to the state.
 */
export function federationPages(prefix: string, assets: PageAssets): Route[] {
  const kitOf = (c: AppContext) => pageKit(c, assets, c.get('form'));
  return [
    route({
      method: 'GET',
      path: '/auth/federation/:provider/start',
      tag: 'Federation',
      summary: 'Start signing in with a provider (`?return_to=`), or connecting one to the signed-in account (`?intent=link`)',
      kind: 'page',
      auth: 'none',
      limit: 'federation.ip',
      success: { status: 303, description: "To the provider's authorization endpoint" },
      handle: async (c) => {
        const kit = kitOf(c);
        const { federation } = c.var.services;
        const provider = c.req.param('provider') ?? '';
        const link = c.req.query('intent') === 'link';
        let userId: string | undefined;
        if (link) {
          const auth = await pageSession(c);
          if (!auth) return seeOther(kit.to('sign-in', { return_to: kit.to('account') }));
          userId = auth.user.id;
        }
        try {
          const { url, binding } = await federation.start(provider, { purpose: link ? 'link' : 'signin', userId, returnTo: kit.returnTo });
          setCookie(c, bindingCookie(c), binding, { path: '/', httpOnly: true, secure: cookieNames(c).secure, sameSite: 'Lax', maxAge: BINDING_TTL });
          return seeOther(url);
        } catch (error) {
          if (!isSignetError(error, 'federation_failed')) throw error;
          return failedPage(kit, providerName(c, provider), 502);
        }
      },
    }),
    route({
      method: 'GET',
      path: '/auth/federation/:provider/callback',
      tag: 'Federation',
      summary: 'The redirect URI to register at the provider: completes the sign-in (or the connection) and goes on to `return_to`',
      kind: 'page',
      auth: 'none',
      limit: 'federation.ip',
      success: { status: 303, description: 'On to the app, the account page or the second sign-in step' },
      handle: async (c) => {
        const kit = kitOf(c);
        const { federation, config } = c.var.services;
        const provider = c.req.param('provider') ?? '';
        const name = providerName(c, provider);
        const binding = getCookie(c, bindingCookie(c));
        // One flow per cookie: whatever happens now, the browser starts afresh next time.
        setCookie(c, bindingCookie(c), '', { path: '/', httpOnly: true, secure: cookieNames(c).secure, sameSite: 'Lax', maxAge: 0 });
        const signedIn = await pageSession(c);
        try {
          const outcome = await federation.finish(provider, new URL(c.req.url), binding, signedIn?.user.id, c.var.client);
          const returnTo = safeReturnTo(outcome.returnTo, config);
          if (outcome.kind === 'linked') return seeOther(returnTo ?? kit.to('account', { notice: 'identity-linked' }));
          return finishSignIn(c, { ...kit, returnTo }, outcome.result);
        } catch (error) {
          if (isSignetError(error, 'federation_link_required')) return messagePage(kit, kit.t.federation.linkRequired(name), 409);
          if (isSignetError(error, 'identity_taken')) return seeOther(kit.to('account', { error: 'identity-taken' }));
          if (isSignetError(error, 'email_not_verified')) return messagePage(kit, kit.t.federation.unverified, 403);
          if (isSignetError(error, 'federation_failed')) return failedPage(kit, name, 400);
          throw error;
        }
      },
    }),
    route({
      method: 'POST',
      path: `${prefix}account/connections/:id/remove`,
      tag: 'Pages',
      summary: 'Disconnect an account at another identity provider',
      kind: 'page',
      auth: 'page',
      csrf: 'form',
      success: { status: 303, description: 'Back to the account page' },
      handle: async (c) => {
        const kit = kitOf(c);
        try {
          await c.var.services.federation.unlink(c.var.auth.user.id, c.req.param('id') ?? '');
        } catch (error) {
          if (isSignetError(error, 'last_sign_in_method')) return seeOther(kit.to('account', { error: 'last-method' }));
          if (isSignetError(error, 'identity_not_found')) return seeOther(kit.to('account'));
          throw error;
        }
        return seeOther(kit.to('account', { notice: 'identity-unlinked' }));
      },
    }),
  ];
}

/** The buttons on the sign-in and sign-up pages: links (a navigation, not a form), carrying return_to. */
export function providerButtons(kit: PageKit, providers: readonly ProviderSummary[]): Html | string {
  if (providers.length === 0) return '';
  return html`<div class="federation">
<p class="or">${kit.t.federation.or}</p>
<ul class="providers">
${providers.map(
  (p) =>
    html`<li><a class="button secondary" href="/auth/federation/${p.id}/start${kit.returnTo ? `?return_to=${encodeURIComponent(kit.returnTo)}` : ''}">${kit.t.federation.signInWith(p.name)}</a></li>`,
)}
</ul>
</div>`;
}

/** The account page's "Connected accounts": each identity with a Disconnect form, and a Connect link per provider. */
export function connectionsSection(
  kit: PageKit,
  identities: readonly FederatedIdentity[],
  providers: readonly ProviderSummary[],
  error: string | undefined,
): Html | string {
  if (providers.length === 0 && identities.length === 0) return '';
  const { t } = kit;
  const when = new Intl.DateTimeFormat(t.lang, { dateStyle: 'medium', timeZone: 'UTC' });
  const nameOf = (id: string) => providers.find((p) => p.id === id)?.name ?? id;
  const message = error === 'last-method' ? t.federation.lastMethod : error === 'identity-taken' ? t.federation.taken(providers[0]?.name ?? '') : undefined;
  return html`<section aria-labelledby="connections-h">
<h2 id="connections-h">${t.federation.connected}</h2>
<p class="hint">${identities.length > 0 ? t.federation.connectedLead : t.federation.connectedNone}</p>
${alert(message)}
${
  identities.length > 0
    ? html`<ul class="sessions">
${identities.map(
  (i) => html`<li>
<strong>${nameOf(i.provider)}</strong>${i.email ? html` <span class="hint">${i.email}</span>` : ''}
<dl><dt>${t.federation.since}</dt><dd>${when.format(i.createdAt)}</dd></dl>
<form method="post" action="${kit.to(`account/connections/${i.id}/remove`)}">
${formFields(kit)}<button type="submit" class="secondary" aria-label="${t.federation.disconnect}: ${nameOf(i.provider)}">${t.federation.disconnect}</button>
</form>
</li>`,
)}
</ul>`
    : ''
}
<ul class="providers">
${providers.map((p) => html`<li><a class="button secondary" href="/auth/federation/${p.id}/start?intent=link">${t.federation.connect(p.name)}</a></li>`)}
</ul>
</section>`;
}

function bindingCookie(c: AppContext): string {
  return cookieNames(c).secure ? '__Host-signet-fed' : 'signet-fed';
}

function providerName(c: AppContext, id: string): string {
  return c.var.services.federation.providers().find((p) => p.id === id)?.name ?? id;
}

function failedPage(kit: PageKit, name: string, status: number): Response {
  return messagePage(kit, kit.t.federation.failed(name), status);
}

function messagePage(kit: PageKit, text: string, status: number): Response {
  return page(kit, {
    title: kit.t.federation.failedTitle,
    status,
    body: html`${alert(text)}
<div class="links"><a href="${kit.to('sign-in', { return_to: kit.returnTo })}">${kit.t.links.backToSignIn}</a></div>`,
  });
}
