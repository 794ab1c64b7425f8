import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { CreateSignetOptions, Signet } from './signet.js';
import { createSignet } from './signet.js';

export interface RunningServer {
  signet: Signet;
  server: Server;
  url: string;
  /** The METRICS_PORT listener's URL, when one is configured. */
  metricsUrl: string | undefined;
  /** The ADMIN_PORT listener's URL, when one is configured. */
  adminUrl: string | undefined;
  /**
   * Stops gracefully: `/readyz` answers 503, no new connection is accepted,
   * idle keep-alive connections close, requests in flight get `graceMs`
   * (default SHUTDOWN_GRACE) to finish, and those still running then are cut
   * and counted in the log. Background work (audit, mail, hash upgrades) is
   * flushed before the store and Redis close. Calling it again returns the
   * same promise.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** Starts Signet on `node:http` at the configured host and port. */
export async function startServer(options: CreateSignetOptions = {}): Promise<RunningServer> {
  const signet = await createSignet(options);
  const { host, port, tlsCert, tlsKey } = signet.services.config;
  const drain = new Drain();
  const listener = (req: IncomingMessage, res: ServerResponse) => drain.track(res, () => signet.handler(req, res));
  // Direct TLS for deployments without a proxy in front; otherwise plain HTTP behind one.
  const server: Server =
    tlsCert && tlsKey ? createTlsServer({ cert: readFileSync(tlsCert), key: readFileSync(tlsKey), minVersion: 'TLSv1.2' }, listener) : createServer(listener);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const url = `${tlsCert ? 'https' : 'http'}://${hostPort(server.address() as AddressInfo)}`;
  // Metrics on a listener of their own (loopback by default): never on the public port without a token.
  const { metricsPort, metricsHost } = signet.services.config;
  const metricsServer = metricsPort === undefined ? undefined : createServer(signet.metrics);
  if (metricsServer) {
    try {
      await new Promise<void>((resolve, reject) => {
        metricsServer.once('error', reject);
        metricsServer.listen(metricsPort, metricsHost, () => resolve());
      });
    } catch (error) {
      server.close();
      await signet.close();
      throw error;
    }
  }
  // The admin API on a listener of its own when ADMIN_PORT is set (loopback by default).
  const { adminPort, adminHost } = signet.services.config;
  const adminServer = adminPort === undefined || !signet.admin ? undefined : createServer(signet.admin);
  if (adminServer) {
    try {
      await new Promise<void>((resolve, reject) => {
        adminServer.once('error', reject);
        adminServer.listen(adminPort, adminHost, () => resolve());
      });
    } catch (error) {
      server.close();
      metricsServer?.close();
      await signet.close();
      throw error;
    }
  }
  let closing: Promise<void> | undefined;
  return {
    signet,
    server,
    url,
    metricsUrl: metricsServer ? `http://${hostPort(metricsServer.address() as AddressInfo)}` : undefined,
    adminUrl: adminServer ? `http://${hostPort(adminServer.address() as AddressInfo)}` : undefined,
    close(closeOptions = {}) {
      closing ??= (async () => {
        const { logger, config, readiness } = signet.services;
        readiness.draining = true;
        adminServer?.close();
        adminServer?.closeAllConnections();
        metricsServer?.close();
        metricsServer?.closeAllConnections();
        const graceMs = closeOptions.graceMs ?? config.shutdownGrace * 1000;
        if (drain.inFlight > 0) logger.info({ inFlight: drain.inFlight, graceSeconds: graceMs / 1000 }, 'draining: waiting for requests in flight');
        const cut = await drain.close(server, graceMs);
        if (cut > 0) logger.warn({ cut, graceSeconds: graceMs / 1000 }, `shutdown grace over: cut ${cut} connection(s) with requests still running`);
        // Background work is flushed inside: hash upgrades, mail being sent, audit entries.
        await signet.close();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}

/**
 * Counts requests in flight and, once draining, asks every client to close
 * its keep-alive connection after the answer it is waiting for, so the server
 * empties without resetting a connection in the middle of a request.
 */
class Drain {
  readonly #responses = new Set<ServerResponse>();
  #draining = false;
  #server: Server | undefined;

  get inFlight(): number {
    return this.#responses.size;
  }

  track(res: ServerResponse, handle: () => void): void {
    this.#responses.add(res);
    if (this.#draining) res.setHeader('connection', 'close');
    res.once('close', () => {
      this.#responses.delete(res);
      // The connection it came on may be idle now: close it rather than wait for its keep-alive timeout.
      if (this.#draining) this.#server?.closeIdleConnections();
    });
    handle();
  }

  /** Stops accepting, waits up to `graceMs` for requests in flight, then cuts what is left. Returns how many requests were cut. */
  async close(server: Server, graceMs: number): Promise<number> {
    this.#draining = true;
    this.#server = server;
    for (const res of this.#responses) if (!res.headersSent) res.setHeader('connection', 'close');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => (timer = setTimeout(() => resolve('grace over'), graceMs)));
    const outcome = await Promise.race([closed, graceOver]);
    clearTimeout(timer);
    if (outcome !== 'grace over') return 0;
    const cut = this.#responses.size;
    server.closeAllConnections();
    await closed;
    return cut;
  }
}

function hostPort(address: AddressInfo): string {
  return `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
