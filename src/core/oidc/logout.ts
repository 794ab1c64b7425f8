import type { EndedSession, OAuthClient } from '../../model.js';
import type { Db } from '../../store/db.js';
import { oidcGrants } from '../../store/oidc.js';
import { BackgroundWork } from '../background.js';
import type { SessionService } from '../sessions.js';
import type { SessionEnds } from '../session-ends.js';
import type { ClientRegistry } from './clients.js';
import type { IdTokens } from './id-tokens.js';
import { withQuery } from './authorize.js';

/** What RP-Initiated Logout 1.0 §2 lets a client send to the end-session endpoint. */
export interface LogoutRequest {
  idTokenHint?: string | undefined;
  clientId?: string | undefined;
  postLogoutRedirectUri?: string | undefined;
  state?: string | undefined;
}

/** What the end-session endpoint does next. */
export type LogoutStep =
  /** Ask the user first (no valid hint for this session: logout CSRF, RP-Initiated Logout §2). */
  | { kind: 'confirm'; client: OAuthClient | undefined; location: string | undefined }
  /** Signed out (or nobody was signed in): on to the client's registered URI, or a signed-out page. */
  | { kind: 'done'; location: string | undefined; client: OAuthClient | undefined }
  /** The request contradicts itself: an error page. */
  | { kind: 'refuse'; description: string };

const DELIVERY_TIMEOUT_MS = 5000;

export interface LogoutOptions {
  db: Db;
  sessions: SessionService;
  clients: ClientRegistry;
  idTokens: IdTokens;
  ends: SessionEnds;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
  /** Injected by tests; the global fetch otherwise. */
  fetch?: typeof fetch;
}

/**
 * Signing out everywhere: RP-Initiated Logout 1.0 (a client sends the user
 * here to end the Signet session) and Back-Channel Logout 1.0 (every client
 * that was granted something in an ended browser session, and registered a
 * URI, is told with a signed logout token, however the session ended).
 */
export class Logout {
  readonly #db: Db;
  readonly #sessions: SessionService;
  readonly #clients: ClientRegistry;
  readonly #idTokens: IdTokens;
  readonly #onEvent: LogoutOptions['onEvent'];
  readonly #fetch: typeof fetch;
  readonly #background: BackgroundWork;

  constructor(options: LogoutOptions) {
    this.#db = options.db;
    this.#sessions = options.sessions;
    this.#clients = options.clients;
    this.#idTokens = options.idTokens;
    this.#onEvent = options.onEvent;
    this.#fetch = options.fetch ?? fetch;
    this.#background = new BackgroundWork((error) =>
      options.onEvent('oidc.backchannel_logout_error', { error: error instanceof Error ? error.message : String(error) }),
    );
    options.ends.subscribe((ended) => this.#background.run(() => this.#notify(ended)));
  }

  /**
   * The end-session endpoint. A valid `id_token_hint` for the signed-in user
   * ends the session at once; anything less asks the user. The redirect goes
   * only to a URI registered for the client the hint or `client_id` names.
   */
  async begin(request: LogoutRequest, browser: { userId: string; sessionId: string } | undefined): Promise<LogoutStep> {
    const hint = request.idTokenHint === undefined ? undefined : await this.#idTokens.readHint(request.idTokenHint);
    if (hint && request.clientId !== undefined && !hint.audiences.includes(request.clientId)) {
      return { kind: 'refuse', description: 'client_id is not the audience of id_token_hint' };
    }
    const clientId = request.clientId ?? (hint?.audiences.length === 1 ? hint.audiences[0] : undefined);
    const client = clientId === undefined ? undefined : await this.#clients.get(clientId);
    if (!browser) return this.#done(request, client);
    const matches = hint !== undefined && hint.sub === browser.userId && (hint.sid === undefined || hint.sid === browser.sessionId);
    if (!matches) return { kind: 'confirm', client, location: this.#done(request, client).location };
    await this.#sessions.end(browser.sessionId, 'rp_logout');
    this.#onEvent('oidc.rp_logout', { userId: browser.userId, sessionId: browser.sessionId, clientId: client?.id ?? null });
    return this.#done(request, client);
  }

  /** The user confirmed on the page: end the session and go where the client asked, if it may. */
  async confirm(request: LogoutRequest, browser: { userId: string; sessionId: string }): Promise<LogoutStep> {
    const client = request.clientId === undefined ? undefined : await this.#clients.get(request.clientId);
    await this.#sessions.end(browser.sessionId, 'rp_logout');
    this.#onEvent('oidc.rp_logout', { userId: browser.userId, sessionId: browser.sessionId, clientId: client?.id ?? null });
    return this.#done(request, client);
  }

  async settle(): Promise<void> {
    await this.#background.settle();
  }

  #done(request: LogoutRequest, client: OAuthClient | undefined): Extract<LogoutStep, { kind: 'done' }> {
    const uri = request.postLogoutRedirectUri;
    // RP-Initiated Logout §3: only a URI registered for this very client, compared exactly.
    const allowed = uri !== undefined && client !== undefined && client.postLogoutRedirectUris.includes(uri);
    return { kind: 'done', location: allowed ? withQuery(uri, { state: request.state }) : undefined, client };
  }

  /** Back-Channel Logout §2.5: one signed token per client and browser session, posted in the background. */
  async #notify(ended: readonly EndedSession[]): Promise<void> {
    const targets = new Map<string, { clientId: string; userId: string; sid: string }>();
    const add = (clientId: string, userId: string, sid: string) => targets.set(`${clientId} ${sid}`, { clientId, userId, sid });
    const browserSessions = ended.filter((s) => s.parentSessionId === null && s.clientId === null);
    // Every client granted anything in an ended browser session, offline grants included: their sign-in ended.
    for (const grant of await oidcGrants.clientsOf(
      this.#db,
      browserSessions.map((s) => s.id),
    ))
      add(grant.clientId, grant.userId, grant.parentSessionId);
    // A grant ended on its own (consent revoked, refresh token reused, client disabled).
    for (const s of ended) if (s.parentSessionId !== null && s.clientId !== null) add(s.clientId, s.userId, s.parentSessionId);
    await Promise.all([...targets.values()].map((t) => this.#deliver(t.clientId, t.userId, t.sid)));
  }

  async #deliver(clientId: string, userId: string, sid: string): Promise<void> {
    const client = await this.#clients.get(clientId);
    const uri = client?.backchannelLogoutUri;
    if (!uri) return;
    const body = new URLSearchParams({ logout_token: await this.#idTokens.logoutToken(clientId, userId, sid) });
    try {
      const response = await this.#fetch(uri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        // §2.5: the client answers; Signet follows no redirect and waits a few seconds at most.
        redirect: 'manual',
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
      await response.body?.cancel();
      if (response.status === 200 || response.status === 204) this.#onEvent('oidc.backchannel_logout_delivered', { clientId, userId, sid });
      else this.#onEvent('oidc.backchannel_logout_failed', { clientId, userId, sid, status: response.status });
    } catch (error) {
      this.#onEvent('oidc.backchannel_logout_failed', { clientId, userId, sid, error: error instanceof Error ? error.name : 'error' });
    }
  }
}
