import { z } from 'zod';
import type { ZodType } from 'zod';
import type { ErrorCode } from '../errors.js';
import { ERROR_CATALOG, publicCode } from '../errors.js';
import type { Route } from './route.js';
import { ErrorBody } from './schemas.js';

const GENERAL_ERRORS: ErrorCode[] = ['not_found', 'method_not_allowed', 'rate_limited', 'unavailable', 'internal_error'];
const BODY_ERRORS: ErrorCode[] = ['invalid_json', 'validation_failed', 'payload_too_large', 'unsupported_media_type'];
const BEARER_ERRORS: ErrorCode[] = ['missing_token', 'invalid_token'];

const REF = (id: string) => `#/components/schemas/${id}`;

function jsonSchema(schema: ZodType, io: 'input' | 'output'): unknown {
  const out = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any', reused: 'inline', cycles: 'ref' });
  // Shared schemas (those with a meta id) move from $defs to components.
  return JSON.parse(JSON.stringify(out).replaceAll('"#/$defs/', '"#/components/schemas/')) as unknown;
}

/**
 * OpenAPI 3.1 built from the route table: request bodies from the schemas that
 * validate them, responses from the documented shapes.
 */
export function openApiDocument(routes: readonly Route[], info: { serverUrl: string; version: string }): Record<string, unknown> {
  const schemas: Record<string, unknown> = {};
  const collect = (schema: ZodType, io: 'input' | 'output'): unknown => {
    const out = jsonSchema(schema, io) as Record<string, unknown> & { $defs?: Record<string, unknown> };
    const { $defs, ...rest } = out;
    delete rest.$schema;
    Object.assign(schemas, $defs ?? {});
    const id = z.globalRegistry.get(schema)?.id;
    if (typeof id === 'string') {
      schemas[id] = rest;
      return { $ref: REF(id) };
    }
    return rest;
  };
  const errorRef = collect(ErrorBody, 'output');

  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes.filter((row) => (row.kind ?? 'api') === 'api')) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const codes = [...(r.errors ?? []), ...(r.body ? BODY_ERRORS : []), ...(r.auth !== 'none' ? BEARER_ERRORS : []), ...GENERAL_ERRORS];
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of new Set(codes)) byStatus.set(ERROR_CATALOG[code].status, [...(byStatus.get(ERROR_CATALOG[code].status) ?? []), code]);
    const responses: Record<string, unknown> = {
      [r.success.status]: {
        description: r.success.description,
        ...(r.success.schema ? { content: { [r.success.contentType ?? 'application/json']: { schema: collect(r.success.schema, 'output') } } } : {}),
      },
    };
    for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[status] = {
        description: `Error codes: ${[...new Set(list.map(publicCode))].join(', ')}`,
        content: { 'application/json': { schema: errorRef }, 'application/problem+json': { schema: { type: 'object' } } },
      };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(\w)?/g, (_, ch: string | undefined) => (ch ?? '').toUpperCase())}`,
      ...(r.path.includes(':') || r.query ? { parameters: parameters(r, (schema) => collect(schema, 'input')) } : {}),
      ...(r.auth === 'admin-read' || r.auth === 'admin-write'
        ? { security: [{ adminKey: [] }] }
        : r.auth === 'bearer' || r.auth === 'operator'
          ? { security: [{ bearer: [] }] }
          : r.auth === 'bearer-or-body'
            ? { security: [{ bearer: [] }, {}] }
            : {}),
      ...(r.body
        ? {
            requestBody: {
              required: !r.bodyOptional,
              content: Object.fromEntries((r.bodyContentTypes ?? ['application/json']).map((t) => [t, { schema: collect(r.body!, 'input') }])),
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Signet',
      version: info.version,
      description: 'Self-hosted sign-in service. Error bodies follow the contract; every error has a stable `code`.',
    },
    servers: [{ url: info.serverUrl }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        adminKey: { type: 'http', scheme: 'bearer', description: 'An admin API key (`signet admin-keys create`), sgn_admin_…' },
      },
    },
  };
}

/** Path parameters from the pattern, query parameters from the row's query schema. */
function parameters(r: Route, collect: (schema: ZodType) => unknown): unknown[] {
  const path = [...r.path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const shape = (r.query?.shape ?? {}) as Record<string, ZodType>;
  const query = Object.entries(shape).map(([name, schema]) => ({
    name,
    in: 'query',
    required: !schema.safeParse(undefined).success,
    ...(schema.description ? { description: schema.description } : {}),
    schema: collect(schema),
  }));
  return [...path, ...query];
}
