import type { ZodType, z } from 'zod';
import { SignetError } from '../errors.js';
import type { FieldError } from '../errors.js';

/** Accepts `application/json` with no parameter but an optional `charset=utf-8` (any case, quoted or not). */
export function isJsonContentType(header: string | null): boolean {
  if (header === null) return false;
  const [type, ...params] = header.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/json') return false;
  return params.every((p) => p === '' || /^charset\s*=\s*"?utf-8"?$/.test(p));
}

export function isFormContentType(header: string | null): boolean {
  return header !== null && header.split(';')[0].trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/** Whether the request says it carries a body (a length above zero, or chunked). */
export function hasBody(request: Request): boolean {
  const length = request.headers.get('content-length');
  if (length !== null) return length.trim() !== '0';
  return request.headers.has('transfer-encoding');
}

/**
 * Routes without a body still hold a body to the contract's rules (size, then
 * media type), so a stray body cannot ride on a state-changing call unnoticed.
 */
export function assertNoForeignBody(request: Request, limit: number): void {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw new SignetError('payload_too_large');
  if (hasBody(request) && !isJsonContentType(request.headers.get('content-type'))) throw new SignetError('unsupported_media_type');
}

/** Reads at most `limit` bytes; decided from Content-Length before reading when it is given. */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw new SignetError('payload_too_large');
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new SignetError('payload_too_large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SignetError('invalid_json', { message: 'The request body is not valid UTF-8' });
  }
}

/** The body as one JSON object, with every contract rule on media type, size and shape. */
export async function readJsonObject(request: Request, limit: number, options: { optional?: boolean } = {}): Promise<Record<string, unknown> | undefined> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw new SignetError('payload_too_large');
  const withBody = hasBody(request);
  if (withBody && !isJsonContentType(request.headers.get('content-type'))) throw new SignetError('unsupported_media_type');
  if (!withBody && options.optional) return undefined;
  const text = decodeUtf8(await readBody(request, limit));
  if (text.trim() === '') {
    if (options.optional) return undefined;
    throw new SignetError('invalid_json', { message: 'The request body is empty' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SignetError('invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SignetError('validation_failed', { details: [{ field: '(body)', message: 'must be a JSON object' }] });
  }
  return value as Record<string, unknown>;
}

/**
 * Parses with a schema and reports every bad field at once. Unknown fields are
 * dropped by the schema (no mass assignment); `extra` adds cross-field rules.
 */
export function validate<S extends ZodType>(schema: S, body: Record<string, unknown>, extra: FieldError[] = []): z.output<S> {
  const result = schema.safeParse(body);
  const details = [...extra];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)';
      if (details.some((d) => d.field === field)) continue;
      const top = issue.path[0];
      const missing = issue.code === 'invalid_type' && typeof top === 'string' && body[top] === undefined;
      details.push({ field, message: missing ? 'is required' : issue.message });
    }
  }
  if (details.length > 0) throw new SignetError('validation_failed', { details });
  return (result as { data: z.output<S> }).data;
}
