import type { OAuthClient } from '../../model.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { html } from '../pages/html.js';
import type { Html } from '../pages/html.js';
import type { PageAssets, PageKit } from '../pages/layout.js';
import { formFields, pageKit, seeOther } from '../pages/layout.js';

export interface AppAccess {
  client: OAuthClient;
  scopes: string[];
  grantedAt: Date;
}

/** The account page's "Apps with access": every third-party client the user consented to, each removable. */
export function appsSection(kit: PageKit, apps: readonly AppAccess[]): Html {
  const { t } = kit;
  const when = new Intl.DateTimeFormat(t.lang, { dateStyle: 'medium', timeZone: 'UTC' });
  const scopeText = (scope: string) => t.oidc.scopes[scope as keyof typeof t.oidc.scopes] ?? scope;
  return html`<section aria-labelledby="apps-h">
<h2 id="apps-h">${t.oidc.apps}</h2>
<p class="hint">${apps.length > 0 ? t.oidc.appsLead : t.oidc.appsNone}</p>
${
  apps.length > 0
    ? html`<ul class="sessions">
${apps.map(
  (app) => html`<li>
<strong>${app.client.name}</strong>
<ul class="scopes">${app.scopes.map((s) => html`<li>${scopeText(s)}</li>`)}</ul>
<dl><dt>${t.oidc.allowedOn}</dt><dd>${when.format(app.grantedAt)}</dd></dl>
<form method="post" action="${kit.to(`account/apps/${app.client.id}/remove`)}">
${formFields(kit)}<button type="submit" class="secondary" aria-label="${t.oidc.remove}: ${app.client.name}">${t.oidc.remove}</button>
</form>
</li>`,
)}
</ul>`
    : ''
}
</section>`;
}

/** Removing an app's access: its consent and every grant it holds for this user end now. */
export function appRoutes(prefix: string, assets: PageAssets): Route[] {
  return [
    route({
      method: 'POST',
      path: `${prefix}account/apps/:clientId/remove`,
      tag: 'Pages',
      kind: 'page',
      auth: 'page',
      csrf: 'form',
      summary: "Remove an app's access to the account",
      success: { status: 303, description: 'Back to the account page' },
      handle: async (c) => {
        const kit = pageKit(c, assets, c.get('form'));
        await c.var.services.oidc.clients.revokeConsent(c.var.auth.user.id, c.req.param('clientId') ?? '');
        return seeOther(kit.to('account', { notice: 'app-removed' }));
      },
    }),
  ];
}
