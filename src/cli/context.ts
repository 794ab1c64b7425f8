import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import type { SignetConfig } from '../config.js';
import { isSignetError } from '../errors.js';
import { AuditLog } from '../core/audit.js';
import { systemClock } from '../core/clock.js';
import { Sealer, loadAtRestSecret } from '../core/secrets.js';
import { UserAdmin } from '../core/admin/users.js';
import { AdminKeys } from '../core/admin/keys.js';
import { createLogger, createServices } from '../services.js';
import type { Services } from '../services.js';
import { migrate, openDb } from '../store/db.js';
import type { Db } from '../store/db.js';

/** Exit codes scripts can rely on (documented in docs/operators.md). */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The actor the audit log records for commands run here. */
export const CLI_ACTOR = 'cli';

/** What read-only and store-only commands get: no hash workers, no keys, no mail. */
export interface StoreContext {
  config: Readonly<SignetConfig>;
  db: Db;
  audit: AuditLog;
  users: UserAdmin;
  adminKeys: AdminKeys;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/** Runs `fn` with the store alone (migrated), then closes it. */
export async function withStore<T>(fn: (context: StoreContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  let audit: AuditLog | undefined;
  try {
    await migrate(db);
    audit = new AuditLog({
      db,
      clock: systemClock,
      keys: new Sealer(loadAtRestSecret(config)).derived('audit chain'),
      onError: (error, lost) =>
        process.stderr.write(`signet: audit log write failed (${lost} entries lost): ${error instanceof Error ? error.message : String(error)}\n`),
    });
    const onEvent = (event: string, fields: Record<string, unknown>) => audit!.record(event, fields);
    const users = new UserAdmin({ db, clock: systemClock, onEvent, config });
    const adminKeys = new AdminKeys({ db, clock: systemClock, onEvent });
    return await fn({ config, db, audit, users, adminKeys, onEvent });
  } finally {
    await audit?.close();
    await db.close();
  }
}

/** Runs `fn` with every service (commands that hash, sign or end sessions), then closes them. */
export async function withServices<T>(fn: (services: Services) => Promise<T>, overrides: Partial<SignetConfig> = {}): Promise<T> {
  // One hash worker is plenty for one command.
  const config = { ...loadConfig(), hashConcurrency: 1, ...overrides };
  const services = await createServices(config, { logger: createLogger({ logLevel: 'warn' }) });
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

/** The user admin with everything it may need (hashing, sessions, the sign-in guard). */
export function userAdmin(services: Services): UserAdmin {
  return services.admin.users;
}

/** `--json` given anywhere on the command line. */
export function wantsJson(command: Command): boolean {
  return command.optsWithGlobals<{ json?: boolean }>().json === true;
}

/** Prints `value` as JSON, or as the human form `human` writes. */
export function output(command: Command, value: unknown, human: () => void): void {
  if (wantsJson(command)) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else human();
}

/** A plain text table: a header row, then one line per row, columns padded. */
export function printTable(headers: string[], rows: (string | number | null | undefined)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map((v) => (v === null || v === undefined ? '-' : String(v))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  for (const row of cells) process.stdout.write(`${row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ')}\n`);
}

/** A usage mistake found after parsing (a bad value): exit 2 with what to do. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A check that failed (not a crash): exit 1 with the message. */
export class Failure extends Error {
  override readonly name = 'Failure';
}

/** Maps what a command threw to a message and an exit code. */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander has printed its message (or the help) already.
    return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.help' ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`signet: ${error.message}\n(run the command with --help for its options)\n`);
    return EXIT.usage;
  }
  if (error instanceof Failure) {
    process.stderr.write(`signet: ${error.message}\n`);
    return EXIT.failed;
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`Configuration error: ${error.message}\n(run \`signet doctor\` to check every setting)\n`);
    return EXIT.failed;
  }
  if (isSignetError(error)) {
    const details = error.details?.map((d) => `\n  ${d.field}: ${d.message}`).join('') ?? '';
    const hint = HINTS[error.code] ?? '';
    process.stderr.write(`signet: ${error.message}${details}${hint ? `\n${hint}` : ''}\n`);
    return error.status === 400 ? EXIT.usage : EXIT.failed;
  }
  if (isStoreDown(error)) {
    process.stderr.write(`signet: the database is unreachable (${(error as Error).message}); check DATABASE_URL, or run \`signet doctor\`\n`);
    return EXIT.failed;
  }
  process.stderr.write(`signet: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.failed;
}

const HINTS: Partial<Record<string, string>> = {
  user_not_found: 'Give a user id, email or username; `signet users list --email <prefix>` finds one.',
  email_taken: 'Another account has this email: `signet users show <email>` shows it.',
  username_taken: 'Another account has this username: `signet users show <username>` shows it.',
  weak_password: 'Choose a password that is not on the common-password list and not the email or username.',
  session_not_found: 'No live session has this id: `signet sessions list --user <user>` lists them.',
};

function isStoreDown(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'SQLITE_CANTOPEN', '3D000', '28P01'].includes(code);
}
