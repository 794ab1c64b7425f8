import { Command } from 'commander';
import type { SigningKey } from '../core/keys.js';
import type { Session } from '../model.js';
import type { AdminScope } from '../core/admin/keys.js';
import { CLI_ACTOR, UsageError, output, printTable, withServices, withStore } from './context.js';
import { AUDIT_USAGE, auditCommand } from './audit.js';

function keyJson(key: SigningKey): Record<string, unknown> {
  return { kid: key.kid, alg: key.alg, state: key.state, activatesAt: new Date(key.activatesAt).toISOString() };
}

function printKeys(keys: readonly SigningKey[]): void {
  printTable(
    ['KID', 'ALG', 'STATE', 'ACTIVATES'],
    keys.map((k) => [k.kid, k.alg, k.state, new Date(k.activatesAt).toISOString()]),
  );
}

export function keysCommand(): Command {
  const keys = new Command('keys').description('Signing keys: list, rotate, retire');
  keys
    .command('list')
    .description('Signing keys and their states (next, active, retiring)')
    .action(async (_o: unknown, command: Command) => {
      const list = await withServices((s) => Promise.resolve([...s.keyring.list()]));
      output(command, { keys: list.map(keyJson) }, () => printKeys(list));
    });
  keys
    .command('rotate')
    .description('Publish a new signing key; it signs after KEY_ROTATION_OVERLAP seconds')
    .action(async (_o: unknown, command: Command) => {
      const { key, list } = await withServices(async (s) => ({ key: await s.keyring.rotate(), list: [...s.keyring.list()] }));
      output(command, { key: keyJson(key), keys: list.map(keyJson) }, () => {
        process.stdout.write(`New key ${key.kid} (${key.alg}) published; it signs from ${new Date(key.activatesAt).toISOString()}\n`);
        printKeys(list);
      });
    });
  keys
    .command('retire')
    .description('Withdraw a key that no longer signs (e.g. suspected leaked): tokens it signed stop verifying')
    .argument('<kid>', 'the key id `keys list` shows')
    .action(async (kid: string, _o: unknown, command: Command) => {
      const { key, list } = await withServices(async (s) => {
        const retired = await s.keyring.retire(kid);
        s.audit.record('admin.signing_key_retired', { kid, actor: CLI_ACTOR });
        return { key: retired, list: [...s.keyring.list()] };
      });
      output(command, { retired: key.kid, keys: list.map(keyJson) }, () => {
        process.stdout.write(`Retired ${key.kid}\n`);
        printKeys(list);
      });
    });
  return keys;
}

export function mailCommand(): Command {
  const mail = new Command('mail').description('The outgoing mail queue');
  mail
    .command('failed')
    .description('Messages given up on after every retry (recipient, template, last error)')
    .action(async (_o: unknown, command: Command) => {
      const failed = await withServices((s) => s.mailer.failed());
      output(command, { failed: failed.map((m) => ({ ...m, failedAt: m.failedAt.toISOString() })) }, () => {
        if (failed.length === 0) process.stdout.write('No failed mail.\n');
        for (const m of failed) {
          process.stdout.write(`${m.failedAt.toISOString()}  ${m.template.padEnd(16)}  ${m.recipient}  after ${m.attempts} attempts: ${m.lastError ?? ''}\n`);
        }
      });
    });
  return mail;
}

/** `audit …` keeps its own parser (src/cli/audit.ts): its arguments pass through unchanged. */
export function auditGroup(): Command {
  return new Command('audit')
    .description('The audit log: verify | head | reanchor | list --user <id> [--limit N]')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.includes('--help') || args.includes('-h')) {
        process.stdout.write(AUDIT_USAGE);
        return;
      }
      const code = await withStore(({ audit }) => auditCommand({ audit }, args));
      process.exitCode = code;
    });
}

function sessionJson(s: Session): Record<string, unknown> {
  return {
    id: s.id,
    userId: s.userId,
    createdAt: s.createdAt.toISOString(),
    lastUsedAt: s.lastUsedAt.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    userAgent: s.userAgent,
    ip: s.ip,
    clientId: s.clientId,
    amr: s.amr,
  };
}

export function sessionsCommand(): Command {
  const sessions = new Command('sessions').description("A user's live sessions: list, revoke");
  sessions
    .command('list')
    .description("A user's live sessions, most recently used first")
    .requiredOption('--user <user>', 'id, email or username')
    .action(async (options: { user: string }, command: Command) => {
      const list = await withServices((s) => s.admin.users.sessionsOf(options.user));
      output(command, { sessions: list.map(sessionJson) }, () =>
        printTable(
          ['ID', 'CREATED', 'LAST USED', 'IP', 'CLIENT', 'USER AGENT'],
          list.map((s) => [s.id, s.createdAt.toISOString(), s.lastUsedAt.toISOString(), s.ip, s.clientId, s.userAgent]),
        ),
      );
    });
  sessions
    .command('revoke')
    .description('End one session, or every session of a user (back-channel logout fires as for a sign-out)')
    .argument('[session]', 'the session id')
    .option('--user <user>', 'end every session of this user instead')
    .action(async (sessionId: string | undefined, options: { user?: string }, command: Command) => {
      if ((sessionId === undefined) === (options.user === undefined)) throw new UsageError('give a session id, or --user <user> for all of theirs');
      if (sessionId !== undefined) {
        await withServices((s) => s.admin.users.revokeSession(sessionId, CLI_ACTOR));
        output(command, { revoked: 1 }, () => process.stdout.write(`Ended session ${sessionId}\n`));
      } else {
        const count = await withServices((s) => s.admin.users.revokeAllSessions(options.user!, CLI_ACTOR));
        output(command, { revoked: count }, () => process.stdout.write(`Ended ${count} session${count === 1 ? '' : 's'}\n`));
      }
    });
  return sessions;
}

export function adminKeysCommand(): Command {
  const keys = new Command('admin-keys').description('Keys for the /admin API: create, list, revoke');
  keys
    .command('create')
    .description('Create a key; its secret is printed once, only its hash is stored')
    .requiredOption('--name <name>', 'what the key is for (shown in lists and the audit log)')
    .option('--scope <scope>', 'read (GET only) or write', 'read')
    .action(async (options: { name: string; scope: string }, command: Command) => {
      if (options.scope !== 'read' && options.scope !== 'write') throw new UsageError('--scope takes read or write');
      const { key, secret } = await withStore((s) => s.adminKeys.create({ name: options.name, scope: options.scope as AdminScope }, CLI_ACTOR));
      output(command, { id: key.id, name: key.name, scope: key.scope, secret }, () => {
        process.stdout.write(
          `Admin key ${key.id} (${key.scope}) "${key.name}"\n\n  ${secret}\n\nShown once: store it now. Send it as \`Authorization: Bearer <secret>\` to /admin/*.\n`,
        );
      });
    });
  keys
    .command('list')
    .description('Every key, live and revoked (never the secrets)')
    .action(async (_o: unknown, command: Command) => {
      const list = await withStore((s) => s.adminKeys.list());
      output(
        command,
        {
          keys: list.map((k) => ({
            ...k,
            createdAt: k.createdAt.toISOString(),
            lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
            revokedAt: k.revokedAt?.toISOString() ?? null,
          })),
        },
        () =>
          printTable(
            ['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', 'REVOKED'],
            list.map((k) => [k.id, k.name, k.scope, k.createdAt.toISOString(), k.lastUsedAt?.toISOString(), k.revokedAt?.toISOString()]),
          ),
      );
    });
  keys
    .command('revoke')
    .description('Revoke a key: it stops working at once')
    .argument('<id>', 'the key id')
    .action(async (id: string, _o: unknown, command: Command) => {
      await withStore((s) => s.adminKeys.revoke(id, CLI_ACTOR));
      output(command, { revoked: id }, () => process.stdout.write(`Revoked ${id}\n`));
    });
  return keys;
}
