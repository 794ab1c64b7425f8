import { Readable } from 'node:stream';
import { z } from 'zod';
import { SignetError } from '../../errors.js';
import type { RejectedRow } from '../../core/admin/import.js';
import { readBody } from '../body.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { actor } from './users.js';

/** A modest file over HTTP; bigger ones go through `signet import`, which streams from disk. */
export const IMPORT_BODY_LIMIT = 5 * 1024 * 1024;
/** Rejected rows listed in the answer (all are counted). */
const LISTED_REJECTS = 1000;

const MEDIA: Record<string, 'csv' | 'jsonl'> = { 'text/csv': 'csv', 'application/x-ndjson': 'jsonl', 'application/jsonl': 'jsonl' };

const yesNo = z.enum(['true', 'false']).transform((v) => v === 'true');

const ImportReport = z
  .object({
    dryRun: z.boolean(),
    rows: z.number().int(),
    inserted: z.number().int(),
    updated: z.number().int(),
    skipped: z.number().int(),
    rejected: z.number().int(),
    rejectedByReason: z.record(z.string(), z.number().int()),
    rejects: z
      .array(z.object({ line: z.number().int(), reason: z.string(), message: z.string() }))
      .meta({ description: `The first ${LISTED_REJECTS} rejected rows` }),
  })
  .meta({ id: 'ImportReport' });

export const adminImportRoute = route({
  method: 'POST',
  path: '/admin/import',
  tag: 'Admin',
  summary: `Import users from CSV (text/csv) or JSON Lines (application/x-ndjson) with their password hashes, at most ${IMPORT_BODY_LIMIT / 1024 / 1024} MiB (larger files: signet import)`,
  auth: 'admin-write',
  body: z.string().meta({ description: 'The file: columns id, username, email, password (the hash); optional name, email_verified, roles, app_metadata' }),
  bodyMode: 'custom',
  bodyContentTypes: Object.keys(MEDIA),
  query: z.object({
    key: z.enum(['email', 'username', 'id']).optional(),
    onConflict: z.enum(['skip', 'update']).optional(),
    dryRun: yesNo.optional(),
    verified: yesNo.optional(),
  }),
  success: { status: 200, description: 'What was imported, and the rows refused with their line and reason', schema: ImportReport },
  errors: ['validation_failed', 'payload_too_large', 'unsupported_media_type', 'insufficient_scope'],
  handle: async (c, _body, q) => {
    const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const format = MEDIA[type];
    if (!format) throw new SignetError('unsupported_media_type', { message: 'Send text/csv or application/x-ndjson' });
    const bytes = await readBody(c.req.raw, IMPORT_BODY_LIMIT);
    const rejects: RejectedRow[] = [];
    const report = await c.var.services.admin.importer.import(
      Readable.from([Buffer.from(bytes)]),
      {
        format,
        key: q.key,
        onConflict: q.onConflict,
        dryRun: q.dryRun,
        verified: q.verified,
        onReject: (row) => {
          if (rejects.length < LISTED_REJECTS) rejects.push(row);
        },
      },
      actor(c),
    );
    return json({ ...report, rejects });
  },
});
