import { createReadStream, createWriteStream, statSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { Command, Option } from 'commander';
import { once } from 'node:events';
import { UserImporter } from '../core/admin/import.js';
import type { ImportKey, ImportProgress, OnConflict, RejectedRow } from '../core/admin/import.js';
import { formatOf } from '../core/admin/import-formats.js';
import type { ImportFormat } from '../core/admin/import-formats.js';
import { systemClock } from '../core/clock.js';
import { CLI_ACTOR, EXIT, Failure, UsageError, output, withStore } from './context.js';

/** Rejected rows printed to the terminal before the rest go only to --rejects. */
const SHOWN_REJECTS = 20;

function format(file: string, given: string | undefined): ImportFormat {
  const chosen = given ?? formatOf(file);
  if (chosen !== 'csv' && chosen !== 'jsonl')
    throw new UsageError('say --format csv or --format jsonl (the file name does not end in .csv, .jsonl or .ndjson)');
  return chosen;
}

/**
 * Progress on stderr: one bar redrawn in place on a terminal (rows, rate,
 * ETA from the bytes read), a plain line every few seconds otherwise.
 */
class Progress {
  readonly #started = performance.now();
  readonly #tty = process.stderr.isTTY;
  readonly #size: number;
  readonly #read: () => number;
  #lastLine = 0;

  constructor(size: number, read: () => number) {
    this.#size = size;
    this.#read = read;
  }

  update(p: ImportProgress, final = false): void {
    const now = performance.now();
    if (!final && !this.#tty && now - this.#lastLine < 5000) return;
    this.#lastLine = now;
    const seconds = (now - this.#started) / 1000;
    const rate = seconds > 0 ? Math.round(p.rows / seconds) : 0;
    const fraction = this.#size > 0 ? Math.min(1, this.#read() / this.#size) : 0;
    const eta = fraction > 0 && !final ? Math.round(seconds / fraction - seconds) : 0;
    const counts = `${p.rows} rows  ${p.inserted} new  ${p.updated} updated  ${p.skipped} skipped  ${p.rejected} rejected  ${rate}/s`;
    if (this.#tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(fraction * 100)}%  ${counts}  ETA ${eta}s   ${final ? '\n' : ''}`,
      );
    } else {
      process.stderr.write(`import: ${counts}${final ? '' : `, about ${eta}s left`}\n`);
    }
  }
}

export function importCommand(): Command {
  return new Command('import')
    .description('Bring users in from CSV or JSON Lines with their existing bcrypt or Argon2 hashes (streamed, batched, idempotent)')
    .argument('<file>', 'columns id, username, email, password (the hash); optional name, email_verified, roles, app_metadata')
    .addOption(new Option('--format <format>', 'csv or jsonl (default: from the file name)').choices(['csv', 'jsonl']))
    .addOption(new Option('--key <column>', 'the column that says two rows are the same user').choices(['email', 'username', 'id']).default('email'))
    .addOption(new Option('--on-conflict <action>', 'a row whose key exists already').choices(['skip', 'update']).default('skip'))
    .option('--dry-run', 'check every row and report; write nothing')
    .option('--verified', 'mark every imported email as verified')
    .option('--rejects <file>', 'write every rejected row (line, reason, message) to this CSV file')
    .action(async (file: string, options: Record<string, unknown>, command: Command) => {
      const fmt = format(file, options.format as string | undefined);
      let size: number;
      try {
        size = statSync(file).size;
      } catch {
        throw new Failure(`cannot read ${file}: check the path and its permissions`);
      }
      const input = createReadStream(file);
      const rejectsFile: WriteStream | undefined = options.rejects ? createWriteStream(options.rejects as string) : undefined;
      rejectsFile?.write('line,reason,message\n');
      let shown = 0;
      const onReject = (row: RejectedRow) => {
        rejectsFile?.write(`${row.line},${row.reason},"${row.message.replace(/"/g, '""')}"\n`);
        if (!rejectsFile && shown < SHOWN_REJECTS && !command.optsWithGlobals<{ json?: boolean }>().json) {
          shown += 1;
          process.stderr.write(`line ${row.line}: ${row.reason}: ${row.message}\n`);
        }
      };
      const progress = new Progress(size, () => input.bytesRead);
      const report = await withStore(({ db, onEvent }) =>
        new UserImporter({ db, clock: systemClock, onEvent }).import(
          input,
          {
            format: fmt,
            key: options.key as ImportKey,
            onConflict: options.onConflict as OnConflict,
            dryRun: options.dryRun === true,
            verified: options.verified === true,
            onReject,
            onProgress: (p) => progress.update(p),
          },
          CLI_ACTOR,
        ),
      );
      progress.update(report, true);
      if (rejectsFile) {
        rejectsFile.end();
        await once(rejectsFile, 'close');
      }
      output(command, report, () => {
        process.stdout.write(
          `${report.dryRun ? 'Dry run: would import' : 'Imported'} ${report.inserted} new, ${report.updated} updated, ${report.skipped} skipped, ${report.rejected} rejected of ${report.rows} rows\n`,
        );
        for (const [reason, count] of Object.entries(report.rejectedByReason)) process.stdout.write(`  ${reason}: ${count}\n`);
        if (report.rejected > shown && !rejectsFile) process.stdout.write(`(${report.rejected - shown} more rejected rows not shown: add --rejects <file>)\n`);
      });
      // Rejected rows are a result, not a failure: scripts check the report (or --json) for them.
      process.exitCode = EXIT.ok;
    });
}

export function exportCommand(): Command {
  return new Command('export')
    .description('Write every user (with password hashes: keep the file secret) in the format import reads')
    .argument('<file>', 'where to write (- for standard output)')
    .addOption(new Option('--format <format>', 'csv or jsonl (default: from the file name)').choices(['csv', 'jsonl']))
    .action(async (file: string, options: { format?: string }) => {
      const fmt = file === '-' ? ((options.format as ImportFormat | undefined) ?? 'jsonl') : format(file, options.format);
      const out = file === '-' ? process.stdout : createWriteStream(file, { mode: 0o600 });
      let count = 0;
      await withStore(async ({ db, onEvent }) => {
        const importer = new UserImporter({ db, clock: systemClock, onEvent });
        for await (const chunk of importer.export(fmt)) {
          count += chunk === '' ? 0 : (chunk.match(/\n/g)?.length ?? 0);
          if (!out.write(chunk)) await once(out, 'drain');
        }
        onEvent('admin.users_exported', { actor: CLI_ACTOR });
      });
      if (out !== process.stdout) {
        out.end();
        await once(out, 'close');
        process.stderr.write(`Exported ${fmt === 'csv' ? count - 1 : count} users to ${file}\n`);
      }
    });
}
