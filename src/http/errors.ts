import { STATUS_CODES } from 'node:http';
import { SignetError, StoreUnavailableError, isStoreUnavailable, publicCode } from '../errors.js';

/** Any thrown value → the SignetError the client sees (500 for bugs, 503 for a store outage). */
export function toSignetError(error: unknown): SignetError {
  if (error instanceof SignetError) return error;
  if (isStoreUnavailable(error)) return new StoreUnavailableError(error);
  return new SignetError('internal_error', { cause: error });
}

const WWW_AUTHENTICATE: Partial<Record<string, string>> = {
  // RFC 6750 §3.1: no error parameter when the request carried no credentials.
  missing_token: 'Bearer realm="signet"',
  invalid_token: 'Bearer realm="signet", error="invalid_token"',
};

/** The contract's error body, or RFC 9457 problem details when the client asks for them. */
export function errorResponse(error: SignetError, accept: string | null, requestId: string): Response {
  const headers = new Headers();
  const reason = STATUS_CODES[error.status] ?? 'Error';
  const message = error.code === 'internal_error' ? `Internal error (request ${requestId})` : error.message;
  let body: Record<string, unknown>;
  if (accept !== null && /application\/problem\+json/i.test(accept)) {
    headers.set('content-type', 'application/problem+json');
    body = { type: `urn:signet:error:${publicCode(error.code)}`, title: reason, status: error.status, detail: message, code: publicCode(error.code) };
  } else {
    headers.set('content-type', 'application/json; charset=utf-8');
    body = { statusCode: error.status, error: reason, message, code: publicCode(error.code) };
  }
  if (error.details) body.details = error.details;
  const challenge = WWW_AUTHENTICATE[error.code];
  if (challenge) headers.set('www-authenticate', challenge);
  if (error.retryAfter !== undefined) headers.set('retry-after', String(error.retryAfter));
  if (error.rateLimit) {
    headers.set('ratelimit-limit', String(error.rateLimit.limit));
    headers.set('ratelimit-remaining', String(error.rateLimit.remaining));
    headers.set('ratelimit-reset', String(error.rateLimit.resetSeconds));
  }
  return new Response(JSON.stringify(body), { status: error.status, headers });
}
