import type { SignetConfig } from '../../config.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import type { Asset } from './assets.js';
import { accountPages } from './account.js';
import { authPages } from './auth.js';
import type { PageAssets } from './layout.js';
import { passkeyPages } from './passkeys.js';
import { recoveryPages } from './recovery.js';
import { federationPages } from '../federation/pages.js';
import { emailSigninPages } from '../email-signin/pages.js';

/**
 * The hosted pages under PAGES_PREFIX: rows of the one route table, like the
 * JSON routes, with their limits and CSRF needs on each row.
 */
export function pageRoutes(config: Pick<SignetConfig, 'pagesPrefix' | 'passwordMinLength' | 'emailSignin'>, assets: PageAssets): Route[] {
  const prefix = config.pagesPrefix;
  return [
    ...authPages(prefix, assets, config.passwordMinLength),
    ...recoveryPages(prefix, assets, config.passwordMinLength),
    ...accountPages(prefix, assets, config.passwordMinLength),
    ...passkeyPages(prefix, assets, config.passwordMinLength),
    ...federationPages(prefix, assets),
    // Sign-in by email has pages only where EMAIL_SIGNIN turns it on.
    ...(config.emailSignin !== 'off' ? emailSigninPages(prefix, assets) : []),
    assetRoute(`${prefix}assets/signet.css`, assets.css),
    assetRoute(`${prefix}assets/signet.js`, assets.js),
    ...(assets.passkeys
      ? [assetRoute(`${prefix}assets/webauthn.js`, assets.passkeys.library), assetRoute(`${prefix}assets/passkeys.js`, assets.passkeys.script)]
      : []),
  ];
}

/** A static file of the pages; its URL carries its hash, so it can be cached for good. */
function assetRoute(path: string, asset: Asset): Route {
  return route({
    method: 'GET',
    path,
    tag: 'Pages',
    summary: 'Stylesheet or script of the hosted pages (the passkey scripts when the pages offer passkeys)',
    kind: 'asset',
    auth: 'none',
    success: { status: 200, description: asset.type },
    handle: (c) =>
      new Response(asset.body, {
        headers: {
          'content-type': asset.type,
          'cache-control': c.req.query('v') === asset.version ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
        },
      }),
  });
}
