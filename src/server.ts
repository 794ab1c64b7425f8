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
  const address = server.address() as AddressInfo;
  const url = `${tlsCert ? 'https' : 'http'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    signet,
    server,
    url,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await signet.close();
    },
  };
}
