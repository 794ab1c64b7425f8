import type { SignetConfig } from '../../config.js';
import { SignetError } from '../../errors.js';
import type { ProviderConfig } from '../../federation-providers.js';
import type { UserRecord } from '../../model.js';
import type { Db } from '../../store/db.js';
import {
  NO_PASSWORD,
  deleteIdentityUnlessLast,
  findIdentity,
  insertIdentity,
  insertState,
  insertUserWithIdentity,
  listIdentities,
  takeState,
  touchIdentity,
} from '../../store/federation.js';
import type { FederatedIdentity } from '../../store/federation.js';
import type { FederationPurpose } from '../../store/schema.js';
import { findUserById, findUserByLogin, newUser, toUserRow } from '../../store/users.js';
import { FEDERATED_AMR } from '../amr.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual, randomToken, sha256, uuidv7 } from '../crypto.js';
import type { DeviceCookies } from '../devices.js';
import type { AccountLifecycle } from '../lifecycle.js';
import type { MfaService } from '../mfa.js';
import type { Sealer } from '../secrets.js';
import type { ClientContext, SessionService } from '../sessions.js';
import type { SignInResult } from '../users.js';
import { finishFirstFactor } from '../first-factor.js';
import type { ExternalProfile, FlowChecks, Upstream } from './upstream.js';
import { UpstreamError, createUpstream } from './upstream.js';

/** How long a browser may spend at the provider: the pending flow is gone after it. */
export const FLOW_TTL_MS = 10 * 60 * 1000;
const SEAL_PURPOSE = 'federation flow';
const EMAIL_MAX = 254;

export type FederationEventSink = (event: string, fields: Record<string, unknown>) => void;

export interface FederationServiceOptions {
  db: Db;
  sealer: Sealer;
  clock: Clock;
  config: Pick<SignetConfig, 'publicUrl' | 'federationProviders' | 'emailVerification'>;
  sessions: SessionService;
  devices: DeviceCookies;
  mfa: MfaService;
  lifecycle: AccountLifecycle;
  onEvent: FederationEventSink;
}

/** A provider as pages and clients list it. */
export interface ProviderSummary {
  id: string;
  name: string;
  type: ProviderConfig['type'];
}

/** Where a callback leads: a sign-in (a session, or the second step), or an identity linked to the signed-in account. */
export type FederationOutcome = { kind: 'signin'; result: SignInResult; returnTo: string | null } | { kind: 'linked'; returnTo: string | null; userId: string };

/**
 * "Sign in with …": other identity providers as a way into a Signet account.
 * Knows nothing of HTTP; the HTTP layer carries the browser binding cookie.
 *
 * Each flow is a row keyed by a hash of its `state`, holding the PKCE verifier
 * and nonce (sealed) and a hash of a random value the browser keeps in a
 * cookie: the callback takes the row out of the store first (single use,
 * whatever follows), then requires the same browser.
 *
 * Linking is safe by default: an identity seen for the first time joins an
 * existing account with the same address only if the provider says the
 * address is verified AND the operator trusts the provider for addresses
 * (`trustEmail`); otherwise the owner must sign in and connect it themselves.
 */
export class FederationService {
  readonly #db: Db;
  readonly #sealer: Sealer;
  readonly #clock: Clock;
  readonly #config: FederationServiceOptions['config'];
  readonly #sessions: SessionService;
  readonly #devices: DeviceCookies;
  readonly #mfa: MfaService;
  readonly #lifecycle: AccountLifecycle;
  readonly #onEvent: FederationEventSink;
  readonly #upstreams: Map<string, Upstream>;

  constructor(options: FederationServiceOptions) {
    this.#db = options.db;
    this.#sealer = options.sealer;
    this.#clock = options.clock;
    this.#config = options.config;
    this.#sessions = options.sessions;
    this.#devices = options.devices;
    this.#mfa = options.mfa;
    this.#lifecycle = options.lifecycle;
    this.#onEvent = options.onEvent;
    this.#upstreams = new Map(options.config.federationProviders.map((p) => [p.id, createUpstream(p)]));
  }

  providers(): ProviderSummary[] {
    return this.#config.federationProviders.map((p) => ({ id: p.id, name: p.name, type: p.type }));
  }

  /** The redirect URI to register at the provider: Signet's own callback for it. */
  redirectUri(providerId: string): string {
    return `${this.#config.publicUrl}/auth/federation/${providerId}/callback`;
  }

  /**
   * Starts a flow: the provider's authorization URL, and the value the browser
   * must keep (in a cookie) and show again at the callback.
   */
  async start(
    providerId: string,
    intent: { purpose: FederationPurpose; userId?: string; returnTo?: string | undefined },
  ): Promise<{ url: string; binding: string }> {
    const upstream = this.#upstream(providerId);
    const checks: FlowChecks = { state: randomToken(), nonce: randomToken(), codeVerifier: randomToken() };
    const binding = randomToken();
    let url: URL;
    try {
      url = await upstream.authorizationUrl(this.redirectUri(providerId), checks);
    } catch (error) {
      throw this.#failed(providerId, error instanceof UpstreamError ? error.reason : 'start_failed', error);
    }
    const now = this.#clock.now();
    await insertState(this.#db, {
      state_hash: sha256(checks.state),
      provider: providerId,
      binding_hash: sha256(binding),
      secrets: this.#sealer.seal(SEAL_PURPOSE, JSON.stringify({ nonce: checks.nonce, codeVerifier: checks.codeVerifier })),
      purpose: intent.purpose,
      user_id: intent.userId ?? null,
      return_to: intent.returnTo ?? null,
      created_at: now,
      expires_at: now + FLOW_TTL_MS,
    });
    return { url: url.href, binding };
  }

  /**
   * The provider sent the browser back. `callbackUrl` is the redirect URI with
   * the query the provider added; `binding` the cookie value; `signedInUserId`
   * the account signed in on this browser now (a link must come back to it).
   */
  async finish(
    providerId: string,
    callbackUrl: URL,
    binding: string | undefined,
    signedInUserId: string | undefined,
    context: ClientContext,
  ): Promise<FederationOutcome> {
    const upstream = this.#upstream(providerId);
    const state = callbackUrl.searchParams.get('state');
    // Taken out of the store before anything is checked: a state works once, whatever the outcome.
    const row = state && state.length <= 128 ? await takeState(this.#db, sha256(state)) : undefined;
    if (!row || row.provider !== providerId || row.expires_at <= this.#clock.now()) throw this.#failed(providerId, 'unknown_state');
    if (binding === undefined || !constantTimeEqual(sha256(binding), row.binding_hash)) throw this.#failed(providerId, 'browser_mismatch');
    const error = callbackUrl.searchParams.get('error');
    if (error !== null) throw this.#failed(providerId, `provider_error:${error.slice(0, 40)}`);
    const opened = this.#sealer.open(SEAL_PURPOSE, row.secrets);
    if (!opened) throw this.#failed(providerId, 'unsealable');
    const { nonce, codeVerifier } = JSON.parse(opened.value) as { nonce: string; codeVerifier: string };
    let profile: ExternalProfile;
    try {
      profile = await upstream.finish(new URL(`${this.redirectUri(providerId)}${callbackUrl.search}`), { state: state!, nonce, codeVerifier });
    } catch (thrown) {
      if (!(thrown instanceof UpstreamError)) throw thrown;
      throw this.#failed(providerId, thrown.reason, thrown);
    }
    if (row.purpose === 'link') {
      if (row.user_id === null || row.user_id !== signedInUserId) throw this.#failed(providerId, 'link_session_changed');
      await this.#link(upstream.config, row.user_id, profile);
      return { kind: 'linked', returnTo: row.return_to, userId: row.user_id };
    }
    const user = await this.#accountFor(upstream.config, profile);
    return { kind: 'signin', result: await this.#signIn(user, providerId, context), returnTo: row.return_to };
  }

  async list(userId: string): Promise<FederatedIdentity[]> {
    return listIdentities(this.#db, userId);
  }

  /** Unlinks one of the user's identities, never the last way into the account. */
  async unlink(userId: string, identityId: string): Promise<void> {
    const outcome = await deleteIdentityUnlessLast(this.#db, userId, identityId);
    if (outcome === 'missing') throw new SignetError('identity_not_found');
    if (outcome === 'last') {
      this.#onEvent('account.identity_unlink_refused', { userId, identityId, reason: 'last_method' });
      throw new SignetError('last_sign_in_method');
    }
    this.#onEvent('account.identity_unlinked', { userId, identityId });
  }

  /** The account a sign-in with this identity opens: linked before, linked now by the rules above, or new. */
  async #accountFor(provider: ProviderConfig, profile: ExternalProfile): Promise<UserRecord> {
    const now = this.#clock.now();
    const linked = await findIdentity(this.#db, provider.id, profile.subject);
    if (linked) {
      const user = await findUserById(this.#db, linked.userId);
      if (!user || user.disabledAt !== null) throw this.#failed(provider.id, 'disabled', undefined, linked.userId);
      await touchIdentity(this.#db, linked.id, now);
      return user;
    }
    const email = profile.email?.trim();
    if (!email || email.length > EMAIL_MAX || !email.includes('@')) throw this.#failed(provider.id, 'no_email');
    const verified = profile.emailVerified && provider.trustEmail;
    const existing = await findUserByLogin(this.#db, { email });
    if (existing) {
      // Only a verified address from a provider trusted for addresses may join an existing account on its own.
      if (!verified || existing.disabledAt !== null) {
        this.#onEvent('security.identity_link_refused', {
          userId: existing.id,
          provider: provider.id,
          reason: !provider.trustEmail ? 'provider_not_trusted' : !profile.emailVerified ? 'email_not_verified' : 'disabled',
        });
        throw new SignetError('federation_link_required');
      }
      if (!(await insertIdentity(this.#db, this.#identityRow(provider.id, profile, existing.id, email, now)))) throw this.#failed(provider.id, 'identity_race');
      this.#onEvent('account.identity_linked', { userId: existing.id, provider: provider.id, automatic: true });
      return existing;
    }
    const record = newUser({ id: uuidv7(now), email, username: null, name: profile.name?.trim().slice(0, 100) || null, passwordHash: NO_PASSWORD, now });
    record.emailVerified = verified;
    const created = await insertUserWithIdentity(this.#db, toUserRow(record), this.#identityRow(provider.id, profile, record.id, email, now));
    if (created === 'email') throw new SignetError('federation_link_required');
    if (created === 'identity') throw this.#failed(provider.id, 'identity_race');
    this.#onEvent('user.signed_up', { userId: record.id, method: 'federation', provider: provider.id, emailVerified: verified });
    this.#onEvent('account.identity_linked', { userId: record.id, provider: provider.id, automatic: true });
    if (!verified) await this.#lifecycle.sendVerification(record);
    return record;
  }

  async #link(provider: ProviderConfig, userId: string, profile: ExternalProfile): Promise<void> {
    const now = this.#clock.now();
    const linked = await findIdentity(this.#db, provider.id, profile.subject);
    if (linked && linked.userId === userId) return;
    const email = profile.email?.trim().slice(0, EMAIL_MAX) ?? null;
    if (linked || !(await insertIdentity(this.#db, this.#identityRow(provider.id, profile, userId, email, now)))) {
      this.#onEvent('account.identity_link_failed', { userId, provider: provider.id, reason: 'identity_taken' });
      throw new SignetError('identity_taken');
    }
    this.#onEvent('account.identity_linked', { userId, provider: provider.id, automatic: false });
  }

  async #signIn(user: UserRecord, providerId: string, context: ClientContext): Promise<SignInResult> {
    const parts = { sessions: this.#sessions, devices: this.#devices, mfa: this.#mfa, config: this.#config, onEvent: this.#onEvent };
    return finishFirstFactor(parts, user, FEDERATED_AMR, context, { method: 'federation', provider: providerId });
  }

  #identityRow(provider: string, profile: ExternalProfile, userId: string, email: string | null, now: number) {
    return { id: uuidv7(now), provider, subject: profile.subject, user_id: userId, email, created_at: now, last_used_at: now };
  }

  #upstream(providerId: string): Upstream {
    const upstream = this.#upstreams.get(providerId);
    if (!upstream) throw new SignetError('not_found');
    return upstream;
  }

  #failed(provider: string, reason: string, cause?: unknown, userId?: string): SignetError {
    this.#onEvent('auth.signin_failed', { method: 'federation', provider, reason, ...(userId !== undefined ? { userId } : {}) });
    return new SignetError('federation_failed', { cause: cause ?? new Error(reason) });
  }
}

/** An identity as clients see it (JSON: ISO times). */
export function toPublicIdentity(identity: FederatedIdentity, providers: ProviderSummary[]) {
  return {
    id: identity.id,
    provider: identity.provider,
    providerName: providers.find((p) => p.id === identity.provider)?.name ?? identity.provider,
    email: identity.email,
    createdAt: identity.createdAt.toISOString(),
    lastUsedAt: identity.lastUsedAt === null ? null : identity.lastUsedAt.toISOString(),
  };
}
