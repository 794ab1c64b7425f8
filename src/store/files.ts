import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { ConfigError } from '../config.js';

/**
 * The data directory holds the SQLite database and the key file: nobody but
 * Signet's user may read them. Directories are created 0700 and files 0600.
 */
export const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

/** Creates `dir` (0700) if missing; refuses one that other users can write to (they could swap the files in it). */
export function privateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
  if (process.platform === 'win32') return;
  const mode = statSync(dir).mode & 0o777;
  if (mode & 0o022) {
    throw new ConfigError(
      `${dir} (mode ${octal(mode)}) can be written by other users, who could replace Signet's database or key file: chmod 700 ${dir}, or set SIGNET_DATA_DIR`,
    );
  }
}

/** Creates `path` empty with mode 0600 if it does not exist, so the library that opens it next never makes it readable to others. */
export function createPrivateFile(path: string): void {
  if (!existsSync(path)) closeSync(openSync(path, 'a', PRIVATE_FILE));
}

/**
 * Makes Signet's own files 0600 where they are readable by others (files an
 * older Signet created with the default umask); returns those it changed, for
 * a warning. A file it cannot change stops the start.
 */
export function tightenFiles(paths: readonly string[]): string[] {
  if (process.platform === 'win32') return [];
  const changed: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) === 0) continue;
    try {
      chmodSync(path, PRIVATE_FILE);
    } catch (error) {
      throw new ConfigError(
        `${path} (mode ${octal(mode)}) is readable by other users and cannot be made private (${(error as Error).message}): chmod 600 ${path}`,
      );
    }
    changed.push(`${path} (was ${octal(mode)})`);
  }
  return changed;
}

function octal(mode: number): string {
  return `0${mode.toString(8)}`;
}
