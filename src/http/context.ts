import type { Context } from 'hono';
import type { Authenticated, ClientContext } from '../core/sessions.js';
import type { Services } from '../services.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    services: Services;
    client: ClientContext;
    auth: Authenticated;
    /** A hosted page's form post, read and checked by the dispatcher. */
    form: URLSearchParams;
    /** CSP form-action sources a page adds for the client an authorization request waits on. */
    formTargets: readonly string[];
    /** Headers for whatever answer this request ends with (see addHeader). */
    extraHeaders: [string, string][];
  };
}

export type AppContext = Context<AppEnv>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}

/**
 * Adds a header to whatever answer this request ends with, an error answer
 * included (cookies, rate-limit state): the outermost middleware writes them.
 * Hono's own `c.header` would make every request pay for rebuilding its
 * response.
 */
export function addHeader(c: AppContext, name: string, value: string): void {
  const pending = c.get('extraHeaders');
  if (pending) pending.push([name, value]);
  else c.set('extraHeaders', [[name, value]]);
}

/** Writes the headers of addHeader onto the answer. */
export function applyExtraHeaders(c: AppContext): void {
  const pending = c.get('extraHeaders');
  if (!pending) return;
  const headers = c.res.headers;
  for (const [name, value] of pending) {
    if (name === 'set-cookie') headers.append(name, value);
    else headers.set(name, value);
  }
}
