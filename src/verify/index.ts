import { createPublicKey, createSecretKey } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { createRemoteJWKSet, customFetch } from 'jose';
import type { RemoteJWKSet } from 'jose';
import { ALGORITHMS, APP_CLAIM, JwtVerificationError, ROLES_CLAIM, VerifiedTokenCache, verifyCached } from './jwt.js';
import type { AccessTokenClaims, JwtAlgorithm, JwtRules } from './jwt.js';

export { APP_CLAIM, JwtVerificationError, ROLES_CLAIM } from './jwt.js';
export type { AccessTokenClaims, JwtAlgorithm } from './jwt.js';

/**
 * `signet/verify`: protect another service's routes with Signet's access
 * tokens. No database, no Signet server code; one dependency (jose) for
 * fetching and caching the JWKS.
 *
 * @example
 * const verifier = createVerifier({
 *   issuer: 'https://auth.example.com',
 *   audience: 'https://auth.example.com',
 *   algorithms: ['RS256'],
 * });
 * app.use(verifier.express());          // req.auth = claims
 */
export interface VerifierOptions {
  /** Expected `iss`, exactly as Signet's PUBLIC_URL. Required. */
  issuer: string;
  /** Expected `aud` (Signet's JWT_AUDIENCE; defaults there to PUBLIC_URL). Required. */
  audience: string;
  /** Allowed `alg` values. Required: a verifier never lets the token choose. */
  algorithms: JwtAlgorithm[];
  /** JWKS location; defaults to `<issuer>/.well-known/jwks.json`. */
  jwksUri?: string | URL;
  /** The shared secret for HS256 deployments (Signet's JWT_SECRET). */
  secret?: string;
  /** Clock tolerance for exp/nbf, seconds (default 30, at most 60). */
  leeway?: number;
  /** Claims that must be present (default `['sid']`). */
  requiredClaims?: string[];
  /** Scopes the token's `scope` must contain, all of them. */
  requiredScopes?: string[];
  /** Roles the token's `roles` must contain, all of them (set by the operator; see `rolesOf`). */
  requiredRoles?: string[];
  /** Verified tokens remembered (default 10 000); 0 disables the cache. */
  cacheSize?: number;
  /** Minimum time between JWKS refetches caused by an unknown `kid` (default 30 s). */
  jwksCooldownMs?: number;
  /** How long fetched keys are trusted before a background refetch (default 5 min, Signet's JWKS max-age). */
  jwksMaxAgeMs?: number;
  /**
   * Opt-in: refuse tokens of ended sessions. Signet's list of recently ended
   * sessions is polled every `intervalMs` (default 30 s), a page at a time from
   * where the last poll stopped, so a session ended at Signet is refused here
   * within that delay; no request waits on the network. When no poll has
   * succeeded for `maxStalenessMs` (default twice the interval plus 30 s) the
   * verifier fails closed: every token is refused with
   * `RevocationUnavailableError` (a 503 from the middleware) until a poll
   * succeeds again, rather than honour tokens it can no longer check.
   */
  revocation?: { url?: string | URL; intervalMs?: number; maxStalenessMs?: number };
  /** Errors of background work (JWKS or revocation refresh). */
  onError?: (error: Error) => void;
  /** For tests and custom agents. */
  fetch?: typeof fetch;
  /** Current time in ms (tests move it instead of sleeping). */
  now?: () => number;
}

export interface Verifier {
  /** Resolves with the claims, or rejects with JwtVerificationError. */
  verify(token: string): Promise<AccessTokenClaims>;
  /** Verifies an `Authorization` header value; rejects `missing_token` / `invalid_token`. */
  verifyAuthorization(header: string | undefined | null): Promise<AccessTokenClaims>;
  /** `node:http` and Express middleware: sets `req.auth`, answers 401 itself. */
  node(): (req: NodeRequest, res: NodeResponse, next?: (error?: unknown) => void) => void;
  express(): (req: NodeRequest, res: NodeResponse, next: (error?: unknown) => void) => void;
  /** Fastify `preHandler` hook: sets `request.auth`. */
  fastify(): (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<void>;
  /** Hono middleware: `c.get('auth')`. */
  hono(): (c: HonoLikeContext, next: () => Promise<void>) => Promise<Response | void>;
  /** Fetches the JWKS (and the revocation list, if enabled) now. */
  refresh(): Promise<void>;
  /** Stops background polling. */
  close(): void;
}

interface NodeRequest {
  headers: Record<string, string | string[] | undefined>;
  auth?: AccessTokenClaims;
}
interface NodeResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
}
interface FastifyLikeRequest {
  headers: Record<string, string | string[] | undefined>;
  auth?: AccessTokenClaims;
}
interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  header(name: string, value: string): FastifyLikeReply;
  send(body: unknown): unknown;
}
interface HonoLikeContext {
  req: { header(name: string): string | undefined };
  set(key: 'auth', value: AccessTokenClaims): void;
}

/** Missing credentials: RFC 6750 §3.1 says no `error` parameter. */
export class MissingTokenError extends Error {
  override readonly name = 'MissingTokenError';
  readonly code = 'missing_token';
  constructor() {
    super('an access token is required');
  }
}

/**
 * The revocation list could not be refreshed for longer than
 * `revocation.maxStalenessMs`: tokens are refused until it can (fail closed).
 * The middleware answers `503 unavailable` with Retry-After.
 */
export class RevocationUnavailableError extends Error {
  override readonly name = 'RevocationUnavailableError';
  readonly code = 'unavailable';
  constructor(readonly staleForMs: number | undefined) {
    super(staleForMs === undefined ? 'the revocation list has not been fetched yet' : `the revocation list is ${Math.round(staleForMs / 1000)} s old`);
  }
}

/** A valid token without the required scopes: RFC 6750 §3.1 answers 403 insufficient_scope. */
export class InsufficientScopeError extends Error {
  override readonly name = 'InsufficientScopeError';
  readonly code = 'insufficient_scope';
  constructor(readonly required: readonly string[]) {
    super(`the token lacks a required scope (${required.join(' ')})`);
  }
}

/** A valid token without the required roles: 403 insufficient_role. */
export class InsufficientRoleError extends Error {
  override readonly name = 'InsufficientRoleError';
  readonly code = 'insufficient_role';
  constructor(readonly required: readonly string[]) {
    super(`the token lacks a required role (${required.join(' ')})`);
  }
}

/** The user's roles as the token carries them (empty when none). */
export function rolesOf(claims: AccessTokenClaims): string[] {
  const roles = claims[ROLES_CLAIM];
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
}

/** Whether the token carries `role`. @example if (!hasRole(req.auth, 'admin')) return res.status(403).end(); */
export function hasRole(claims: AccessTokenClaims, role: string): boolean {
  return rolesOf(claims).includes(role);
}

/** The operator-set app data the token carries (an empty object when none). */
export function appMetadataOf(claims: AccessTokenClaims): Record<string, unknown> {
  const value = claims[APP_CLAIM];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export function createVerifier(options: VerifierOptions): Verifier {
  const rules = checkOptions(options);
  const doFetch = options.fetch ?? fetch;
  const cache = new VerifiedTokenCache(options.cacheSize ?? 10_000);
  const keys = new Map<string, { alg: string; key: KeyObject }>();
  const onError = options.onError ?? (() => undefined);
  const clock = options.now ?? Date.now;
  const cooldown = options.jwksCooldownMs ?? 30_000;
  const timers: NodeJS.Timeout[] = [];

  let remote: RemoteJWKSet | undefined;
  let lastAttempt = 0;
  let inflight: Promise<void> | undefined;
  if (options.secret !== undefined) {
    const secret = createSecretKey(Buffer.from(options.secret, 'utf8'));
    // HS256 tokens carry Signet's kid for the secret; any kid maps to the one secret.
    keys.set('*', { alg: 'HS256', key: secret });
  }
  if (rules.algorithms.some((a) => a !== 'HS256')) {
    const jwksUri = new URL(options.jwksUri ?? `${options.issuer}/.well-known/jwks.json`);
    remote = createRemoteJWKSet(jwksUri, {
      cooldownDuration: cooldown,
      cacheMaxAge: options.jwksMaxAgeMs ?? 5 * 60_000,
      ...(options.fetch ? { [customFetch]: options.fetch } : {}),
    });
  }

  /** One JWKS fetch at a time, however many requests ask. */
  const refreshKeys = (): Promise<void> =>
    (inflight ??= (async () => {
      lastAttempt = clock();
      try {
        await remote!.reload();
        for (const [kid, entry] of [...keys]) if (kid !== '*' && entry.alg !== 'HS256') keys.delete(kid);
        for (const jwk of remote!.jwks()?.keys ?? []) {
          if (typeof jwk.kid !== 'string' || typeof jwk.alg !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
          try {
            keys.set(jwk.kid, { alg: jwk.alg, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) });
          } catch (error) {
            onError(error as Error);
          }
        }
      } finally {
        inflight = undefined;
      }
    })());

  const resolve = (kid: string, alg: JwtAlgorithm): KeyObject | undefined => {
    const entry = alg === 'HS256' ? keys.get('*') : keys.get(kid);
    return entry && entry.alg === alg ? entry.key : undefined;
  };

  const revocations = options.revocation ? revocationPoller(options.revocation, options.issuer, doFetch, clock, onError) : undefined;
  if (revocations) timers.push(revocations.timer);

  async function verify(token: string): Promise<AccessTokenClaims> {
    if (revocations) await revocations.assertFresh();
    const now = () => Math.floor(clock() / 1000);
    let claims: AccessTokenClaims;
    try {
      claims = verifyCached(cache, token, rules, resolve, now());
    } catch (error) {
      // An unknown kid may be a key published after our last fetch (or none has
      // happened yet): fetch once, then not again within the cooldown, so a flood
      // of forged kids never becomes a flood of JWKS requests.
      if (!(error instanceof JwtVerificationError) || !error.unknownKid || !remote) throw error;
      if (lastAttempt !== 0 && clock() - lastAttempt < cooldown && !inflight) throw error;
      await refreshKeys();
      claims = verifyCached(cache, token, rules, resolve, now());
    }
    if (remote && !remote.fresh && !inflight) void refreshKeys().catch(onError);
    if (revocations?.has(claims.sid)) throw new JwtVerificationError('session ended');
    if (options.requiredScopes?.length) {
      const granted = new Set((typeof claims.scope === 'string' ? claims.scope : '').split(' '));
      if (!options.requiredScopes.every((s) => granted.has(s))) throw new InsufficientScopeError(options.requiredScopes);
    }
    if (options.requiredRoles?.length) {
      const held = rolesOf(claims);
      if (!options.requiredRoles.every((r) => held.includes(r))) throw new InsufficientRoleError(options.requiredRoles);
    }
    return claims;
  }

  async function verifyAuthorization(header: string | undefined | null): Promise<AccessTokenClaims> {
    const match = header ? /^(\S+)(?:\s+(.*))?$/.exec(header.trim()) : null;
    const token = match?.[2]?.trim();
    if (!match || match[1].toLowerCase() !== 'bearer' || !token) throw new MissingTokenError();
    return verify(token);
  }

  /** The answer to a refused request: status, headers (challenge or Retry-After) and Signet's error body. */
  const failure = (error: unknown): { status: number; headers: Record<string, string>; body: Record<string, unknown> } => {
    const base = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
    if (error instanceof RevocationUnavailableError) {
      return {
        status: 503,
        headers: { ...base, 'retry-after': '5' },
        body: { statusCode: 503, error: 'Service Unavailable', message: 'Session revocations cannot be checked right now; retry shortly', code: 'unavailable' },
      };
    }
    if (error instanceof InsufficientScopeError) {
      const scope = error.required.join(' ');
      return {
        status: 403,
        headers: { ...base, 'www-authenticate': `Bearer realm="signet", error="insufficient_scope", scope="${scope}"` },
        body: { statusCode: 403, error: 'Forbidden', message: 'The access token lacks a required scope', code: 'insufficient_scope' },
      };
    }
    if (error instanceof InsufficientRoleError) {
      return {
        status: 403,
        headers: { ...base, 'www-authenticate': 'Bearer realm="signet", error="insufficient_scope"' },
        body: { statusCode: 403, error: 'Forbidden', message: 'The access token lacks a required role', code: 'insufficient_role' },
      };
    }
    const missing = error instanceof MissingTokenError;
    if (!missing && !(error instanceof JwtVerificationError)) onError(error as Error);
    return {
      status: 401,
      headers: { ...base, 'www-authenticate': missing ? 'Bearer realm="signet"' : 'Bearer realm="signet", error="invalid_token"' },
      body: {
        statusCode: 401,
        error: 'Unauthorized',
        message: missing ? 'An access token is required' : 'The access token is invalid',
        code: missing ? 'missing_token' : 'invalid_token',
      },
    };
  };
  const header = (headers: Record<string, string | string[] | undefined>) => {
    const value = headers.authorization;
    return Array.isArray(value) ? value[0] : value;
  };

  const node = () => (req: NodeRequest, res: NodeResponse, next?: (error?: unknown) => void) => {
    verifyAuthorization(header(req.headers)).then(
      (claims) => {
        req.auth = claims;
        next?.();
      },
      (error: unknown) => {
        const f = failure(error);
        res.statusCode = f.status;
        for (const [name, value] of Object.entries(f.headers)) res.setHeader(name, value);
        res.end(JSON.stringify(f.body));
      },
    );
  };

  return {
    verify,
    verifyAuthorization,
    node,
    express: node,
    fastify: () => async (request, reply) => {
      try {
        request.auth = await verifyAuthorization(header(request.headers));
      } catch (error) {
        const f = failure(error);
        reply.code(f.status);
        for (const [name, value] of Object.entries(f.headers)) reply.header(name, value);
        reply.send(f.body);
      }
    },
    hono: () => async (c, next) => {
      try {
        c.set('auth', await verifyAuthorization(c.req.header('authorization')));
      } catch (error) {
        const f = failure(error);
        return new Response(JSON.stringify(f.body), { status: f.status, headers: f.headers });
      }
      await next();
      return undefined;
    },
    refresh: async () => {
      await Promise.all([remote ? refreshKeys() : undefined, revocations?.poll()]);
    },
    close: () => timers.forEach(clearInterval),
  };
}

/** Pages fetched in one poll at most; a longer backlog resumes at the next poll. */
const MAX_PAGES_PER_POLL = 100;
/** A stale verifier tries a poll of its own before refusing, at most this often. */
const STALE_RETRY_MS = 5000;

interface RevocationPoller {
  timer: NodeJS.Timeout;
  has(sid: string): boolean;
  poll(): Promise<void>;
  /** Resolves when the list is fresh enough to trust; rejects with RevocationUnavailableError otherwise. */
  assertFresh(): Promise<void>;
}

/**
 * Follows Signet's GET /auth/revocations: each poll asks for what ended after
 * the cursor of the last one, page by page, and keeps each id for the horizon
 * Signet gives (how long a token of that session can live). Nothing is ever
 * dropped to save space; the horizon bounds the list.
 */
function revocationPoller(
  settings: NonNullable<VerifierOptions['revocation']>,
  issuer: string,
  doFetch: typeof fetch,
  clock: () => number,
  onError: (error: Error) => void,
): RevocationPoller {
  const base = new URL(settings.url ?? `${issuer}/auth/revocations`);
  const interval = settings.intervalMs ?? 30_000;
  const maxStaleness = settings.maxStalenessMs ?? 2 * interval + 30_000;
  const revoked = new Map<string, number>();
  let cursor: string | undefined;
  let freshAt: number | undefined;
  let lastTry = 0;
  let inflight: Promise<void> | undefined;

  const page = async (): Promise<boolean> => {
    const url = new URL(base);
    if (cursor !== undefined) url.searchParams.set('since', cursor);
    const response = await doFetch(url, { headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`revocation list: HTTP ${response.status}`);
    const body = (await response.json()) as { sessions?: unknown; horizon?: unknown; cursor?: unknown; complete?: unknown };
    if (!Array.isArray(body.sessions) || typeof body.horizon !== 'number' || typeof body.cursor !== 'string' || typeof body.complete !== 'boolean') {
      throw new Error('revocation list: malformed body');
    }
    const until = clock() + body.horizon * 1000;
    for (const sid of body.sessions) if (typeof sid === 'string') revoked.set(sid, until);
    cursor = body.cursor;
    return body.complete;
  };

  const poll = (): Promise<void> =>
    (inflight ??= (async () => {
      lastTry = clock();
      try {
        const started = clock();
        for (let i = 0; i < MAX_PAGES_PER_POLL; i++) {
          if (await page()) {
            freshAt = started;
            break;
          }
        }
        const now = clock();
        for (const [sid, until] of revoked) if (until <= now) revoked.delete(sid);
      } finally {
        inflight = undefined;
      }
    })());

  const initial = poll().catch(onError);
  const timer = setInterval(() => void poll().catch(onError), interval);
  timer.unref();

  const stale = () => freshAt === undefined || clock() - freshAt > maxStaleness;
  return {
    timer,
    has: (sid) => revoked.has(sid),
    poll,
    async assertFresh() {
      await initial;
      if (!stale()) return;
      if (inflight) await inflight.catch(() => undefined);
      else if (clock() - lastTry >= STALE_RETRY_MS) await poll().catch(onError);
      if (stale()) throw new RevocationUnavailableError(freshAt === undefined ? undefined : clock() - freshAt);
    },
  };
}

function checkOptions(options: VerifierOptions): JwtRules {
  // Caller mistakes are TypeErrors: a verifier must pin issuer, audience and algorithms.
  if (!options || typeof options.issuer !== 'string' || options.issuer === '') throw new TypeError('createVerifier: `issuer` is required');
  if (typeof options.audience !== 'string' || options.audience === '') throw new TypeError('createVerifier: `audience` is required');
  if (!Array.isArray(options.algorithms) || options.algorithms.length === 0) throw new TypeError('createVerifier: `algorithms` is required (e.g. ["RS256"])');
  for (const alg of options.algorithms) if (!ALGORITHMS.includes(alg)) throw new TypeError(`createVerifier: unsupported algorithm "${String(alg)}"`);
  if (options.algorithms.includes('HS256') && !options.secret) throw new TypeError('createVerifier: HS256 needs `secret`');
  if (options.secret !== undefined && Buffer.byteLength(options.secret) < 32) throw new TypeError('createVerifier: `secret` must be at least 32 bytes');
  const leeway = options.leeway ?? 30;
  if (!(leeway >= 0 && leeway <= 60)) throw new TypeError('createVerifier: `leeway` must be between 0 and 60 seconds');
  return {
    issuer: options.issuer,
    audience: options.audience,
    algorithms: [...options.algorithms],
    leeway,
    requiredClaims: options.requiredClaims ?? ['sid'],
  };
}
