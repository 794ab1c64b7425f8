import type { IncomingMessage, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import type { SignetConfig } from './config.js';
import { loadConfig } from './config.js';
import type { AppEnv } from './http/context.js';
import { createAdminApp, createApp, pathMatcher } from './http/app.js';
import { metricsResponse } from './http/handlers/meta.js';
import type { ServiceOptions, Services } from './services.js';
import { createServices } from './services.js';

export interface Signet {
  /** Web-standard handler: `(request: Request) => Promise<Response>`. */
  fetch: (request: Request) => Promise<Response>;
  /** `node:http` request listener: answers every request (404 for paths that are not Signet's). */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Connect/Express middleware: Signet's paths are answered, anything else goes to `next()`. Mount at the root. */
  middleware: (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;
  /** Whether a request path belongs to Signet (for Fastify's `onRequest` hook and similar). */
  handles: (url: string) => boolean;
  /** The admin API alone (/admin/*), for the ADMIN_PORT listener; undefined without ADMIN_PORT (then it is on `handler`). */
  admin: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** GET /metrics without a token, for a private listener (METRICS_PORT, or one the embedding app keeps private). */
  metrics: (req: IncomingMessage, res: ServerResponse) => void;
  app: Hono<AppEnv>;
  services: Services;
  /** Periodic work (key-state refresh); stopped by close(). */
  close(): Promise<void>;
}

export interface CreateSignetOptions extends ServiceOptions {
  /** Settings in code; anything left out is read from the environment. */
  config?: Partial<SignetConfig>;
}

/**
 * Builds a Signet instance: opens the store, runs migrations, loads or creates
 * signing keys, and returns handlers for any Node.js HTTP stack.
 *
 * @example
 * const signet = await createSignet({ config: { databaseUrl: process.env.DATABASE_URL } });
 * http.createServer(signet.handler).listen(3000);
 */
export async function createSignet(options: CreateSignetOptions = {}): Promise<Signet> {
  // Settings given in code meet the same parsers as the environment's (and win over it).
  const config = loadConfig(process.env, options.config ?? {});
  const services = await createServices(config, options);
  const { app, routes } = createApp(services);
  const refresher = scheduleKeyRefresh(services);
  // Mail queued by an earlier process (or during an SMTP outage) is sent without waiting for new mail.
  services.mailer.start();
  services.retention.start();
  // Time the kinds of stored hash before the first failed sign-in must look like them (see PasswordHasher.failureFloorMs).
  services.accounts.calibrate();
  const handler = getRequestListener(app.fetch);
  const isSignetPath = pathMatcher(routes);
  const handles = (url: string) => isSignetPath(url.split('?')[0] ?? '');
  return {
    fetch: async (request) => app.fetch(request),
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the listener handles its own promise
    handler,
    middleware: (req, res, next) => (handles(req.url ?? '/') ? void handler(req, res) : next()),
    handles,
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the listener handles its own promise
    admin: config.adminPort === undefined ? undefined : getRequestListener(createAdminApp(services).fetch),
    metrics: (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const response = req.method === 'GET' && path === '/metrics' ? metricsResponse(services.metrics) : new Response('Not found\n', { status: 404 });
      res.writeHead(response.status, Object.fromEntries(response.headers));
      void response.text().then((body) => res.end(body));
    },
    app,
    services,
    async close() {
      clearInterval(refresher);
      await services.close();
    },
  };
}

/** Key states change with time (a next key activates, an old one retires); every instance re-reads the table. */
function scheduleKeyRefresh(services: Services): NodeJS.Timeout {
  const timer = setInterval(() => {
    services.keyring
      .refresh()
      .catch((error: unknown) => services.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'signing key refresh failed'));
  }, 30_000);
  timer.unref();
  return timer;
}
