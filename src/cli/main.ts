#!/usr/bin/env node
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { describeOptions, loadConfig } from '../config.js';
import { KEY_FILE } from '../core/secrets.js';
import { startServer } from '../server.js';
import { EXIT, output, reportError, withServices } from './context.js';
import { usersCommand } from './users.js';
import { clientsCommand } from './clients.js';
import { exportCommand, importCommand } from './transfer.js';
import { backupCommand, doctorCommand, restoreCommand } from './maintenance.js';
import { adminKeysCommand, auditGroup, keysCommand, mailCommand, sessionsCommand } from './operations.js';

/**
 * `signet`: one binary, a command group per file. Exit codes: 0 done, 1 a
 * failure or a failed check, 2 a usage error (see docs/operators.md).
 */
function program(): Command {
  const signet = new Command('signet')
    .description('Self-hosted sign-in service: run the server and operate it')
    .option('--json', 'print JSON instead of tables (every command)')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `\nSettings (environment variables, or a JSON file named by SIGNET_CONFIG):\n${describeOptions()}\n\nExit codes: 0 done, 1 failed (or a check failed), 2 usage error.\n`,
    );

  signet.command('serve').description('Start the server (runs migrations, creates keys on first start)').action(serve);
  signet
    .command('migrate')
    .description('Apply database migrations and exit')
    .action(async (_o: unknown, command: Command) => {
      const dialect = await withServices(async (s) => Promise.resolve(s.db.dialect));
      output(command, { migrated: true, dialect }, () => process.stdout.write(`Database is at the latest migration (${dialect}).\n`));
    });
  signet.addCommand(usersCommand());
  signet.addCommand(sessionsCommand());
  signet.addCommand(keysCommand());
  signet.addCommand(adminKeysCommand());
  signet.addCommand(clientsCommand());
  signet.addCommand(importCommand());
  signet.addCommand(exportCommand());
  signet.addCommand(mailCommand());
  signet.addCommand(doctorCommand());
  signet.addCommand(backupCommand());
  signet.addCommand(restoreCommand());
  signet.addCommand(auditGroup());
  signet
    .command('help')
    .description('Commands and settings with their defaults')
    .action(() => signet.outputHelp());
  // Every subcommand exits through reportError, never process.exit inside commander.
  const override = (command: Command) => {
    command.exitOverride();
    for (const sub of command.commands) override(sub);
  };
  override(signet);
  return signet;
}

async function serve(): Promise<void> {
  const config = loadConfig();
  const running = await startServer({ config });
  const { logger } = running.signet.services;
  if (config.dev) logger.warn('SIGNET_DEV is on: development mode, never use it in production');
  if (!config.rateLimits) logger.warn('RATE_LIMITS=off: no rate limits or brute-force throttling; only for test rigs');
  if (!config.masterSecret) {
    logger.warn(
      `SIGNET_SECRET is not set: secrets at rest are sealed with ${join(config.dataDir, KEY_FILE)}; back it up apart from the database, and set SIGNET_SECRET when several instances share one`,
    );
  }
  logger.info(
    { url: running.url, storage: running.signet.services.db.dialect, alg: running.signet.services.keyring.algorithm },
    `Signet listening on ${running.url}`,
  );
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function main(args: string[]): Promise<number> {
  const signet = program();
  if (args.length === 0) {
    signet.outputHelp();
    return EXIT.ok;
  }
  try {
    await signet.parseAsync(args, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError && error.code === 'commander.executeSubCommandAsync') return EXIT.ok;
    return reportError(error);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = reportError(error);
  },
);
