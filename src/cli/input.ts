import { createInterface } from 'node:readline';
import { UsageError } from './context.js';

/**
 * A secret from `--<name>-stdin` (the first line of standard input) or
 * `--<name>`; undefined when neither was given.
 */
export async function readSecret(options: Record<string, unknown>, name: string): Promise<string | undefined> {
  const fromStdin = options[`${name}Stdin`] === true;
  const given = options[name] as string | undefined;
  if (fromStdin && given !== undefined) throw new UsageError(`give --${name}-stdin or --${name}, not both`);
  if (!fromStdin) return given;
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new UsageError(`--${name}-stdin: standard input was empty`);
}
