import type { SignetConfig } from '../../config.js';
import type { OAuthClient, Session, User } from '../../model.js';
import type { Db } from '../../store/db.js';
import { oidcCodes, oidcConsents, oidcRequests } from '../../store/oidc.js';
import type { Clock } from '../clock.js';
import { randomToken, sha256 } from '../crypto.js';
import type { ClientRegistry } from './clients.js';
import { SUPPORTED_SCOPES } from './clients.js';
import type { OAuthErrorCode } from './errors.js';
import { oauthText } from './errors.js';
import type { IdTokens } from './id-tokens.js';

/** An authorization request that passed every check (OpenID Connect Core §3.1.2.2). */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  /** What the client asked for and may have, `openid` first. */
  scopes: string[];
  state?: string | undefined;
  nonce?: string | undefined;
  codeChallenge?: string | undefined;
  prompt: Prompt[];
  maxAge?: number | undefined;
  loginHint?: string | undefined;
  /** The user an `id_token_hint` named. */
  hintSub?: string | undefined;
  resource?: string | undefined;
  createdAt: number;
}

type Prompt = 'none' | 'login' | 'consent';

/** The browser's signed-in session, if any. */
export interface Browser {
  user: User;
  session: Session;
}

/** What the HTTP layer does next. */
export type AuthorizeStep =
  /** The client or its redirect URI could not be trusted: an error page, never a redirect (RFC 6749 §4.1.2.1). */
  | { kind: 'refuse'; description: string }
  /** Back to the client with a code or an error (RFC 9207: with `iss`). */
  | { kind: 'redirect'; location: string }
  /** The user must sign in (again, when `fresh`), then come back to the stored request. */
  | { kind: 'sign-in'; requestId: string; loginHint: string | undefined; fresh: boolean }
  /** A third-party client needs the user's consent. */
  | { kind: 'consent'; requestId: string; client: OAuthClient; scopes: string[]; redirectUri: string }
  /** Stored: continue with a GET, which carries the browser's SameSite=Lax session cookies. */
  | { kind: 'resume'; requestId: string };

const REQUEST_TTL_MS = 10 * 60 * 1000;
/** RFC 6749 §4.1.2: short-lived; OAuth 2.1 and the issue: a minute at most. */
export const CODE_TTL_MS = 60 * 1000;
const CODE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const REQUEST_ID = /^[A-Za-z0-9_-]{43}$/;
const MAX_PARAM = 1024;
/** Parameters that must not repeat (RFC 6749 §3.1); the rest are ignored when unknown. */
const SINGLE = [
  'client_id',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'prompt',
  'max_age',
  'login_hint',
  'code_challenge',
  'code_challenge_method',
  'id_token_hint',
  'resource',
  'request',
  'request_uri',
  'registration',
];

class Refusal {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
  ) {}
}

export interface AuthorizerOptions {
  db: Db;
  clock: Clock;
  clients: ClientRegistry;
  idTokens: IdTokens;
  config: Pick<SignetConfig, 'publicUrl'>;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * The authorization endpoint's decisions (OpenID Connect Core §3.1.2, RFC
 * 9700 §2.1, RFC 9207), free of HTTP: the request is checked in the order the
 * specifications give, then the browser's session decides between a code,
 * the sign-in page, the consent page, or an error sent back to the client.
 * A request waiting on the user is stored (ten minutes) and spent once with
 * one conditional delete, so a double-submitted consent issues one code.
 */
export class Authorizer {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #clients: ClientRegistry;
  readonly #idTokens: IdTokens;
  readonly #issuer: string;
  readonly #onEvent: AuthorizerOptions['onEvent'];

  constructor(options: AuthorizerOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#clients = options.clients;
    this.#idTokens = options.idTokens;
    this.#issuer = options.config.publicUrl;
    this.#onEvent = options.onEvent;
  }

  /**
   * GET or POST /oauth2/authorize. A cross-site form post carries no session
   * cookie, so with `defer` a valid request is stored and continued by a GET.
   */
  async authorize(params: URLSearchParams, browser: Browser | undefined, options: { defer?: boolean } = {}): Promise<AuthorizeStep> {
    for (const name of ['client_id', 'redirect_uri']) {
      if (params.getAll(name).length > 1) return { kind: 'refuse', description: `${name} is repeated` };
    }
    const clientId = params.get('client_id') ?? '';
    const client = clientId === '' ? undefined : await this.#clients.get(clientId);
    if (!client) return { kind: 'refuse', description: clientId === '' ? 'client_id is missing' : 'unknown client' };
    if (!client.grantTypes.includes('authorization_code')) return { kind: 'refuse', description: 'this client may not use the authorization code flow' };
    const redirectUri = params.get('redirect_uri') ?? '';
    // OpenID Connect Core §3.1.2.1: required, and identical to a registered one (simple string comparison).
    if (!client.redirectUris.includes(redirectUri))
      return { kind: 'refuse', description: redirectUri === '' ? 'redirect_uri is missing' : 'redirect_uri is not registered for this client' };
    const state = params.get('state') || undefined;
    const checked = await this.#check(params, client);
    if (checked instanceof Refusal) return this.#error(redirectUri, state, checked.error, checked.description);
    if (options.defer) return { kind: 'resume', requestId: await this.#store(checked) };
    return this.#proceed(checked, client, browser, undefined);
  }

  /**
   * Back from the sign-in page (or on the consent page): the stored request,
   * judged again with the session the browser now has.
   */
  async resume(requestId: string, browser: Browser | undefined): Promise<AuthorizeStep> {
    const found = await this.#stored(requestId);
    if (!found) return { kind: 'refuse', description: 'the sign-in request has expired; start again from the application' };
    return this.#proceed(found.request, found.client, browser, requestId);
  }

  /** The user's answer on the consent page. */
  async consent(requestId: string, browser: Browser, approved: boolean): Promise<AuthorizeStep> {
    const found = await this.#stored(requestId);
    if (!found) return { kind: 'refuse', description: 'the sign-in request has expired; start again from the application' };
    const { request, client } = found;
    // Spent before anything is issued: of two submissions, one gets past here.
    if (!(await this.#spend(requestId))) return { kind: 'refuse', description: 'this request was already answered' };
    if (!approved) {
      this.#onEvent('oidc.consent_denied', { userId: browser.user.id, clientId: client.id });
      return this.#error(request.redirectUri, request.state, 'access_denied', 'the user denied the request');
    }
    const remembered = await oidcConsents.find(this.#db, browser.user.id, client.id);
    const scopes = union(remembered ? remembered.scope.split(' ') : [], request.scopes);
    await oidcConsents.grant(this.#db, browser.user.id, client.id, scopes.join(' '), this.#clock.now());
    this.#onEvent('oidc.consent_granted', { userId: browser.user.id, clientId: client.id, scope: request.scopes.join(' ') });
    return this.#issueCode(request, client, browser);
  }

  /** The redirect URI a stored request will end at (the pages let their forms lead there). */
  async redirectTarget(requestId: string): Promise<string | undefined> {
    return (await this.#stored(requestId))?.request.redirectUri;
  }

  /** Parameter checks after the redirect URI is trusted; errors from here on go back to the client. */
  async #check(params: URLSearchParams, client: OAuthClient): Promise<AuthorizationRequest | Refusal> {
    for (const name of SINGLE) if (params.getAll(name).length > 1) return new Refusal('invalid_request', `${name} is repeated`);
    const get = (name: string) => params.get(name) || undefined;
    for (const name of SINGLE) {
      const value = get(name);
      // eslint-disable-next-line no-control-regex
      if (value !== undefined && (value.length > MAX_PARAM || /[\u0000-\u001f\u007f]/.test(value)))
        return new Refusal('invalid_request', `${name} is too long or has control characters`);
    }
    // OpenID Connect Core §6: request objects are not supported (discovery says so).
    if (get('request')) return new Refusal('request_not_supported', 'request objects are not supported');
    if (get('request_uri')) return new Refusal('request_uri_not_supported', 'request_uri is not supported');
    if (get('registration')) return new Refusal('registration_not_supported', 'registration is not supported');
    const responseType = get('response_type');
    if (responseType === undefined) return new Refusal('invalid_request', 'response_type is required');
    if (responseType !== 'code') return new Refusal('unsupported_response_type', 'only response_type=code is supported');
    const responseMode = get('response_mode');
    if (responseMode !== undefined && responseMode !== 'query') return new Refusal('invalid_request', 'only response_mode=query is supported');

    // Core §3.1.2.1: scope values not understood are ignored; those the client may not have are not granted.
    const requested = (get('scope') ?? '').split(' ').filter(Boolean);
    if (!requested.includes('openid')) return new Refusal('invalid_scope', 'scope must include openid');
    const scopes = SUPPORTED_SCOPES.filter((s) => requested.includes(s) && client.scopes.includes(s));
    // §11: offline access means refresh tokens, which need the grant type.
    const granted = scopes.filter((s) => s !== 'offline_access' || client.grantTypes.includes('refresh_token'));

    // PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required of public clients.
    const challenge = get('code_challenge');
    const method = get('code_challenge_method');
    if (challenge === undefined) {
      if (method !== undefined) return new Refusal('invalid_request', 'code_challenge_method without code_challenge');
      if (client.authMethod === 'none') return new Refusal('invalid_request', 'code_challenge is required (PKCE with S256)');
    } else {
      if (method !== 'S256') return new Refusal('invalid_request', 'code_challenge_method must be S256');
      if (!CODE_CHALLENGE.test(challenge)) return new Refusal('invalid_request', 'code_challenge must be 43 base64url characters');
    }

    const prompt = (get('prompt') ?? '').split(' ').filter(Boolean);
    for (const value of prompt) {
      if (!['none', 'login', 'consent', 'select_account'].includes(value)) return new Refusal('invalid_request', `prompt ${value} is not supported`);
    }
    if (prompt.includes('none') && prompt.length > 1) return new Refusal('invalid_request', 'prompt=none cannot be combined with other values');
    // select_account: Signet keeps one account per browser; choosing means signing in again.
    const prompts = [...new Set(prompt.map((p) => (p === 'select_account' ? 'login' : p)))] as Prompt[];

    const maxAgeText = get('max_age');
    if (maxAgeText !== undefined && !/^\d{1,9}$/.test(maxAgeText)) return new Refusal('invalid_request', 'max_age must be a whole number of seconds');
    const maxAge = maxAgeText === undefined ? undefined : Number(maxAgeText);

    const resource = get('resource');
    if (resource !== undefined && !client.resources.includes(resource)) return new Refusal('invalid_target', 'resource is not registered for this client');

    let hintSub: string | undefined;
    const hint = get('id_token_hint');
    if (hint !== undefined) {
      const read = await this.#idTokens.readHint(hint);
      if (!read) return new Refusal('invalid_request', 'id_token_hint is not an ID token issued here');
      hintSub = read.sub;
    }
    const loginHint = get('login_hint');
    return {
      clientId: client.id,
      redirectUri: client.redirectUris.find((u) => u === get('redirect_uri'))!,
      scopes: granted,
      state: get('state'),
      nonce: get('nonce'),
      codeChallenge: challenge,
      prompt: prompts,
      maxAge,
      loginHint: loginHint !== undefined && loginHint.length <= 254 ? loginHint : undefined,
      hintSub,
      resource,
      createdAt: this.#clock.now(),
    };
  }

  async #proceed(request: AuthorizationRequest, client: OAuthClient, browser: Browser | undefined, storedId: string | undefined): Promise<AuthorizeStep> {
    const none = request.prompt.includes('none');
    // Only a first-party browser session signs in to clients (never a client's own grant).
    const signedIn = browser && browser.session.clientId === null ? browser : undefined;
    const fresh = this.#needsFreshSignIn(request, signedIn);
    if (!signedIn || fresh) {
      if (none) return this.#finish(request, storedId, 'login_required', fresh ? 'a new sign-in is required' : 'no one is signed in');
      return { kind: 'sign-in', requestId: storedId ?? (await this.#store(request)), loginHint: request.loginHint, fresh: signedIn !== undefined };
    }
    if (!client.firstParty) {
      const remembered = await oidcConsents.find(this.#db, signedIn.user.id, client.id);
      const covered = remembered !== undefined && request.scopes.every((s) => remembered.scope.split(' ').includes(s));
      if (request.prompt.includes('consent') || !covered) {
        if (none) return this.#finish(request, storedId, 'consent_required', 'the user has not consented to this client');
        return { kind: 'consent', requestId: storedId ?? (await this.#store(request)), client, scopes: request.scopes, redirectUri: request.redirectUri };
      }
    }
    if (storedId !== undefined && !(await this.#spend(storedId))) return { kind: 'refuse', description: 'this request was already answered' };
    return this.#issueCode(request, client, signedIn);
  }

  /**
   * Whether the session is too old for the request: `prompt=login` (or
   * `max_age=0`) wants a sign-in after the request was made; `max_age` one
   * within that many seconds; an `id_token_hint` naming someone else a
   * sign-in as them.
   */
  #needsFreshSignIn(request: AuthorizationRequest, browser: Browser | undefined): boolean {
    if (!browser) return false;
    const authTime = browser.session.authTime.getTime();
    if ((request.prompt.includes('login') || request.maxAge === 0) && authTime < request.createdAt) return true;
    if (request.maxAge !== undefined && this.#clock.now() - authTime > request.maxAge * 1000) return true;
    return request.hintSub !== undefined && request.hintSub !== browser.user.id;
  }

  async #issueCode(request: AuthorizationRequest, client: OAuthClient, browser: Browser): Promise<AuthorizeStep> {
    const code = randomToken();
    const now = this.#clock.now();
    await oidcCodes.insert(this.#db, {
      code_hash: sha256(code),
      client_id: client.id,
      user_id: browser.user.id,
      parent_session_id: browser.session.id,
      redirect_uri: request.redirectUri,
      scope: request.scopes.join(' '),
      nonce: request.nonce ?? null,
      code_challenge: request.codeChallenge ?? null,
      resource: request.resource ?? null,
      auth_time: browser.session.authTime.getTime(),
      amr: JSON.stringify(browser.session.amr),
      created_at: now,
      expires_at: now + CODE_TTL_MS,
      used_at: null,
      issued_session_id: null,
    });
    this.#onEvent('oidc.code_issued', { userId: browser.user.id, clientId: client.id, sessionId: browser.session.id });
    return { kind: 'redirect', location: withQuery(request.redirectUri, { code, state: request.state, iss: this.#issuer }) };
  }

  async #finish(request: AuthorizationRequest, storedId: string | undefined, error: OAuthErrorCode, description: string): Promise<AuthorizeStep> {
    if (storedId !== undefined) await this.#spend(storedId);
    return this.#error(request.redirectUri, request.state, error, description);
  }

  /** RFC 6749 §4.1.2.1 with RFC 9207: the error, the state and our issuer, in the redirect URI's query. */
  #error(redirectUri: string, state: string | undefined, error: OAuthErrorCode, description: string): AuthorizeStep {
    return { kind: 'redirect', location: withQuery(redirectUri, { error, error_description: oauthText(description), state, iss: this.#issuer }) };
  }

  async #store(request: AuthorizationRequest): Promise<string> {
    const id = randomToken();
    await oidcRequests.insert(this.#db, {
      id: sha256(id),
      client_id: request.clientId,
      params: JSON.stringify(request),
      created_at: request.createdAt,
      expires_at: request.createdAt + REQUEST_TTL_MS,
    });
    return id;
  }

  /** Spends a stored request: true for exactly one of concurrent callers. */
  async #spend(requestId: string): Promise<boolean> {
    return oidcRequests.remove(this.#db, sha256(requestId));
  }

  async #stored(requestId: string): Promise<{ request: AuthorizationRequest; client: OAuthClient } | undefined> {
    if (!REQUEST_ID.test(requestId)) return undefined;
    const row = await oidcRequests.find(this.#db, sha256(requestId), this.#clock.now());
    const client = row && (await this.#clients.get(row.client_id));
    if (!row || !client) return undefined;
    return { request: JSON.parse(row.params) as AuthorizationRequest, client };
  }
}

/** Adds parameters to a URI, keeping a query it already has (RFC 6749 §3.1.2). */
export function withQuery(uri: string, params: Record<string, string | undefined>): string {
  const query = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined)).toString();
  if (query === '') return uri;
  return `${uri}${uri.includes('?') ? '&' : '?'}${query}`;
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return SUPPORTED_SCOPES.filter((s) => a.includes(s) || b.includes(s));
}
