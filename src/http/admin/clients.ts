import { z } from 'zod';
import { SignetError } from '../../errors.js';
import { clientView } from '../../core/admin/client-view.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { actor } from './users.js';

const TAG = 'Admin';
const uris = z.array(z.string().max(2000)).max(10);
const fields = {
  name: z.string().min(1).max(100),
  redirectUris: uris,
  postLogoutRedirectUris: uris.optional(),
  backchannelLogoutUri: z.string().max(2000).nullable().optional(),
  firstParty: z.boolean().optional(),
  scopes: z.array(z.string().max(64)).max(10).optional(),
  grantTypes: z.array(z.string().max(64)).max(5).optional(),
  resources: uris.optional(),
  accessTokenTtl: z.number().int().positive().nullable().optional(),
  refreshTokenTtl: z.number().int().positive().nullable().optional(),
};
const createBody = z.object({
  ...fields,
  id: z.string().max(64).optional(),
  type: z.enum(['public', 'confidential']),
  authMethod: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
});
const updateBody = z.object({ ...fields, name: fields.name.optional(), redirectUris: uris.optional() });
const Client = z.record(z.string(), z.unknown()).meta({ id: 'AdminClient', description: 'A registered client (docs/oidc.md), never its secret' });

export const adminClientRoutes = [
  route({
    method: 'GET',
    path: '/admin/clients',
    tag: TAG,
    summary: 'Registered OpenID Connect clients',
    auth: 'admin-read',
    success: { status: 200, description: 'Clients', schema: z.object({ clients: z.array(Client) }) },
    handle: async (c) => json({ clients: (await c.var.services.oidc.clients.list()).map(clientView) }),
  }),
  route({
    method: 'POST',
    path: '/admin/clients',
    tag: TAG,
    summary: 'Register a client; a confidential client’s secret is in this answer only',
    auth: 'admin-write',
    body: createBody,
    success: { status: 201, description: 'Registered', schema: z.object({ client: Client, secret: z.string().optional() }) },
    errors: ['validation_failed', 'insufficient_scope'],
    handle: async (c, body) => {
      const { client, secret } = await c.var.services.oidc.clients.register(body);
      c.var.services.audit.record('admin.client_registered', { clientId: client.id, actor: actor(c) });
      return json({ client: clientView(client), ...(secret ? { secret } : {}) }, 201);
    },
  }),
  route({
    method: 'GET',
    path: '/admin/clients/:id',
    tag: TAG,
    summary: 'One registered client',
    auth: 'admin-read',
    success: { status: 200, description: 'The client', schema: z.object({ client: Client }) },
    errors: ['not_found'],
    handle: async (c) => {
      const client = await c.var.services.oidc.clients.get(c.req.param('id')!);
      if (!client) throw new SignetError('not_found', { message: 'No such client' });
      return json({ client: clientView(client) });
    },
  }),
  route({
    method: 'PATCH',
    path: '/admin/clients/:id',
    tag: TAG,
    summary: 'Change a client; `disabled` refuses it everywhere and ends its grants',
    auth: 'admin-write',
    body: updateBody.extend({ disabled: z.boolean().optional() }),
    success: { status: 200, description: 'The client as changed', schema: z.object({ client: Client }) },
    errors: ['not_found', 'validation_failed', 'insufficient_scope'],
    handle: async (c, body) => {
      const { clients } = c.var.services.oidc;
      const id = c.req.param('id')!;
      const { disabled, ...changes } = body;
      let client = Object.values(changes).some((v) => v !== undefined) ? await clients.update(id, changes) : await clients.get(id);
      if (!client) throw new SignetError('not_found', { message: 'No such client' });
      if (disabled !== undefined) client = await clients.setDisabled(id, disabled);
      c.var.services.audit.record('admin.client_updated', { clientId: id, actor: actor(c) });
      return json({ client: clientView(client) });
    },
  }),
  route({
    method: 'POST',
    path: '/admin/clients/:id/secret',
    tag: TAG,
    summary: 'Replace a confidential client’s secret at once; the new one is in this answer only',
    auth: 'admin-write',
    success: { status: 200, description: 'The new secret', schema: z.object({ secret: z.string() }) },
    errors: ['not_found', 'validation_failed', 'insufficient_scope'],
    handle: async (c) => {
      const id = c.req.param('id')!;
      const secret = await c.var.services.oidc.clients.rotateSecret(id);
      c.var.services.audit.record('admin.client_secret_rotated', { clientId: id, actor: actor(c) });
      return json({ secret });
    },
  }),
  route({
    method: 'DELETE',
    path: '/admin/clients/:id',
    tag: TAG,
    summary: 'Delete a client, its grants and its users’ consents',
    auth: 'admin-write',
    success: { status: 204, description: 'Removed' },
    errors: ['not_found', 'insufficient_scope'],
    handle: async (c) => {
      const id = c.req.param('id')!;
      await c.var.services.oidc.clients.remove(id);
      c.var.services.audit.record('admin.client_removed', { clientId: id, actor: actor(c) });
      return new Response(null, { status: 204 });
    },
  }),
];
