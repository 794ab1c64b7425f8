import { z } from 'zod';
import { adminUserView } from '../../core/admin/users.js';
import type { UserUpdate } from '../../core/admin/users.js';
import type { Session } from '../../model.js';
import { json } from '../context.js';
import type { AppContext } from '../context.js';
import { route } from '../route.js';
import { email, name, username } from '../schemas.js';

/** The audit actor of an admin request. */
export function actor(c: AppContext): string {
  return `admin_key:${c.var.adminKey.id}`;
}

const noContent = () => new Response(null, { status: 204 });
const TAG = 'Admin';

export const AdminUser = z
  .object({
    id: z.string(),
    email: z.string(),
    emailVerified: z.boolean(),
    username: z.string().nullable(),
    name: z.string().nullable(),
    mfaEnabled: z.boolean(),
    disabled: z.boolean(),
    disabledAt: z.string().nullable().meta({ format: 'date-time' }),
    roles: z.array(z.string()),
    appMetadata: z.record(z.string(), z.unknown()),
    createdAt: z.string().meta({ format: 'date-time' }),
    updatedAt: z.string().meta({ format: 'date-time' }),
  })
  .meta({ id: 'AdminUser' });
const AdminUserResponse = z.object({ user: AdminUser }).meta({ id: 'AdminUserResponse' });
const AdminUserPage = z.object({ users: z.array(AdminUser), nextCursor: z.string().nullable() }).meta({ id: 'AdminUserPage' });

const yesNo = z.enum(['true', 'false']).transform((v) => v === 'true');
const isoDate = z.iso
  .datetime({ offset: true })
  .or(z.iso.date())
  .transform((v) => new Date(v));
const roles = z.array(z.string()).max(64).meta({ description: 'Role names: at most 10, each 1–32 of a-z 0-9 _ . : - starting with a letter' });
const appMetadata = z.record(z.string(), z.unknown()).meta({ description: 'A JSON object of at most 1024 bytes, 4 levels deep' });

const listQuery = z.object({
  email: z.string().max(254).optional().meta({ description: 'Email starts with (case-insensitive)' }),
  username: z.string().max(32).optional().meta({ description: 'Username starts with (case-insensitive)' }),
  search: z.string().min(1).max(254).optional().meta({ description: 'Email or username contains (reads every row)' }),
  createdFrom: isoDate.optional(),
  createdTo: isoDate.optional(),
  verified: yesNo.optional(),
  mfa: yesNo.optional(),
  disabled: yesNo.optional(),
  role: z.string().max(32).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().max(300).optional().meta({ description: 'The nextCursor of the previous page' }),
});

const createBody = z.object({
  email,
  username: username.optional(),
  name: name.optional(),
  password: z.string().max(1024).optional(),
  passwordHash: z.string().max(512).optional().meta({ description: 'An existing bcrypt ($2a$/$2b$/$2y$) or Argon2 PHC hash, instead of password' }),
  emailVerified: z.boolean().optional(),
  roles: roles.optional(),
  appMetadata: appMetadata.optional(),
});

const updateBody = z.object({
  email: email.optional(),
  username: username.nullable().optional(),
  name: name.nullable().optional(),
  emailVerified: z.boolean().optional(),
  roles: roles.optional(),
  appMetadata: appMetadata.optional(),
  disabled: z.boolean().optional().meta({ description: 'true disables (refuses sign-in, ends every session); false enables' }),
});

const passwordBody = z.object({ password: z.string().max(1024) });

function sessionView(s: Session) {
  return {
    id: s.id,
    createdAt: s.createdAt.toISOString(),
    lastUsedAt: s.lastUsedAt.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    userAgent: s.userAgent,
    ip: s.ip,
    clientId: s.clientId,
    amr: s.amr,
  };
}
const AdminSessionList = z
  .object({
    sessions: z.array(
      z.object({
        id: z.string(),
        createdAt: z.string(),
        lastUsedAt: z.string(),
        expiresAt: z.string(),
        userAgent: z.string().nullable(),
        ip: z.string().nullable(),
        clientId: z.string().nullable(),
        amr: z.array(z.string()),
      }),
    ),
  })
  .meta({ id: 'AdminSessionList' });

export const adminUserRoutes = [
  route({
    method: 'GET',
    path: '/admin/users',
    tag: TAG,
    summary: 'Users newest first, filtered, a page at a time (keyset cursor)',
    auth: 'admin-read',
    query: listQuery,
    success: { status: 200, description: 'A page of users', schema: AdminUserPage },
    errors: ['validation_failed'],
    handle: async (c, _body, q) => {
      const page = await c.var.services.admin.users.list(
        {
          emailPrefix: q.email,
          usernamePrefix: q.username,
          contains: q.search,
          createdFrom: q.createdFrom,
          createdTo: q.createdTo,
          verified: q.verified,
          mfa: q.mfa,
          disabled: q.disabled,
          role: q.role,
        },
        { limit: q.limit, cursor: q.cursor },
      );
      return json({ users: page.users.map(adminUserView), nextCursor: page.nextCursor });
    },
  }),
  route({
    method: 'POST',
    path: '/admin/users',
    tag: TAG,
    summary: 'Create a user with a password or an existing bcrypt/Argon2 hash',
    auth: 'admin-write',
    body: createBody,
    success: { status: 201, description: 'Created', schema: AdminUserResponse },
    errors: ['validation_failed', 'weak_password', 'email_taken', 'username_taken', 'insufficient_scope'],
    handle: async (c, body) => json({ user: adminUserView(await c.var.services.admin.users.create(body, actor(c))) }, 201),
  }),
  route({
    method: 'GET',
    path: '/admin/users/:id',
    tag: TAG,
    summary: 'One user by id, email or username',
    auth: 'admin-read',
    success: { status: 200, description: 'The user', schema: AdminUserResponse },
    errors: ['user_not_found'],
    handle: async (c) => json({ user: adminUserView(await c.var.services.admin.users.get(c.req.param('id')!)) }),
  }),
  route({
    method: 'PATCH',
    path: '/admin/users/:id',
    tag: TAG,
    summary: 'Change a user: email, username, name, verified, roles, app data, disabled',
    auth: 'admin-write',
    body: updateBody,
    success: { status: 200, description: 'The user as changed', schema: AdminUserResponse },
    errors: ['user_not_found', 'validation_failed', 'email_taken', 'username_taken', 'insufficient_scope'],
    handle: async (c, body) => {
      const admin = c.var.services.admin.users;
      const { disabled, ...fields } = body;
      const id = (await admin.get(c.req.param('id')!)).id;
      const update: UserUpdate = fields;
      let user = Object.values(update).some((v) => v !== undefined) ? await admin.update(id, update, actor(c)) : await admin.get(id);
      if (disabled !== undefined && disabled !== (user.disabledAt !== null)) user = await admin.setDisabled(id, disabled, actor(c));
      return json({ user: adminUserView(user) });
    },
  }),
  route({
    method: 'DELETE',
    path: '/admin/users/:id',
    tag: TAG,
    summary: 'End every session of a user, then delete the user and all of its data',
    auth: 'admin-write',
    success: { status: 204, description: 'Deleted' },
    errors: ['user_not_found', 'insufficient_scope'],
    handle: async (c) => {
      await c.var.services.admin.users.remove(c.req.param('id')!, actor(c));
      return noContent();
    },
  }),
  route({
    method: 'POST',
    path: '/admin/users/:id/password',
    tag: TAG,
    summary: 'Set a new password (Argon2id) and end every session of the user',
    auth: 'admin-write',
    body: passwordBody,
    success: { status: 200, description: 'The user', schema: AdminUserResponse },
    errors: ['user_not_found', 'validation_failed', 'weak_password', 'insufficient_scope'],
    handle: async (c, body) => json({ user: adminUserView(await c.var.services.admin.users.setPassword(c.req.param('id')!, body.password, actor(c))) }),
  }),
  route({
    method: 'POST',
    path: '/admin/users/:id/unlock',
    tag: TAG,
    summary: "Clear the failed sign-ins throttling a user's account",
    auth: 'admin-write',
    success: { status: 200, description: 'The user', schema: AdminUserResponse },
    errors: ['user_not_found', 'insufficient_scope'],
    handle: async (c) => json({ user: adminUserView(await c.var.services.admin.users.unlock(c.req.param('id')!, actor(c))) }),
  }),
  route({
    method: 'GET',
    path: '/admin/users/:id/sessions',
    tag: TAG,
    summary: "A user's live sessions",
    auth: 'admin-read',
    success: { status: 200, description: 'Live sessions', schema: AdminSessionList },
    errors: ['user_not_found'],
    handle: async (c) => json({ sessions: (await c.var.services.admin.users.sessionsOf(c.req.param('id')!)).map(sessionView) }),
  }),
  route({
    method: 'DELETE',
    path: '/admin/users/:id/sessions',
    tag: TAG,
    summary: 'End every session of a user (back-channel logout fires)',
    auth: 'admin-write',
    success: { status: 200, description: 'How many ended', schema: z.object({ revoked: z.number().int() }) },
    errors: ['user_not_found', 'insufficient_scope'],
    handle: async (c) => json({ revoked: await c.var.services.admin.users.revokeAllSessions(c.req.param('id')!, actor(c)) }),
  }),
  route({
    method: 'DELETE',
    path: '/admin/sessions/:id',
    tag: TAG,
    summary: 'End one session (and the client grants under it)',
    auth: 'admin-write',
    success: { status: 204, description: 'Ended' },
    errors: ['session_not_found', 'insufficient_scope'],
    handle: async (c) => {
      await c.var.services.admin.users.revokeSession(c.req.param('id')!, actor(c));
      return noContent();
    },
  }),
];
