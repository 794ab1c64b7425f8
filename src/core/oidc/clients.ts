import { randomBytes } from 'node:crypto';
import type { SignetConfig } from '../../config.js';
import { SignetError } from '../../errors.js';
import type { FieldError } from '../../errors.js';
import type { OAuthClient, OAuthClientRecord } from '../../model.js';
import type { Db } from '../../store/db.js';
import { oidcClients, oidcConsents, oidcGrants } from '../../store/oidc.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual, randomToken, sha256 } from '../crypto.js';
import type { SessionEnds } from '../session-ends.js';
import { OAuthError } from './errors.js';

/** Scopes Signet understands (OpenID Connect Core §5.4, §11). */
export const SUPPORTED_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'password'] as const;
export const AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post'] as const;

const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const MAX_URIS = 10;
const MAX_URI_LENGTH = 2000;
/** RFC 8252 §7.1: a native app's private-use scheme is a reversed domain name (com.example.app:/callback). */
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** What the operator gives to register a client (CLI, admin API or the clients file). */
export interface ClientInput {
  /** Generated when absent. */
  id?: string | undefined;
  name: string;
  /** `public`: PKCE and no secret (single-page and native apps); `confidential`: a server that keeps a secret. */
  type: 'public' | 'confidential';
  /** How a confidential client sends its secret; default `client_secret_basic`. */
  authMethod?: 'client_secret_basic' | 'client_secret_post' | undefined;
  redirectUris: string[];
  postLogoutRedirectUris?: string[] | undefined;
  backchannelLogoutUri?: string | null | undefined;
  firstParty?: boolean | undefined;
  /** Default: openid, profile, email. */
  scopes?: string[] | undefined;
  /** Default: authorization_code, refresh_token. */
  grantTypes?: string[] | undefined;
  resources?: string[] | undefined;
  accessTokenTtl?: number | null | undefined;
  refreshTokenTtl?: number | null | undefined;
}

export type ClientChanges = Partial<Omit<ClientInput, 'id' | 'type' | 'authMethod'>>;

/** How a request to the token endpoint identified its client (RFC 6749 §2.3, OpenID Connect Core §9). */
export interface ClientCredentials {
  /** From `Authorization: Basic`, already form-decoded. */
  basic?: { id: string; secret: string } | undefined;
  /** `client_id` in the body. */
  bodyId?: string | undefined;
  /** `client_secret` in the body. */
  bodySecret?: string | undefined;
}

export interface ClientRegistryOptions {
  db: Db;
  clock: Clock;
  config: Pick<SignetConfig, 'accessTokenTtl' | 'sessionAbsoluteTtl' | 'jwtSecret'>;
  ends: SessionEnds;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * The relying parties. A confidential client's secret is made here (256
 * random bits), shown once and stored as its SHA-256: a machine-made secret
 * that long needs no slow hash, which keeps the token endpoint off the hash
 * pool. Registration is for operators only, so loopback and private-network
 * URIs are allowed; every URI is checked for shape here.
 */
export class ClientRegistry {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #config: ClientRegistryOptions['config'];
  readonly #ends: SessionEnds;
  readonly #onEvent: ClientRegistryOptions['onEvent'];
  #origins: { at: number; set: Promise<Set<string>> } | undefined;

  constructor(options: ClientRegistryOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#config = options.config;
    this.#ends = options.ends;
    this.#onEvent = options.onEvent;
  }

  /** Registers a client; a confidential one gets its secret, here and never again. */
  async register(input: ClientInput): Promise<{ client: OAuthClient; secret?: string }> {
    if (this.#config.jwtSecret !== undefined) {
      // OpenID Connect Core §10.1: an HS256 ID token would be keyed by the client's secret, and public clients have none.
      throw new SignetError('validation_failed', {
        message: 'OpenID Connect clients need asymmetric signing keys: unset JWT_SECRET',
        details: [{ field: 'id', message: 'JWT_SECRET is set' }],
      });
    }
    const errors: FieldError[] = [];
    const id = input.id ?? `c_${randomBytes(8).toString('hex')}`;
    if (!CLIENT_ID.test(id)) errors.push({ field: 'id', message: 'must be 3-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit' });
    if (input.type !== 'public' && input.type !== 'confidential') errors.push({ field: 'type', message: 'must be public or confidential' });
    const authMethod = input.type === 'public' ? 'none' : (input.authMethod ?? 'client_secret_basic');
    if (!AUTH_METHODS.includes(authMethod)) errors.push({ field: 'authMethod', message: 'must be client_secret_basic or client_secret_post' });
    const now = new Date(this.#clock.now());
    const client: OAuthClientRecord = {
      id,
      name: '',
      authMethod,
      secretHash: null,
      redirectUris: [],
      postLogoutRedirectUris: [],
      backchannelLogoutUri: null,
      firstParty: false,
      scopes: ['openid', 'profile', 'email'],
      grantTypes: ['authorization_code', 'refresh_token'],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: now,
      updatedAt: now,
      disabledAt: null,
    };
    this.#apply(client, { ...input, redirectUris: input.redirectUris ?? [] }, errors);
    if (errors.length > 0) throw new SignetError('validation_failed', { details: errors });
    const secret = authMethod === 'none' ? undefined : randomToken();
    if (secret !== undefined) client.secretHash = sha256(secret);
    if (!(await oidcClients.insert(this.#db, client))) {
      throw new SignetError('validation_failed', { details: [{ field: 'id', message: 'a client with this id exists' }] });
    }
    this.#origins = undefined;
    this.#onEvent('client.registered', { clientId: id, type: input.type, firstParty: client.firstParty });
    return secret === undefined ? { client: publicView(client) } : { client: publicView(client), secret };
  }

  async update(id: string, changes: ClientChanges): Promise<OAuthClient> {
    const client = await this.#find(id);
    const errors: FieldError[] = [];
    this.#apply(client, changes, errors);
    if (errors.length > 0) throw new SignetError('validation_failed', { details: errors });
    client.updatedAt = new Date(this.#clock.now());
    await oidcClients.update(this.#db, client);
    this.#origins = undefined;
    this.#onEvent('client.updated', { clientId: id, fields: Object.keys(changes) });
    return publicView(client);
  }

  /** A new secret for a confidential client; the old one stops working at once. */
  async rotateSecret(id: string): Promise<string> {
    const client = await this.#find(id);
    if (client.authMethod === 'none') throw new SignetError('validation_failed', { details: [{ field: 'id', message: 'a public client has no secret' }] });
    const secret = randomToken();
    client.secretHash = sha256(secret);
    client.updatedAt = new Date(this.#clock.now());
    await oidcClients.update(this.#db, client);
    this.#onEvent('client.secret_rotated', { clientId: id });
    return secret;
  }

  /** Disabling refuses the client everywhere and ends its grants; enabling lets it start new ones. */
  async setDisabled(id: string, disabled: boolean): Promise<OAuthClient> {
    const client = await this.#find(id);
    const now = this.#clock.now();
    client.disabledAt = disabled ? (client.disabledAt ?? new Date(now)) : null;
    client.updatedAt = new Date(now);
    await oidcClients.update(this.#db, client);
    if (disabled) this.#ends.publish(await oidcGrants.endForClient(this.#db, id, undefined, 'client_disabled', now), 'client_disabled');
    this.#origins = undefined;
    this.#onEvent(disabled ? 'client.disabled' : 'client.enabled', { clientId: id });
    return publicView(client);
  }

  /** Removes a client, its users' consents and every grant it holds. */
  async remove(id: string): Promise<void> {
    await this.#find(id);
    const ended = await oidcGrants.endForClient(this.#db, id, undefined, 'client_removed', this.#clock.now());
    await oidcConsents.revokeAll(this.#db, id);
    await oidcClients.remove(this.#db, id);
    this.#ends.publish(ended, 'client_removed');
    this.#origins = undefined;
    this.#onEvent('client.removed', { clientId: id, grantsEnded: ended.length });
  }

  /** The third-party clients a user has let in, for the account page. */
  async consentsOf(userId: string): Promise<{ client: OAuthClient; scopes: string[]; grantedAt: Date }[]> {
    const rows = await oidcConsents.list(this.#db, userId);
    const found = await Promise.all(rows.map(async (row) => ({ row, client: await this.get(row.client_id) })));
    return found.flatMap(({ row, client }) => (client ? [{ client, scopes: row.scope.split(' '), grantedAt: new Date(row.updated_at) }] : []));
  }

  /** Takes a consent back: the client must ask again, and what it holds for the user ends now. */
  async revokeConsent(userId: string, clientId: string): Promise<boolean> {
    const revoked = await oidcConsents.revoke(this.#db, userId, clientId);
    const ended = await oidcGrants.endForClient(this.#db, clientId, userId, 'consent_revoked', this.#clock.now());
    this.#ends.publish(ended, 'consent_revoked');
    if (revoked) this.#onEvent('oidc.consent_revoked', { userId, clientId, grantsEnded: ended.length });
    return revoked;
  }

  async list(): Promise<OAuthClient[]> {
    return (await oidcClients.list(this.#db)).map(publicView);
  }

  /**
   * Web origins of enabled clients' redirect URIs: browser apps there may call
   * the token endpoint and UserInfo (CORS, without cookies). Re-read at most
   * every 10 seconds, and at once after a change made here.
   */
  async webOrigins(): Promise<Set<string>> {
    const now = this.#clock.now();
    if (!this.#origins || now - this.#origins.at > 10_000) {
      const set = oidcClients.list(this.#db).then((clients) => {
        const origins = clients.filter((c) => c.disabledAt === null).flatMap((c) => c.redirectUris.map((u) => new URL(u).origin));
        return new Set(origins.filter((o) => o !== 'null'));
      });
      this.#origins = { at: now, set };
      set.catch(() => (this.#origins = undefined));
    }
    return this.#origins.set;
  }

  /** An enabled client, or undefined. */
  async get(id: string): Promise<OAuthClient | undefined> {
    if (!CLIENT_ID.test(id)) return undefined;
    const client = await oidcClients.find(this.#db, id);
    return client && client.disabledAt === null ? publicView(client) : undefined;
  }

  /** Any registered client, disabled ones too (operator tools). */
  async find(id: string): Promise<OAuthClient | undefined> {
    const client = CLIENT_ID.test(id) ? await oidcClients.find(this.#db, id) : undefined;
    return client && publicView(client);
  }

  /**
   * The client a token request comes from, authenticated the one way it was
   * registered for. Undefined when the request names no client at all, or
   * (with `unregisteredIsFirstParty`) only an id nobody registered: the
   * first-party grants. `invalid_client` for anything that fails.
   */
  async authenticate(credentials: ClientCredentials, options: { unregisteredIsFirstParty?: boolean } = {}): Promise<OAuthClient | undefined> {
    const { basic, bodyId, bodySecret } = credentials;
    if (basic && bodySecret !== undefined) throw new OAuthError('invalid_request', 'use one client authentication method');
    if (basic && bodyId !== undefined && bodyId !== basic.id) throw new OAuthError('invalid_request', 'client_id differs from the authenticated client');
    const id = basic?.id ?? bodyId;
    if (id === undefined) {
      if (bodySecret !== undefined) throw new OAuthError('invalid_client', 'client_secret without client_id');
      return undefined;
    }
    const stored = CLIENT_ID.test(id) ? await oidcClients.find(this.#db, id) : undefined;
    const secret = basic?.secret ?? bodySecret;
    const method = basic ? 'client_secret_basic' : bodySecret !== undefined ? 'client_secret_post' : 'none';
    // The hash is compared even for an unknown client: the answer's timing does not tell which ids exist.
    const secretOk = constantTimeEqual(sha256(secret ?? ''), stored?.secretHash ?? sha256(''));
    if (!stored && options.unregisteredIsFirstParty) return undefined;
    if (!stored || stored.disabledAt !== null) throw new OAuthError('invalid_client', 'unknown client or wrong credentials');
    if (stored.authMethod !== method || (method !== 'none' && !secretOk)) {
      this.#onEvent('security.client_authentication_failed', { clientId: stored.id, method });
      throw new OAuthError('invalid_client', 'unknown client or wrong credentials');
    }
    return publicView(stored);
  }

  async #find(id: string): Promise<OAuthClientRecord> {
    const client = CLIENT_ID.test(id) ? await oidcClients.find(this.#db, id) : undefined;
    if (!client) throw new SignetError('not_found', { message: 'No such client' });
    return client;
  }

  /** Validates and applies registration fields, collecting every error. */
  #apply(client: OAuthClientRecord, input: ClientChanges, errors: FieldError[]): void {
    if (input.name !== undefined) {
      const name = input.name.trim();
      // eslint-disable-next-line no-control-regex
      if (name.length === 0 || name.length > 100 || /[\u0000-\u001f\u007f]/.test(name)) errors.push({ field: 'name', message: 'must be 1-100 characters' });
      client.name = name;
    } else if (client.name === '') {
      errors.push({ field: 'name', message: 'is required' });
    }
    if (input.redirectUris !== undefined) {
      client.redirectUris = uris(input.redirectUris, 'redirectUris', errors, { allowPrivateUse: true });
      if (client.redirectUris.length === 0) errors.push({ field: 'redirectUris', message: 'at least one is required' });
    }
    if (input.postLogoutRedirectUris !== undefined)
      client.postLogoutRedirectUris = uris(input.postLogoutRedirectUris, 'postLogoutRedirectUris', errors, { allowPrivateUse: true });
    if (input.backchannelLogoutUri !== undefined) {
      client.backchannelLogoutUri =
        input.backchannelLogoutUri === null
          ? null
          : (uris([input.backchannelLogoutUri], 'backchannelLogoutUri', errors, { allowPrivateUse: false })[0] ?? null);
    }
    if (input.firstParty !== undefined) client.firstParty = input.firstParty;
    if (input.scopes !== undefined) {
      const unknown = input.scopes.filter((s) => !(SUPPORTED_SCOPES as readonly string[]).includes(s));
      if (unknown.length > 0) errors.push({ field: 'scopes', message: `unsupported: ${unknown.join(' ')} (supported: ${SUPPORTED_SCOPES.join(' ')})` });
      if (!input.scopes.includes('openid')) errors.push({ field: 'scopes', message: 'must include openid' });
      client.scopes = [...new Set(input.scopes)];
    }
    if (input.grantTypes !== undefined) {
      const unknown = input.grantTypes.filter((g) => !(GRANT_TYPES as readonly string[]).includes(g));
      if (unknown.length > 0) errors.push({ field: 'grantTypes', message: `unsupported: ${unknown.join(' ')}` });
      client.grantTypes = [...new Set(input.grantTypes)];
    }
    // RFC 9700 §2.4: the password grant only for clients the operator trusts with passwords.
    if (client.grantTypes.includes('password') && !client.firstParty) errors.push({ field: 'grantTypes', message: 'password is for first-party clients only' });
    if (input.resources !== undefined) client.resources = uris(input.resources, 'resources', errors, { allowPrivateUse: false, anyHost: true });
    if (input.accessTokenTtl !== undefined) {
      const ttl = input.accessTokenTtl;
      if (ttl !== null && !(Number.isInteger(ttl) && ttl >= 60 && ttl <= this.#config.accessTokenTtl)) {
        // Longer than ACCESS_TOKEN_TTL would outlive the revocation list's horizon.
        errors.push({ field: 'accessTokenTtl', message: `must be whole seconds from 60 to ACCESS_TOKEN_TTL (${this.#config.accessTokenTtl})` });
      }
      client.accessTokenTtl = ttl;
    }
    if (input.refreshTokenTtl !== undefined) {
      const ttl = input.refreshTokenTtl;
      if (ttl !== null && !(Number.isInteger(ttl) && ttl >= 300 && ttl <= 366 * 86400))
        errors.push({ field: 'refreshTokenTtl', message: 'must be whole seconds from 300 to 366 days' });
      client.refreshTokenTtl = ttl;
    }
  }
}

/**
 * Absolute URIs without a fragment (RFC 6749 §3.1.2): https, http only on a
 * loopback host (RFC 8252 §7.3), or a native app's private-use scheme. Kept
 * byte for byte: they are compared as strings.
 */
function uris(values: readonly string[], field: string, errors: FieldError[], rules: { allowPrivateUse: boolean; anyHost?: boolean }): string[] {
  if (values.length > MAX_URIS) errors.push({ field, message: `at most ${MAX_URIS}` });
  for (const value of values) {
    const problem = uriProblem(value, rules);
    if (problem) errors.push({ field, message: `${value.slice(0, 100)}: ${problem}` });
  }
  return [...new Set(values)];
}

function uriProblem(value: string, rules: { allowPrivateUse: boolean; anyHost?: boolean }): string | undefined {
  if (value.length > MAX_URI_LENGTH || /[\s\\]/.test(value)) return 'not a URI';
  if (value.includes('#')) return 'must not have a fragment';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not an absolute URI';
  }
  if (url.username || url.password) return 'must not carry credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:')
    return rules.anyHost || LOOPBACK.has(url.hostname) ? undefined : 'http only on a loopback host (localhost, 127.0.0.1, [::1]); use https';
  if (rules.allowPrivateUse && PRIVATE_USE_SCHEME.test(value)) return undefined;
  return 'must be https (or http on loopback, or a reversed-domain app scheme)';
}

function publicView(client: OAuthClientRecord): OAuthClient {
  const view: Partial<OAuthClientRecord> = { ...client };
  delete view.secretHash;
  return view as OAuthClient;
}
