import { Command, Option } from 'commander';
import { clientView } from '../core/admin/client-view.js';
import type { ClientChanges, ClientInput } from '../core/oidc/clients.js';
import type { OAuthClient } from '../model.js';
import { CLI_ACTOR, Failure, UsageError, output, printTable, withServices } from './context.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];
const seconds = (flag: string) => (value: string) => {
  if (!/^\d{1,9}$/.test(value)) throw new UsageError(`${flag} takes a number of seconds`);
  return Number(value);
};

/** The options `add` and `update` share, as docs/oidc.md lists them. */
function clientOptions(command: Command, forAdd: boolean): Command {
  if (forAdd) {
    command
      .requiredOption('--name <name>', 'shown on the consent page')
      .addOption(
        new Option('--type <type>', 'public (PKCE, no secret) or confidential (a server with a secret)')
          .choices(['public', 'confidential'])
          .makeOptionMandatory(),
      )
      .addOption(new Option('--auth-method <method>', 'how a confidential client sends its secret').choices(['client_secret_basic', 'client_secret_post']))
      .option('--id <id>', 'the client id (default: generated)');
  } else command.option('--name <name>', 'shown on the consent page');
  return command
    .option('--redirect-uri <uri>', 'an exact redirect URI (repeat)', collect)
    .option('--post-logout-redirect-uri <uri>', 'where sign-out may return (repeat)', collect)
    .option('--backchannel-logout-uri <uri>', 'where logout tokens are posted ("" removes it)')
    .option('--first-party', 'the operator’s own app: no consent page')
    .option('--scope <scope>', 'a scope it may ask for (repeat)', collect)
    .option('--grant-type <type>', 'a grant type it may use (repeat)', collect)
    .option('--resource <uri>', 'a resource indicator it may ask tokens for (repeat)', collect)
    .option('--access-token-ttl <seconds>', 'shorter access tokens than ACCESS_TOKEN_TTL', seconds('--access-token-ttl'))
    .option('--refresh-token-ttl <seconds>', 'how long an offline grant lives at most', seconds('--refresh-token-ttl'));
}

function changes(o: Record<string, unknown>): ClientChanges {
  const c: ClientChanges = {};
  if (o.name !== undefined) c.name = o.name as string;
  if (o.redirectUri !== undefined) c.redirectUris = o.redirectUri as string[];
  if (o.postLogoutRedirectUri !== undefined) c.postLogoutRedirectUris = o.postLogoutRedirectUri as string[];
  if (o.backchannelLogoutUri !== undefined) c.backchannelLogoutUri = (o.backchannelLogoutUri as string) || null;
  if (o.firstParty !== undefined) c.firstParty = true;
  if (o.scope !== undefined) c.scopes = o.scope as string[];
  if (o.grantType !== undefined) c.grantTypes = o.grantType as string[];
  if (o.resource !== undefined) c.resources = o.resource as string[];
  if (o.accessTokenTtl !== undefined) c.accessTokenTtl = o.accessTokenTtl as number;
  if (o.refreshTokenTtl !== undefined) c.refreshTokenTtl = o.refreshTokenTtl as number;
  return c;
}

function printClient(client: OAuthClient): void {
  for (const [k, v] of Object.entries(clientView(client))) process.stdout.write(`${k.padEnd(24)} ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
}

function secretNote(secret: string): string {
  return `\nClient secret (shown once, store it now):\n\n  ${secret}\n`;
}

export function clientsCommand(): Command {
  const clients = new Command('clients').description(
    'OpenID Connect clients (relying parties): add, list, show, update, rotate-secret, disable, enable, remove',
  );

  clientOptions(clients.command('add').description('Register a client; a confidential client’s secret is printed once'), true).action(
    async (o: Record<string, unknown>, command: Command) => {
      if (o.redirectUri === undefined) throw new UsageError('--redirect-uri is required (repeat it for several)');
      const input: ClientInput = {
        ...changes(o),
        id: o.id as string | undefined,
        name: o.name as string,
        type: o.type as 'public' | 'confidential',
        redirectUris: o.redirectUri as string[],
      };
      if (o.authMethod !== undefined) input.authMethod = o.authMethod as 'client_secret_basic' | 'client_secret_post';
      const { client, secret } = await withServices(async (s) => {
        const registered = await s.oidc.clients.register(input);
        s.audit.record('admin.client_registered', { clientId: registered.client.id, actor: CLI_ACTOR });
        return registered;
      });
      output(command, { client: clientView(client), ...(secret ? { secret } : {}) }, () => {
        process.stdout.write(`Registered client ${client.id}\n`);
        if (secret) process.stdout.write(secretNote(secret));
      });
    },
  );

  clients
    .command('list')
    .description('Every registered client')
    .action(async (_o: unknown, command: Command) => {
      const list = await withServices((s) => s.oidc.clients.list());
      output(command, { clients: list.map(clientView) }, () =>
        printTable(
          ['ID', 'NAME', 'TYPE', 'FIRST PARTY', 'DISABLED', 'REDIRECT URIS'],
          list.map((c) => [
            c.id,
            c.name,
            c.authMethod === 'none' ? 'public' : 'confidential',
            c.firstParty ? 'yes' : 'no',
            c.disabledAt ? 'yes' : 'no',
            c.redirectUris.join(' '),
          ]),
        ),
      );
    });

  clients
    .command('show')
    .description('One client')
    .argument('<id>', 'the client id')
    .action(async (id: string, _o: unknown, command: Command) => {
      const client = await withServices((s) => s.oidc.clients.get(id));
      if (!client) throw new Failure(`no client has id ${id}: \`signet clients list\` shows them`);
      output(command, { client: clientView(client) }, () => printClient(client));
    });

  clientOptions(clients.command('update').description('Change a client (options replace what they name)').argument('<id>', 'the client id'), false).action(
    async (id: string, o: Record<string, unknown>, command: Command) => {
      const client = await withServices(async (s) => {
        const updated = await s.oidc.clients.update(id, changes(o));
        s.audit.record('admin.client_updated', { clientId: id, actor: CLI_ACTOR });
        return updated;
      });
      output(command, { client: clientView(client) }, () => printClient(client));
    },
  );

  clients
    .command('rotate-secret')
    .description('Replace a confidential client’s secret at once; the new one is printed once')
    .argument('<id>', 'the client id')
    .action(async (id: string, _o: unknown, command: Command) => {
      const secret = await withServices(async (s) => {
        const rotated = await s.oidc.clients.rotateSecret(id);
        s.audit.record('admin.client_secret_rotated', { clientId: id, actor: CLI_ACTOR });
        return rotated;
      });
      output(command, { id, secret }, () => process.stdout.write(`New secret for ${id}${secretNote(secret)}`));
    });

  for (const [name, disabled, description] of [
    ['disable', true, 'Refuse the client everywhere and end every grant it holds'],
    ['enable', false, 'Accept the client again'],
  ] as const) {
    clients
      .command(name)
      .description(description)
      .argument('<id>', 'the client id')
      .action(async (id: string, _o: unknown, command: Command) => {
        const client = await withServices(async (s) => {
          const changed = await s.oidc.clients.setDisabled(id, disabled);
          s.audit.record(disabled ? 'admin.client_disabled' : 'admin.client_enabled', { clientId: id, actor: CLI_ACTOR });
          return changed;
        });
        output(command, { client: clientView(client) }, () => process.stdout.write(`${disabled ? 'Disabled' : 'Enabled'} ${client.id}\n`));
      });
  }

  clients
    .command('remove')
    .description('Delete a client, its grants and its users’ consents')
    .argument('<id>', 'the client id')
    .action(async (id: string, _o: unknown, command: Command) => {
      await withServices(async (s) => {
        await s.oidc.clients.remove(id);
        s.audit.record('admin.client_removed', { clientId: id, actor: CLI_ACTOR });
      });
      output(command, { removed: id }, () => process.stdout.write(`Removed ${id}\n`));
    });
  return clients;
}
