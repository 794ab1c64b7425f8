import { Command, Option } from 'commander';
import type { User } from '../model.js';
import { adminUserView } from '../core/admin/users.js';
import type { NewUserInput, UserFilter, UserUpdate } from '../core/admin/users.js';
import { CLI_ACTOR, UsageError, output, printTable, withServices, withStore } from './context.js';
import { readSecret } from './input.js';

/** A user as `--json` prints it (and the admin API answers). */
export const userJson = adminUserView;

function printUser(user: User): void {
  const json = userJson(user);
  for (const [k, v] of Object.entries(json)) process.stdout.write(`${k.padEnd(14)} ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
}

const yesNo = (flag: string) => (value: string) => {
  if (value === 'yes' || value === 'true') return true;
  if (value === 'no' || value === 'false') return false;
  throw new UsageError(`${flag} takes yes or no`);
};

const date = (flag: string) => (value: string) => {
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw new UsageError(`${flag} takes a date such as 2024-01-31 or 2024-01-31T12:00:00Z`);
  return at;
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

function jsonObject(flag: string) {
  return (value: string) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      throw new UsageError(`${flag} takes a JSON object, e.g. '{"plan":"pro"}'`);
    }
  };
}

export function usersCommand(): Command {
  const users = new Command('users').description('Find, create, change, disable and delete accounts');

  users
    .command('list')
    .description('Accounts newest first, a page at a time (a keyset cursor: fast at any depth)')
    .option('--email <prefix>', 'email starts with (case-insensitive; uses the email index)')
    .option('--username <prefix>', 'username starts with (case-insensitive; uses the username index)')
    .option('--search <text>', 'email or username contains (reads every row: slower on big tables)')
    .option('--created-from <date>', 'created at or after', date('--created-from'))
    .option('--created-to <date>', 'created before', date('--created-to'))
    .option('--verified <yes|no>', 'email verified or not', yesNo('--verified'))
    .option('--mfa <yes|no>', 'second factor on or not', yesNo('--mfa'))
    .option('--disabled <yes|no>', 'disabled or not', yesNo('--disabled'))
    .option('--role <name>', 'holds this role')
    .option('--limit <n>', 'users per page (1–1000)', (v) => Number(v), 50)
    .option('--cursor <cursor>', 'the next-page cursor a previous page printed')
    .action(async (options: Record<string, unknown>, command: Command) => {
      const filter: UserFilter = {
        emailPrefix: options.email as string | undefined,
        usernamePrefix: options.username as string | undefined,
        contains: options.search as string | undefined,
        createdFrom: options.createdFrom as Date | undefined,
        createdTo: options.createdTo as Date | undefined,
        verified: options.verified as boolean | undefined,
        mfa: options.mfa as boolean | undefined,
        disabled: options.disabled as boolean | undefined,
        role: options.role as string | undefined,
      };
      const page = await withStore(({ users: admin }) => admin.list(filter, { limit: options.limit as number, cursor: options.cursor as string | undefined }));
      output(command, { users: page.users.map(userJson), nextCursor: page.nextCursor }, () => {
        printTable(
          ['ID', 'EMAIL', 'USERNAME', 'VERIFIED', 'MFA', 'DISABLED', 'ROLES', 'CREATED'],
          page.users.map((u) => [
            u.id,
            u.email,
            u.username,
            u.emailVerified ? 'yes' : 'no',
            u.mfaEnabled ? 'yes' : 'no',
            u.disabledAt ? 'yes' : 'no',
            u.roles.join(',') || '-',
            u.createdAt.toISOString(),
          ]),
        );
        if (page.nextCursor) process.stdout.write(`\nMore: --cursor ${page.nextCursor}\n`);
      });
    });

  users
    .command('show')
    .description('One account, by id, email or username')
    .argument('<user>', 'id, email or username')
    .action(async (key: string, _options: unknown, command: Command) => {
      const user = await withStore(({ users: admin }) => admin.get(key));
      output(command, { user: userJson(user) }, () => printUser(user));
    });

  users
    .command('create')
    .description('Create an account (with a password, or an existing bcrypt/Argon2 hash)')
    .requiredOption('--email <email>', 'the address')
    .option('--username <name>', 'a username (3–32 of letters, digits, _ . -)')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .addOption(new Option('--password <password>', 'the password (visible to other local users in the process list: prefer --password-stdin)'))
    .option('--password-hash <hash>', 'an existing bcrypt ($2a$/$2b$/$2y$) or Argon2 PHC hash')
    .option('--verified', 'mark the email as verified')
    .option('--role <name>', 'a role (repeat for several)', collect)
    .option('--app-metadata <json>', 'app data carried in access tokens (a JSON object, at most 1 KiB)', jsonObject('--app-metadata'))
    .action(async (options: Record<string, unknown>, command: Command) => {
      const password = await readSecret(options, 'password');
      if (password === undefined && options.passwordHash === undefined) throw new UsageError('give --password-stdin, --password or --password-hash');
      const input: NewUserInput = {
        email: options.email as string,
        username: options.username as string | undefined,
        name: options.name as string | undefined,
        password,
        passwordHash: options.passwordHash as string | undefined,
        emailVerified: options.verified === true,
        roles: options.role as string[] | undefined,
        appMetadata: options.appMetadata as Record<string, unknown> | undefined,
      };
      const user = await withServices((s) => s.admin.users.create(input, CLI_ACTOR));
      output(command, { user: userJson(user) }, () => process.stdout.write(`Created ${user.id} <${user.email}>\n`));
    });

  users
    .command('update')
    .description('Change an account: email, username, name, verified, roles, app data')
    .argument('<user>', 'id, email or username')
    .option('--email <email>', 'new address (unverified unless --verified yes)')
    .option('--username <name>', 'new username ("" removes it)')
    .option('--name <name>', 'new display name ("" removes it)')
    .option('--verified <yes|no>', 'email verified or not', yesNo('--verified'))
    .option('--role <name>', 'replace the roles with these (repeat; --role "" clears)', collect)
    .option('--add-role <name>', 'add a role (repeat)', collect)
    .option('--remove-role <name>', 'remove a role (repeat)', collect)
    .option('--app-metadata <json>', 'replace the app data (a JSON object, at most 1 KiB)', jsonObject('--app-metadata'))
    .action(async (key: string, options: Record<string, unknown>, command: Command) => {
      const user = await withServices(async (s) => {
        const current = await s.admin.users.get(key);
        let roles = options.role === undefined ? undefined : (options.role as string[]).filter((r) => r !== '');
        if (options.addRole !== undefined || options.removeRole !== undefined) {
          const next = new Set(roles ?? current.roles);
          for (const r of (options.addRole as string[] | undefined) ?? []) next.add(r);
          for (const r of (options.removeRole as string[] | undefined) ?? []) next.delete(r);
          roles = [...next];
        }
        const update: UserUpdate = {
          email: options.email as string | undefined,
          username: options.username === undefined ? undefined : (options.username as string) || null,
          name: options.name === undefined ? undefined : (options.name as string) || null,
          emailVerified: options.verified as boolean | undefined,
          roles,
          appMetadata: options.appMetadata as Record<string, unknown> | undefined,
        };
        return s.admin.users.update(current.id, update, CLI_ACTOR);
      });
      output(command, { user: userJson(user) }, () => printUser(user));
    });

  for (const [name, disabled, description] of [
    ['disable', true, 'Refuse sign-in (answered as a wrong password) and end every session now'],
    ['enable', false, 'Allow sign-in again'],
  ] as const) {
    users
      .command(name)
      .description(description)
      .argument('<user>', 'id, email or username')
      .action(async (key: string, _options: unknown, command: Command) => {
        const user = await withServices((s) => s.admin.users.setDisabled(key, disabled, CLI_ACTOR));
        output(command, { user: userJson(user) }, () => process.stdout.write(`${disabled ? 'Disabled' : 'Enabled'} ${user.id} <${user.email}>\n`));
      });
  }

  users
    .command('delete')
    .description('End every session, then delete the account and all of its data')
    .argument('<user>', 'id, email or username')
    .option('--yes', 'confirm: deleting cannot be undone')
    .action(async (key: string, options: { yes?: boolean }, command: Command) => {
      if (!options.yes) throw new UsageError('deleting cannot be undone: add --yes to confirm');
      const id = await withServices(async (s) => {
        const user = await s.admin.users.get(key);
        await s.admin.users.remove(user.id, CLI_ACTOR);
        return user.id;
      });
      output(command, { deleted: id }, () => process.stdout.write(`Deleted ${id}\n`));
    });

  users
    .command('set-password')
    .description('Set a new password (hashed with Argon2id) and end every session')
    .argument('<user>', 'id, email or username')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--password <password>', 'the password (visible in the process list: prefer --password-stdin)')
    .action(async (key: string, options: Record<string, unknown>, command: Command) => {
      const password = await readSecret(options, 'password');
      if (password === undefined) throw new UsageError('give --password-stdin or --password');
      const user = await withServices((s) => s.admin.users.setPassword(key, password, CLI_ACTOR));
      output(command, { user: userJson(user) }, () => process.stdout.write(`New password set for ${user.id}; its sessions ended\n`));
    });

  users
    .command('verify-email')
    .description('Mark the email as verified')
    .argument('<user>', 'id, email or username')
    .action(async (key: string, _options: unknown, command: Command) => {
      const user = await withStore(({ users: admin }) => admin.verifyEmail(key, CLI_ACTOR));
      output(command, { user: userJson(user) }, () => process.stdout.write(`Verified ${user.email}\n`));
    });

  users
    .command('unlock')
    .description('Clear failed sign-ins that throttle the account (reaches running servers through REDIS_URL)')
    .argument('<user>', 'id, email or username')
    .action(async (key: string, _options: unknown, command: Command) => {
      const user = await withServices((s) => s.admin.users.unlock(key, CLI_ACTOR));
      output(command, { user: userJson(user) }, () => process.stdout.write(`Unlocked ${user.id}\n`));
    });

  return users;
}
