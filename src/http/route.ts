import type { ZodObject, ZodType, z } from 'zod';
import type { ErrorCode, FieldError } from '../errors.js';
import type { AppContext } from './context.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** One row of the route table: documentation and behaviour in one place. */
export interface Route<S extends ZodType | undefined = ZodType | undefined, Q extends ZodObject | undefined = ZodObject | undefined> {
  method: Method;
  /** Hono pattern, e.g. `/auth/sessions/:id`. */
  path: string;
  summary: string;
  tag: string;
  /** `operator`: the METRICS_TOKEN as a Bearer token (the route is not found when none is configured). */
  auth: 'none' | 'bearer' | 'bearer-or-body' | 'operator';
  /** Validated before the handler runs; also the documented request body. */
  body?: S;
  /** Query parameters, validated like a body (every bad one reported) and documented. */
  query?: Q;
  bodyOptional?: boolean;
  /** `custom`: the handler reads the body itself (the OAuth token endpoint); `body` then only documents it. */
  bodyMode?: 'json' | 'custom';
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
