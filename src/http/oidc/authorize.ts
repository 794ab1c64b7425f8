import type { AuthorizeStep, Browser } from '../../core/oidc/authorize.js';
import type { AppContext } from '../context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { pageSession } from '../pages/dispatch.js';
import { html } from '../pages/html.js';
import type { PageAssets, PageKit } from '../pages/layout.js';
import { page, pageKit, seeOther } from '../pages/layout.js';
import { OIDC_PATHS, resumePath } from './paths.js';

const REQUEST_ID = /^[A-Za-z0-9_-]{43}$/;

/**
 * The authorization endpoint (OpenID Connect Core §3.1.2) and the consent
 * page. The endpoint takes GET and POST (Core §3.1.2.1); the login step is the
 * hosted sign-in page with all its defences, which sends the browser back to
 * the stored request when done. What to do is core's decision (Authorizer);
 * these rows turn it into a redirect or a page.
 */
export function authorizeRoutes(prefix: string, assets: PageAssets): Route[] {
  const base = { tag: 'OpenID Connect', kind: 'page' as const, auth: 'none' as const };
  return [
    route({
      ...base,
      method: 'GET',
      path: OIDC_PATHS.authorize,
      summary: 'Authorization endpoint (authorization code flow with PKCE)',
      limit: 'authorize.ip',
      success: { status: 302, description: 'To the client with a code or an error, or to the sign-in or consent page' },
      handle: async (c) => respond(c, assets, await c.var.services.oidc.authorizer.authorize(new URL(c.req.url).searchParams, await browserOf(c)), 302),
    }),
    route({
      ...base,
      method: 'POST',
      path: OIDC_PATHS.authorize,
      summary: 'Authorization endpoint, form post (the client page posts it cross-site)',
      csrf: 'cross-site',
      limit: 'authorize.ip',
      success: { status: 303, description: 'To the same flow as GET' },
      // A cross-site POST carries no SameSite=Lax cookie: the request is judged without a session and, when it
      // needs one, stored; the GET that resumes it sees the session.
      handle: async (c) => respond(c, assets, await c.var.services.oidc.authorizer.authorize(c.var.form, undefined, { defer: true }), 303),
    }),
    route({
      ...base,
      method: 'GET',
      path: OIDC_PATHS.resume,
      summary: 'Back from the sign-in page to a stored authorization request',
      success: { status: 302, description: 'To the client, or the consent page' },
      handle: async (c) => respond(c, assets, await c.var.services.oidc.authorizer.resume(c.req.query('id') ?? '', await browserOf(c)), 302),
    }),
    route({
      ...base,
      method: 'GET',
      path: `${prefix}consent`,
      summary: 'Consent page: what a third-party client asks for',
      auth: 'page',
      success: { status: 200, description: 'HTML' },
      handle: async (c) => {
        const requestId = c.req.query('request') ?? '';
        if (!REQUEST_ID.test(requestId)) return respond(c, assets, expired(), 302);
        return respond(c, assets, await c.var.services.oidc.authorizer.resume(requestId, c.var.auth), 302);
      },
    }),
    route({
      ...base,
      method: 'POST',
      path: `${prefix}consent`,
      summary: 'Allow or deny a client',
      auth: 'page',
      csrf: 'form',
      success: { status: 303, description: 'To the client with a code, or with access_denied' },
      handle: async (c) => {
        const requestId = c.var.form.get('request') ?? '';
        if (!REQUEST_ID.test(requestId)) return respond(c, assets, expired(), 303);
        const approved = c.var.form.get('decision') === 'allow';
        return respond(c, assets, await c.var.services.oidc.authorizer.consent(requestId, c.var.auth, approved), 303);
      },
    }),
  ];
}

/** The browser's Signet session, if it has one. */
async function browserOf(c: AppContext): Promise<Browser | undefined> {
  const auth = await pageSession(c);
  return auth && { user: auth.user, session: auth.session };
}

function expired(): AuthorizeStep {
  return { kind: 'refuse', description: 'the sign-in request has expired; start again from the application' };
}

function respond(c: AppContext, assets: PageAssets, step: AuthorizeStep, redirectStatus: 302 | 303): Response {
  const kit = pageKit(c, assets, c.get('form'));
  switch (step.kind) {
    case 'redirect':
      return new Response(null, { status: redirectStatus, headers: { location: step.location, 'cache-control': 'no-store' } });
    case 'resume':
      return seeOther(resumePath(step.requestId));
    case 'sign-in':
      return seeOther(kit.to('sign-in', { return_to: resumePath(step.requestId), login_hint: step.loginHint, prompt: step.fresh ? 'login' : undefined }));
    case 'consent':
      if (c.req.path === `${kit.config.pagesPrefix}consent` && c.req.method === 'GET') return consentPage(c, kit, step);
      return seeOther(kit.to('consent', { request: step.requestId }));
    case 'refuse':
      // RFC 6749 §4.1.2.1: an untrusted client or redirect URI is told to the user, never redirected to.
      return page(kit, {
        title: kit.t.oidc.refusedTitle,
        status: 400,
        body: html`<p>${kit.t.oidc.refusedLead}</p>
<p><code>${step.description}</code></p>`,
      });
  }
}

function consentPage(c: AppContext, kit: PageKit, step: Extract<AuthorizeStep, { kind: 'consent' }>): Response {
  const { t } = kit;
  const { user } = c.var.auth;
  const switchUser = kit.to('sign-in', { return_to: resumePath(step.requestId), prompt: 'login' });
  return page(kit, {
    title: t.oidc.consentTitle(step.client.name),
    signedIn: true,
    // The answer redirects to the client: this page's form may lead there (CSP form-action).
    formTargets: [step.redirectUri],
    body: html`<p class="lead">${t.oidc.consentLead(step.client.name)}</p>
<ul class="scopes">
${step.scopes.map((scope) => html`<li>${t.oidc.scopes[scope as keyof typeof t.oidc.scopes] ?? scope}</li>`)}
</ul>
<p>${t.oidc.signedInAs} <strong>${user.email}</strong>. <a href="${switchUser}">${t.oidc.notYou}</a></p>
<form method="post" action="${kit.to('consent')}">
<input type="hidden" name="csrf" value="${kit.csrf}"><input type="hidden" name="request" value="${step.requestId}">
<div class="actions">
<button type="submit" name="decision" value="allow">${t.oidc.allow}</button>
<button type="submit" name="decision" value="deny" class="secondary">${t.oidc.deny}</button>
</div>
</form>
<p class="hint">${t.oidc.revokeHint}</p>`,
  });
}
