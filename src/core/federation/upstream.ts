import * as client from 'openid-client';
import type { GithubProviderConfig, OidcProviderConfig, ProviderConfig } from '../../federation-providers.js';
import { isLoopbackUrl } from '../../federation-providers.js';

/** What Signet takes from a provider about the user who signed in there. */
export interface ExternalProfile {
  /** The provider's stable id of the user (`sub`; GitHub's numeric user id). */
  subject: string;
  email: string | undefined;
  /** Whether the provider says it verified `email` (OpenID Connect `email_verified`; GitHub's `verified`). */
  emailVerified: boolean;
  name: string | undefined;
}

/** The checks a flow carries from its start to its callback. */
export interface FlowChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/**
 * Why a callback was refused, for the audit log (the client sees one
 * `federation_failed`): the library's error code when it has one.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

/** A provider as the flow sees it: build the authorization URL, then turn the callback into a profile. */
export interface Upstream {
  readonly config: ProviderConfig;
  authorizationUrl(redirectUri: string, checks: FlowChecks): Promise<URL>;
  /** Exchanges the code (PKCE, state, `iss`, and for OpenID Connect the ID token and its nonce, all checked by openid-client). */
  finish(callbackUrl: URL, checks: FlowChecks): Promise<ExternalProfile>;
}

/** Plain HTTP is accepted for loopback providers only (development, tests); config validation already refused the rest. */
function insecureOptions(url: string): { execute: Array<(config: client.Configuration) => void> } {
  return { execute: isLoopbackUrl(url) ? [client.allowInsecureRequests] : [] };
}

const TIMEOUT_SECONDS = 10;

export function createUpstream(config: ProviderConfig): Upstream {
  return config.type === 'oidc' ? new OidcUpstream(config) : new GithubUpstream(config);
}

/**
 * Any OpenID Connect provider, by discovery (openid-client v6): authorization
 * code with PKCE (S256), `state` and `nonce`; the ID token's signature,
 * issuer, audience, expiry and nonce, and the RFC 9207 `iss` response
 * parameter when the provider announces it, are checked by the library.
 */
class OidcUpstream implements Upstream {
  #configuration: Promise<client.Configuration> | undefined;

  constructor(readonly config: OidcProviderConfig) {}

  /** Discovery once, kept; a failed discovery is tried again on the next sign-in. */
  #discover(): Promise<client.Configuration> {
    const { issuer, clientId, clientSecret } = this.config;
    this.#configuration ??= client
      .discovery(new URL(issuer), clientId, undefined, clientSecret === undefined ? client.None() : client.ClientSecretBasic(clientSecret), {
        ...insecureOptions(issuer),
        timeout: TIMEOUT_SECONDS,
      })
      .catch((error: unknown) => {
        this.#configuration = undefined;
        throw new UpstreamError('discovery_failed', { cause: error });
      });
    return this.#configuration;
  }

  async authorizationUrl(redirectUri: string, checks: FlowChecks): Promise<URL> {
    const configuration = await this.#discover();
    return client.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      scope: this.config.scopes.join(' '),
      state: checks.state,
      nonce: checks.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    });
  }

  async finish(callbackUrl: URL, checks: FlowChecks): Promise<ExternalProfile> {
    const configuration = await this.#discover();
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw new UpstreamError(reasonOf(error), { cause: error });
    }
    const claims = tokens.claims();
    if (!claims) throw new UpstreamError('no_id_token');
    let source: Record<string, unknown> = claims;
    // Providers that keep the address out of the ID token (OpenID Connect Core §5.4) give it at UserInfo.
    if (claims.email === undefined && configuration.serverMetadata().userinfo_endpoint !== undefined) {
      try {
        source = { ...(await client.fetchUserInfo(configuration, tokens.access_token, claims.sub)), sub: claims.sub };
      } catch (error) {
        throw new UpstreamError(reasonOf(error), { cause: error });
      }
    }
    return {
      subject: claims.sub,
      email: typeof source.email === 'string' ? source.email : undefined,
      emailVerified: source.email_verified === true,
      name: typeof source.name === 'string' ? source.name : undefined,
    };
  }
}

/**
 * GitHub: OAuth 2.0 (not OpenID Connect), through the same library: the
 * authorization code with PKCE and `state`; the user from `GET /user`, the
 * address from `GET /user/emails` (the primary one, with its `verified` flag),
 * since `/user`'s public email says nothing about verification.
 */
class GithubUpstream implements Upstream {
  readonly #configuration: client.Configuration;

  constructor(readonly config: GithubProviderConfig) {
    this.#configuration = new client.Configuration(
      { issuer: new URL(config.authorizeUrl).origin, authorization_endpoint: config.authorizeUrl, token_endpoint: config.tokenUrl },
      config.clientId,
      undefined,
      client.ClientSecretPost(config.clientSecret),
    );
    for (const allow of insecureOptions(config.tokenUrl).execute) allow(this.#configuration);
    this.#configuration.timeout = TIMEOUT_SECONDS;
  }

  authorizationUrl(redirectUri: string, checks: FlowChecks): Promise<URL> {
    return (async () =>
      client.buildAuthorizationUrl(this.#configuration, {
        redirect_uri: redirectUri,
        scope: this.config.scopes.join(' '),
        state: checks.state,
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
        allow_signup: 'true',
      }))();
  }

  async finish(callbackUrl: URL, checks: FlowChecks): Promise<ExternalProfile> {
    let accessToken: string;
    try {
      const tokens = await client.authorizationCodeGrant(this.#configuration, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        idTokenExpected: false,
      });
      accessToken = tokens.access_token;
    } catch (error) {
      throw new UpstreamError(reasonOf(error), { cause: error });
    }
    const user = (await this.#api(accessToken, '/user')) as { id?: unknown; name?: unknown; login?: unknown };
    if (typeof user.id !== 'number' && typeof user.id !== 'string') throw new UpstreamError('github_no_user_id');
    const emails = (await this.#api(accessToken, '/user/emails')) as Array<{ email?: unknown; primary?: unknown; verified?: unknown }>;
    const primary = Array.isArray(emails) ? emails.find((e) => e.primary === true && typeof e.email === 'string') : undefined;
    return {
      subject: String(user.id),
      email: primary?.email as string | undefined,
      emailVerified: primary?.verified === true,
      name: typeof user.name === 'string' ? user.name : typeof user.login === 'string' ? user.login : undefined,
    };
  }

  async #api(accessToken: string, path: string): Promise<unknown> {
    let response: Response;
    try {
      response = await client.fetchProtectedResource(
        this.#configuration,
        accessToken,
        new URL(`${this.config.apiUrl}${path}`),
        'GET',
        undefined,
        new Headers({ accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'Signet' }),
      );
    } catch (error) {
      throw new UpstreamError(reasonOf(error), { cause: error });
    }
    if (!response.ok) throw new UpstreamError(`github_api_${response.status}`);
    try {
      return await response.json();
    } catch (error) {
      throw new UpstreamError('github_api_invalid_json', { cause: error });
    }
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof UpstreamError) return error.reason;
  const code = (error as { code?: unknown } | null)?.code;
  const oauthError = (error as { error?: unknown } | null)?.error;
  if (typeof oauthError === 'string') return `provider_error:${oauthError.slice(0, 40)}`;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown';
}
