import type { SignetConfig } from '../../config.js';
import type { Route } from '../route.js';
import type { PageAssets } from '../pages/layout.js';
import { appRoutes } from './apps.js';
import { authorizeRoutes } from './authorize.js';
import { logoutRoutes } from './logout.js';
import { userinfoRoutes } from './userinfo.js';

/**
 * The OpenID Provider's browser and resource endpoints. Absent with
 * JWT_SECRET: an HS256 ID token would be keyed by the client's secret
 * (OpenID Connect Core §10.1), and public clients have none.
 */
export function oidcRoutes(config: Pick<SignetConfig, 'pagesPrefix' | 'jwtSecret'>, assets: PageAssets): Route[] {
  if (config.jwtSecret !== undefined) return [];
  return [...authorizeRoutes(config.pagesPrefix, assets), ...userinfoRoutes(), ...logoutRoutes(assets), ...appRoutes(config.pagesPrefix, assets)];
}
