import { SignetError } from '../../errors.js';
import { UUID_PATTERN } from '../../core/crypto.js';
import { toPublicUser } from '../../core/users.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { SessionList, UserResponse } from '../schemas.js';

export const meRoute = route({
  method: 'GET',
  path: '/auth/me',
  tag: 'Account',
  summary: 'The signed-in user',
  auth: 'bearer',
  success: { status: 200, description: 'The user', schema: UserResponse },
  handle: (c) => json({ user: toPublicUser(c.var.auth.user) }),
});

export const listSessionsRoute = route({
  method: 'GET',
  path: '/auth/sessions',
  tag: 'Sessions',
  summary: "The user's live sessions",
  auth: 'bearer',
  success: { status: 200, description: 'Live sessions, most recently used first', schema: SessionList },
  handle: async (c) => {
    const { auth, services } = c.var;
    const sessions = await services.sessions.list(auth.user.id);
    return json({
      sessions: sessions.map((s) => ({
        id: s.id,
        createdAt: s.createdAt.toISOString(),
        lastUsedAt: s.lastUsedAt.toISOString(),
        userAgent: s.userAgent,
        ip: s.ip,
        current: s.id === auth.session.id,
      })),
    });
  },
});

export const endSessionRoute = route({
  method: 'DELETE',
  path: '/auth/sessions/:id',
  tag: 'Sessions',
  summary: 'End one of the user’s sessions',
  auth: 'bearer',
  success: { status: 204, description: 'Session ended' },
  errors: ['session_not_found'],
  handle: async (c) => {
    const { auth, services } = c.var;
    const id = c.req.param('id');
    // Another user's session, an ended one and a malformed id all look the same.
    const owned = UUID_PATTERN.test(id ?? '') && (await services.sessions.list(auth.user.id)).some((s) => s.id === id);
    if (!owned || !(await services.sessions.end(id!, 'revoked'))) throw new SignetError('session_not_found');
    return new Response(null, { status: 204 });
  },
});
