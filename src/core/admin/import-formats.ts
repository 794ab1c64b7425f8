import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';

export type ImportFormat = 'csv' | 'jsonl';

/** One record of an import file, with the line it starts on (1-based, the CSV header is line 1). */
export interface ImportRecord {
  line: number;
  /** Undefined when the line could not be read at all (bad JSON): `problem` says why. */
  fields: Record<string, unknown> | undefined;
  problem?: string;
}

/** The format a file name suggests: `.csv`, else JSON Lines (`.jsonl`, `.ndjson`). */
export function formatOf(fileName: string): ImportFormat | undefined {
  if (/\.csv$/i.test(fileName)) return 'csv';
  if (/\.(jsonl|ndjson)$/i.test(fileName)) return 'jsonl';
  return undefined;
}

/**
 * Records from a CSV (RFC 4180, a header row naming the columns) or JSON Lines
 * stream, one at a time: memory stays flat whatever the file's size.
 */
export async function* readRecords(input: Readable, format: ImportFormat): AsyncGenerator<ImportRecord> {
  if (format === 'jsonl') {
    let line = 0;
    for await (const text of createInterface({ input, crlfDelay: Infinity })) {
      line += 1;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        yield { line, fields: undefined, problem: 'not valid JSON' };
        continue;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) yield { line, fields: undefined, problem: 'not a JSON object' };
      else yield { line, fields: value as Record<string, unknown> };
    }
    return;
  }
  const parser = input.pipe(
    parse({
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      info: true,
    }),
  );
  for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
    yield { line: info.lines, fields: record };
  }
}

const CSV_COLUMNS = ['id', 'username', 'email', 'password', 'name', 'email_verified', 'roles', 'app_metadata'] as const;

/** The header line of an export in `format` (none for JSON Lines). */
export function exportHeader(format: ImportFormat): string {
  return format === 'csv' ? `${CSV_COLUMNS.join(',')}\n` : '';
}

/** One exported user as a line of `format`: the columns import reads back. */
export function exportLine(
  format: ImportFormat,
  user: Record<(typeof CSV_COLUMNS)[number], string | boolean | null | unknown[] | Record<string, unknown>>,
): string {
  if (format === 'jsonl') return `${JSON.stringify(user)}\n`;
  return `${CSV_COLUMNS.map((c) => csvCell(user[c])).join(',')}\n`;
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
