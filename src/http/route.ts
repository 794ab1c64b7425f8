import type { ZodObject, ZodType, z } from 'zod';
import type { LimitName } from '../core/limits.js';
import type { ErrorCode, FieldError } from '../errors.js';
import type { AppContext } from './context.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * Who may call a row, checked by the dispatcher before the handler runs:
 * - `none`: anyone;
 * - `bearer`: an access token (the Authorization header, or the access cookie, whose state-changing
 *   requests then need the session's CSRF token);
 * - `bearer-or-body`: as `bearer` when a token is sent, else the handler reads a refresh token;
 * - `operator`: the METRICS_TOKEN as a Bearer token (not found when none is configured);
 * - `page`: a hosted page for a signed-in user: the session cookies, refreshed on the server when the
 *   access cookie has expired; without a session the browser is sent to the sign-in page;
 * - `admin-read` / `admin-write`: an admin API key (`signet admin-keys create`) as a Bearer token, of
 *   either scope / of the write scope; never an access token or a cookie. Not found while no key exists.
 */
export type RouteAuth = 'none' | 'bearer' | 'bearer-or-body' | 'operator' | 'page' | 'admin-read' | 'admin-write';

/**
 * Cross-site request forgery rules a row needs beyond what its `auth` implies:
 * - `cookie-mode`: starting a cookie session (`X-Session-Mode: cookie`) only from an allowed origin (login CSRF);
 * - `refresh-cookie`: a refresh token taken from its cookie needs the session's CSRF token;
 * - `form`: a hosted page's form post: same origin, and the form's CSRF token;
 * - `cross-site`: an OpenID Connect endpoint other sites post to by design (authorize, end session): the form
 *   is read without the same-origin check; it acts only on what the request itself proves (an ID token hint)
 *   or once the user confirms on a Signet page.
 */
export type RouteCsrf = 'cookie-mode' | 'refresh-cookie' | 'form' | 'cross-site';

/** One row of the route table: documentation and behaviour in one place. */
export interface Route<S extends ZodType | undefined = ZodType | undefined, Q extends ZodObject | undefined = ZodObject | undefined> {
  method: Method;
  /** Hono pattern, e.g. `/auth/sessions/:id`. */
  path: string;
  summary: string;
  tag: string;
  auth: RouteAuth;
  /** `page`: an HTML page of the hosted UI (errors answer as pages; not in OpenAPI); `asset`: a static file. Default `api`. */
  kind?: 'api' | 'page' | 'asset';
  /** A per-client budget the dispatcher spends (after the body rules) before the handler; `429` past it. */
  limit?: LimitName;
  csrf?: RouteCsrf;
  /** Validated before the handler runs; also the documented request body. */
  body?: S;
  /** Query parameters, validated like a body (every bad one reported) and documented. */
  query?: Q;
  bodyOptional?: boolean;
  /**
   * `custom`: the handler reads the body itself (the OAuth token endpoint; `body` then only documents
   * it); `form`: an HTML form post, given to the handler as URLSearchParams.
   */
  bodyMode?: 'json' | 'custom' | 'form';
  /** Media types documented for the body (default JSON only). */
  bodyContentTypes?: string[];
  /** Cross-field rules on the raw body, reported together with the schema's errors. */
  crossCheck?: (raw: Record<string, unknown>) => FieldError[];
  success: { status: number; description: string; schema?: ZodType; contentType?: string };
  /** Route-specific errors (general ones are documented for every route). */
  errors?: ErrorCode[];
  handle: (
    c: AppContext,
    body: S extends ZodType ? z.output<S> : undefined,
    query: Q extends ZodObject ? z.output<Q> : Record<string, never>,
  ) => Promise<Response> | Response;
}

/** Typed constructor for a row: ties the handler's body and query types to their schemas. */
export function route<S extends ZodType | undefined = undefined, Q extends ZodObject | undefined = undefined>(spec: Route<S, Q>): Route {
  return spec;
}
