import { z } from 'zod';
import type { AuditLog } from '../../core/audit.js';
import { SignetError } from '../../errors.js';
import type { FieldError } from '../../errors.js';
import { json } from '../context.js';
import { route } from '../route.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
const DIGITS = /^[0-9]{1,15}$/;

export const AuditEvents = z
  .object({
    events: z.array(
      z.object({
        seq: z.number().int().meta({ description: 'Position in the log; pass as `before` for the next page' }),
        id: z.string(),
        at: z.string().meta({ format: 'date-time' }),
        event: z.string().meta({ example: 'auth.signin_failed' }),
        ip: z.string().nullable(),
        details: z.record(z.string(), z.unknown()),
      }),
    ),
  })
  .meta({ id: 'AuditEvents' });

/** `?limit=` (1–100, default 50) and `?before=<seq>`; every bad value is reported at once. */
function pageQuery(query: { limit?: string | undefined; before?: string | undefined }): { limit: number; before: number | undefined } {
  const errors: FieldError[] = [];
  let limit = DEFAULT_LIMIT;
  let before: number | undefined;
  if (query.limit !== undefined) {
    limit = DIGITS.test(query.limit) ? Number(query.limit) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) errors.push({ field: 'limit', message: `must be an integer from 1 to ${MAX_LIMIT}` });
  }
  if (query.before !== undefined) {
    before = DIGITS.test(query.before) ? Number(query.before) : NaN;
    if (!(before >= 1)) errors.push({ field: 'before', message: 'must be a positive integer (the seq of an earlier event)' });
  }
  if (errors.length > 0) throw new SignetError('validation_failed', { details: errors });
  return { limit, before };
}

/**
 * GET /auth/audit: the signed-in user's own security events, newest first. Takes
 * the log itself (as `signUpRoute` takes its setting) so the handler depends on
 * nothing but what it uses.
 */
export function auditRoute(audit: AuditLog) {
  return route({
    method: 'GET',
    path: '/auth/audit',
    tag: 'Account',
    summary:
      "The signed-in user's security events (sign-ins, password changes, sessions), newest first; `?limit=` 1–100 (default 50), `?before=<seq>` for the next page",
    auth: 'bearer',
    success: { status: 200, description: 'Events, newest first', schema: AuditEvents },
    errors: ['validation_failed'],
    handle: async (c) => {
      const page = pageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
      const entries = await audit.forUser(c.var.auth.user.id, page);
      return json({
        events: entries.map((e) => ({ seq: e.seq, id: e.id, at: new Date(e.at).toISOString(), event: e.event, ip: e.ip, details: e.details })),
      });
    },
  });
}
