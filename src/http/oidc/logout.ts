import type { LogoutRequest, LogoutStep } from '../../core/oidc/logout.js';
import type { AppContext } from '../context.js';
import { clearSessionCookies } from '../cookies.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { pageSession } from '../pages/dispatch.js';
import { html } from '../pages/html.js';
import type { PageAssets } from '../pages/layout.js';
import { page, pageKit } from '../pages/layout.js';
import { OIDC_PATHS } from './paths.js';

const CONFIRM_PATH = `${OIDC_PATHS.endSession}/confirm`;

/**
 * RP-Initiated Logout 1.0: the end-session endpoint (GET and POST, §2) and
 * the confirmation the user gives when the request does not prove itself
 * with an ID token of this very session. Ending the session ends the grants
 * made in it without offline access, and tells every client that registered
 * a back-channel URI (core/oidc/logout.ts).
 */
export function logoutRoutes(assets: PageAssets): Route[] {
  const base = { tag: 'OpenID Connect', kind: 'page' as const, auth: 'none' as const };
  const endSession = async (c: AppContext, params: URLSearchParams) => {
    const auth = await pageSession(c);
    const browser = auth && auth.session.clientId === null ? { userId: auth.user.id, sessionId: auth.session.id } : undefined;
    // The confirmation form then carries this session's CSRF token, which the confirm row checks.
    if (auth) c.set('auth', auth);
    const request = logoutRequest(params);
    const step = await c.var.services.oidc.logout.begin(request, browser);
    if (step.kind === 'done' && browser) clearSessionCookies(c);
    return respond(c, assets, step, request);
  };
  return [
    route({
      ...base,
      method: 'GET',
      path: OIDC_PATHS.endSession,
      summary: 'End-session endpoint (RP-Initiated Logout)',
      success: { status: 302, description: "To the client's post-logout URI, a confirmation page or a signed-out page" },
      handle: (c) => endSession(c, new URL(c.req.url).searchParams),
    }),
    route({
      ...base,
      method: 'POST',
      path: OIDC_PATHS.endSession,
      summary: 'End-session endpoint, form post',
      csrf: 'cross-site',
      success: { status: 303, description: 'As GET' },
      handle: (c) => endSession(c, c.var.form),
    }),
    route({
      ...base,
      method: 'POST',
      path: CONFIRM_PATH,
      summary: 'The user confirms signing out',
      auth: 'page',
      csrf: 'form',
      success: { status: 303, description: "To the client's post-logout URI or a signed-out page" },
      handle: async (c) => {
        const request = logoutRequest(c.var.form);
        const step = await c.var.services.oidc.logout.confirm(request, { userId: c.var.auth.user.id, sessionId: c.var.auth.session.id });
        clearSessionCookies(c);
        return respond(c, assets, step, request);
      },
    }),
  ];
}

function logoutRequest(params: URLSearchParams): LogoutRequest {
  const get = (name: string) => {
    const value = params.get(name);
    return value === null || value === '' || value.length > 4096 ? undefined : value;
  };
  return {
    idTokenHint: get('id_token_hint'),
    clientId: get('client_id'),
    postLogoutRedirectUri: get('post_logout_redirect_uri'),
    state: get('state'),
  };
}

function respond(c: AppContext, assets: PageAssets, step: LogoutStep, request: LogoutRequest): Response {
  const kit = pageKit(c, assets, c.get('form'));
  const { t, config } = kit;
  switch (step.kind) {
    case 'done':
      if (step.location !== undefined)
        return new Response(null, { status: c.req.method === 'GET' ? 302 : 303, headers: { location: step.location, 'cache-control': 'no-store' } });
      return page(kit, { title: t.oidc.signedOutTitle, body: html`<p>${t.oidc.signedOutLead}</p>` });
    case 'refuse':
      return page(kit, { title: t.oidc.refusedTitle, status: 400, body: html`<p>${t.oidc.refusedLead}</p><p><code>${step.description}</code></p>` });
    case 'confirm': {
      const hidden = (name: string, value: string | undefined) => (value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}">`);
      return page(kit, {
        title: t.oidc.logoutTitle,
        // Confirming redirects to the client's registered URI: this page's form may lead there.
        formTargets: step.location === undefined ? [] : [step.location],
        body: html`<p class="lead">${t.oidc.logoutLead(step.client?.name, config.appName)}</p>
<form method="post" action="${CONFIRM_PATH}">
<input type="hidden" name="csrf" value="${kit.csrf}">${hidden('client_id', step.client?.id)}${hidden('post_logout_redirect_uri', request.postLogoutRedirectUri)}${hidden('state', request.state)}
<div class="actions">
<button type="submit">${t.oidc.logoutConfirm}</button>
<a class="button secondary" href="${kit.to('account')}">${t.oidc.stay}</a>
</div>
</form>`,
      });
    }
  }
}
