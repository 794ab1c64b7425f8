import { z } from 'zod';
import type { SigningKey } from '../../core/keys.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { actor } from './users.js';

const TAG = 'Admin';

function keyView(key: SigningKey) {
  return { kid: key.kid, alg: key.alg, state: key.state, activatesAt: new Date(key.activatesAt).toISOString() };
}

const SigningKeyList = z
  .object({ keys: z.array(z.object({ kid: z.string(), alg: z.string(), state: z.enum(['next', 'active', 'retiring']), activatesAt: z.string() })) })
  .meta({ id: 'SigningKeyList' });

const AuditList = z
  .object({
    events: z.array(
      z.object({ seq: z.number().int(), at: z.string(), event: z.string(), ip: z.string().nullable(), sessionId: z.string().nullable(), details: z.unknown() }),
    ),
  })
  .meta({ id: 'AdminAuditList' });

export const adminOperationRoutes = [
  route({
    method: 'GET',
    path: '/admin/keys',
    tag: TAG,
    summary: 'Signing keys and their states',
    auth: 'admin-read',
    success: { status: 200, description: 'Keys', schema: SigningKeyList },
    handle: (c) => json({ keys: c.var.services.keyring.list().map(keyView) }),
  }),
  route({
    method: 'POST',
    path: '/admin/keys/rotate',
    tag: TAG,
    summary: 'Publish a new signing key; it signs after KEY_ROTATION_OVERLAP seconds',
    auth: 'admin-write',
    success: { status: 200, description: 'Keys after the rotation', schema: SigningKeyList },
    errors: ['insufficient_scope'],
    handle: async (c) => {
      const { keyring, audit } = c.var.services;
      const key = await keyring.rotate();
      audit.record('admin.key_rotated', { kid: key.kid, actor: actor(c) });
      return json({ keys: keyring.list().map(keyView) });
    },
  }),
  route({
    method: 'GET',
    path: '/admin/audit',
    tag: TAG,
    summary: "A user's security events, newest first",
    auth: 'admin-read',
    query: z.object({ user: z.string().min(1).max(254), limit: z.coerce.number().int().min(1).max(1000).optional() }),
    success: { status: 200, description: 'Events', schema: AuditList },
    errors: ['validation_failed', 'user_not_found'],
    handle: async (c, _body, q) => {
      const { admin, audit } = c.var.services;
      const user = await admin.users.get(q.user);
      const entries = await audit.forUser(user.id, { limit: q.limit ?? 50 });
      return json({
        events: entries.map((e) => ({ seq: e.seq, at: new Date(e.at).toISOString(), event: e.event, ip: e.ip, sessionId: e.sessionId, details: e.details })),
      });
    },
  }),
];
