import type { SignetConfig } from '../../config.js';
import type { Db } from '../../store/db.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../keys.js';
import type { SessionEnds } from '../session-ends.js';
import type { SessionService } from '../sessions.js';
import type { TokenService } from '../tokens.js';
import { Authorizer } from './authorize.js';
import { ClientRegistry } from './clients.js';
import { OidcGrants } from './grants.js';
import { IdTokens } from './id-tokens.js';
import { Logout } from './logout.js';

/** Signet as an OpenID Provider: the parts the routes, pages, CLI and admin API call. */
export interface Oidc {
  clients: ClientRegistry;
  authorizer: Authorizer;
  grants: OidcGrants;
  logout: Logout;
}

export interface OidcOptions {
  db: Db;
  clock: Clock;
  keyring: Keyring;
  tokens: TokenService;
  sessions: SessionService;
  ends: SessionEnds;
  config: Pick<SignetConfig, 'publicUrl' | 'audience' | 'accessTokenTtl' | 'sessionAbsoluteTtl' | 'jwtSecret'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
  fetch?: typeof fetch;
}

export function createOidc(options: OidcOptions): Oidc {
  const { db, clock, keyring, tokens, sessions, ends, config, onEvent } = options;
  const idTokens = new IdTokens({ keyring, config, clock });
  const clients = new ClientRegistry({ db, clock, config, ends, onEvent });
  return {
    clients,
    authorizer: new Authorizer({ db, clock, clients, idTokens, config, onEvent }),
    grants: new OidcGrants({ db, clock, sessions, tokens, idTokens, clients, config, onEvent }),
    logout: new Logout({ db, sessions, clients, idTokens, ends, onEvent, ...(options.fetch ? { fetch: options.fetch } : {}) }),
  };
}
