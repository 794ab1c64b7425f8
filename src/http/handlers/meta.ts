import { z } from 'zod';
import { SignetError } from '../../errors.js';
import { parseRevocationCursor } from '../../core/sessions.js';
import type { Metrics } from '../../metrics.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { Jwks, RevocationList, Status } from '../schemas.js';

export const jwksRoute = route({
  method: 'GET',
  path: '/.well-known/jwks.json',
  tag: 'Discovery',
  summary: 'Public keys that may have signed a live access token, and the next key',
  auth: 'none',
  success: { status: 200, description: 'JWK Set (RFC 7517)', schema: Jwks, contentType: 'application/jwk-set+json' },
  handle: (c) => {
    const { keyring, config } = c.var.services;
    // A new key is published KEY_ROTATION_OVERLAP seconds before it signs; caching for
    // at most a quarter of that means every verifier has it before its first token.
    const maxAge = Math.min(300, Math.floor(config.keyRotationOverlap / 4));
    return json(keyring.jwks(), 200, {
      'content-type': 'application/jwk-set+json',
      'cache-control': `public, max-age=${maxAge}`,
    });
  },
});

export const healthRoute = route({
  method: 'GET',
  path: '/healthz',
  tag: 'Operations',
  summary: 'Liveness: 200 while the process serves',
  auth: 'none',
  success: { status: 200, description: 'Serving', schema: Status },
  handle: () => json({ status: 'ok' }),
});

export const readyRoute = route({
  method: 'GET',
  path: '/readyz',
  tag: 'Operations',
  summary: 'Readiness: 200 when storage answers, 503 otherwise and while the server drains for shutdown',
  auth: 'none',
  success: { status: 200, description: 'Ready', schema: Status },
  errors: ['unavailable'],
  handle: async (c) => {
    // A load balancer stops sending here while in-flight requests finish (see server.ts).
    if (c.var.services.readiness.draining) throw new SignetError('unavailable', { message: 'The server is shutting down', retryAfter: 1 });
    await c.var.services.db.ping();
    return json({ status: 'ok' });
  },
});

export const revocationsRoute = route({
  method: 'GET',
  path: '/auth/revocations',
  tag: 'Sessions',
  summary: 'Sessions ended while their access tokens may still be unexpired (polled by signet/verify), a page at a time',
  auth: 'none',
  query: z.object({
    since: z.string().max(64).optional().meta({ description: 'The `cursor` of the previous answer: only sessions ended after it' }),
  }),
  success: { status: 200, description: 'Ids of recently ended sessions', schema: RevocationList },
  errors: ['rate_limited'],
  limit: 'revocations.ip',
  handle: async (c, _body, query) => {
    const cursor = query.since === undefined ? undefined : parseRevocationCursor(query.since);
    if (query.since !== undefined && cursor === undefined) {
      throw new SignetError('validation_failed', { details: [{ field: 'since', message: 'must be a cursor from an earlier answer' }] });
    }
    return json(await c.var.services.sessions.revocations(cursor));
  },
});

export const metricsRoute = route({
  method: 'GET',
  path: '/metrics',
  tag: 'Operations',
  summary: 'Prometheus metrics (text format 0.0.4); needs METRICS_TOKEN as a Bearer token, and is not served here without one (see METRICS_PORT)',
  auth: 'operator',
  success: { status: 200, description: 'Metrics', contentType: 'text/plain; version=0.0.4' },
  handle: (c) => metricsResponse(c.var.services.metrics),
});

/** The metrics document, for this route and for the METRICS_PORT listener. */
export function metricsResponse(metrics: Metrics): Response {
  return new Response(metrics.render(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' } });
}
