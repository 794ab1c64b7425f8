import type { AdminKey } from '../core/admin/keys.js';
import type { Context } from 'hono';
import type { Authenticated, ClientContext } from '../core/sessions.js';
import type { Services } from '../services.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    services: Services;
    client: ClientContext;
    auth: Authenticated;
    /** The admin API key of an /admin request (scope checked by the dispatcher). */
    adminKey: AdminKey;
    /** A hosted page's form post, read and checked by the dispatcher. */
    form: URLSearchParams;
    /** CSP form-action sources a page adds for the client an authorization request waits on. */
    formTargets: readonly string[];
  };
}

export type AppContext = Context<AppEnv>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}
