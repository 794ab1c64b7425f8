import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
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
  close(): Promise<void>;
}

/** Starts Signet on `node:http` at the configured host and port. */
export async function startServer(options: CreateSignetOptions = {}): Promise<RunningServer> {
  const signet = await createSignet(options);
  const { host, port, tlsCert, tlsKey } = signet.services.config;
  // Direct TLS for deployments without a proxy in front; otherwise plain HTTP behind one.
  const server: Server =
    tlsCert && tlsKey
      ? createTlsServer({ cert: readFileSync(tlsCert), key: readFileSync(tlsKey), minVersion: 'TLSv1.2' }, signet.handler)
      : createServer(signet.handler);
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
  return {
    signet,
    server,
    url,
    metricsUrl: metricsServer ? `http://${hostPort(metricsServer.address() as AddressInfo)}` : undefined,
    adminUrl: adminServer ? `http://${hostPort(adminServer.address() as AddressInfo)}` : undefined,
    async close() {
      adminServer?.close();
      adminServer?.closeAllConnections();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await signet.close();
    },
  };
}

function hostPort(address: AddressInfo): string {
  return `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
