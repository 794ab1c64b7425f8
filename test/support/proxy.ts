import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP forwarder that can be taken down (refusing connections) and brought
 * back on the same port, or stalled: connections stay open and accepted, but
 * nothing is forwarded either way (a database host that hangs) until `resume()`.
 */
export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;
  #stalled = false;
  #held: (() => void)[] = [];
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      this.#forward(client, upstream);
      this.#forward(upstream, client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  #forward(from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      const write = () => {
        if (!to.destroyed) to.write(chunk);
      };
      if (this.#stalled) this.#held.push(write);
      else write();
    });
  }

  /** Holds every byte from now on: the database is reachable but does not answer. */
  stall(): void {
    this.#stalled = true;
  }

  /** Delivers what was held, in order, and forwards again. */
  resume(): void {
    this.#stalled = false;
    for (const write of this.#held.splice(0)) write();
  }

  /** Stops listening and cuts every connection: the database is now unreachable. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
  }
}
