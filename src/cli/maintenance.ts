import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { diagnose } from '../core/admin/doctor.js';
import type { Check } from '../core/admin/doctor.js';
import { KEY_FILE } from '../core/secrets.js';
import { backupSqlite, restoreSqlite } from '../store/db.js';
import { EXIT, Failure, output } from './context.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('Check configuration, storage, keys, mail, Redis, clock and hashing; say what to fix (exit 1 on any failure)')
    .action(async (_o: unknown, command: Command) => {
      let checks: Check[];
      try {
        checks = await diagnose(loadConfig());
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        checks = [{ name: 'config', status: 'fail', detail: error.message, fix: 'fix the setting named above (`signet help` lists them all)' }];
      }
      const failed = checks.some((c) => c.status === 'fail');
      output(command, { ok: !failed, checks }, () => {
        for (const c of checks) process.stdout.write(`${MARK[c.status]}  ${c.name.padEnd(10)}  ${c.detail}${c.fix ? `\n${' '.repeat(18)}→ ${c.fix}` : ''}\n`);
        process.stdout.write(failed ? '\nSomething needs fixing (see FAIL above).\n' : '\nNothing is broken.\n');
      });
      process.exitCode = failed ? EXIT.failed : EXIT.ok;
    });
}

export function backupCommand(): Command {
  return new Command('backup')
    .description('A consistent online copy of the SQLite database (SQLite backup API) while servers run; PostgreSQL: use pg_dump')
    .argument('<file>', 'where to write the copy (created 0600)')
    .action(async (file: string, _o: unknown, command: Command) => {
      const config = loadConfig();
      if (config.databaseUrl) {
        throw new Failure(
          'DATABASE_URL is PostgreSQL: back it up with `pg_dump --format=custom` (see docs/operators.md), and keep the key file or SIGNET_SECRET with it',
        );
      }
      if (existsSync(file)) throw new Failure(`${file} exists: choose a new file name`);
      const { pages } = await backupSqlite(config.dataDir, file);
      const keyNote = config.masterSecret
        ? 'Keep SIGNET_SECRET with it: without it the keys and secrets inside cannot be opened.'
        : `Copy ${join(config.dataDir, KEY_FILE)} with it (apart from the database): without it the keys and secrets inside cannot be opened.`;
      output(command, { file, pages }, () => process.stdout.write(`Backed up ${pages} pages to ${file}\n${keyNote}\n`));
    });
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description('Restore a `signet backup` file into an empty data directory (SQLite only)')
    .argument('<file>', 'the backup file')
    .action(async (file: string, _o: unknown, command: Command) => {
      const config = loadConfig();
      if (config.databaseUrl) throw new Failure('DATABASE_URL is PostgreSQL: restore with `pg_restore` (see docs/operators.md)');
      let path: string;
      try {
        path = await restoreSqlite(file, config.dataDir);
      } catch (error) {
        throw new Failure(error instanceof Error ? error.message : String(error));
      }
      const keyFile = join(config.dataDir, KEY_FILE);
      const warning =
        !config.masterSecret && !existsSync(keyFile)
          ? `\nNo ${keyFile} and no SIGNET_SECRET: put the key file of the backed-up instance there before starting.`
          : '';
      output(command, { restored: path }, () => process.stdout.write(`Restored into ${path}${warning}\n`));
    });
}
