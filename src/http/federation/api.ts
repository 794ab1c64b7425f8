import { toPublicIdentity } from '../../core/federation/service.js';
import { SignetError } from '../../errors.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { IdentityList, ProviderList } from '../schemas.js';

const IDENTITY_ID = /^[0-9a-f-]{36}$/;

export const listProvidersRoute = route({
  method: 'GET',
  path: '/auth/federation/providers',
  tag: 'Federation',
  summary: 'The identity providers users may sign in with; a browser is sent to `startUrl` (add `?return_to=`) to begin',
  auth: 'none',
  success: { status: 200, description: 'Providers (empty when none is configured)', schema: ProviderList },
  handle: (c) => {
    const { federation, config } = c.var.services;
    return json({
      providers: federation.providers().map((p) => ({ ...p, startUrl: `${config.publicUrl}/auth/federation/${p.id}/start` })),
    });
  },
});

export const listIdentitiesRoute = route({
  method: 'GET',
  path: '/auth/federation/identities',
  tag: 'Federation',
  summary: "The signed-in user's connected accounts at other identity providers",
  auth: 'bearer',
  success: { status: 200, description: 'Connected accounts, oldest first', schema: IdentityList },
  handle: async (c) => {
    const { federation } = c.var.services;
    const providers = federation.providers();
    return json({ identities: (await federation.list(c.var.auth.user.id)).map((i) => toPublicIdentity(i, providers)) });
  },
});

export const unlinkIdentityRoute = route({
  method: 'DELETE',
  path: '/auth/federation/identities/:id',
  tag: 'Federation',
  summary: 'Disconnect an account at another identity provider (never the last way to sign in)',
  auth: 'bearer',
  success: { status: 204, description: 'Disconnected' },
  errors: ['identity_not_found', 'last_sign_in_method'],
  handle: async (c) => {
    const id = c.req.param('id');
    if (id === undefined || !IDENTITY_ID.test(id)) throw new SignetError('identity_not_found');
    await c.var.services.federation.unlink(c.var.auth.user.id, id);
    return c.body(null, 204);
  },
});
