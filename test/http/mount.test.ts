import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSignet } from '../../src/signet.js';
import type { Signet } from '../../src/signet.js';
import { newAccount, testConfig } from '../helpers.js';

/** The same Signet instance mounted four ways; each must serve the full flow. */
describe('Signet as a library', () => {
  let signet: Signet;
  beforeAll(async () => {
    signet = await createSignet({ config: { ...testConfig(), databaseUrl: undefined }, sqlitePath: ':memory:' });
  });
  afterAll(async () => {
    await signet.close();
  });

  async function flow(base: string, request: (url: string, init?: RequestInit) => Promise<Response>): Promise<void> {
    const account = newAccount();
    const signup = await request(`${base}/auth/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(account) });
    expect(signup.status).toBe(201);
    const { token } = (await signup.json()) as { token: string };
    const me = await request(`${base}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { email: string } }).user.email).toBe(account.email);
  }

  async function listen(handler: Parameters<typeof createServer>[1]) {
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it('answers web-standard Requests through fetch()', async () => {
    await flow('http://signet.test', (url, init) => signet.fetch(new Request(url, init)));
  });

  it('serves node:http through handler', async () => {
    const server = await listen(signet.handler);
    await flow(server.url, fetch);
    await server.close();
  });

  it('mounts in Express next to the app’s own routes', async () => {
    const app = express();
    app.use(signet.middleware);
    app.get('/hello', (_req, res) => {
      res.json({ hello: 'world' });
    });
    const server = await listen(app);
    await flow(server.url, fetch);
    expect(await (await fetch(`${server.url}/hello`)).json()).toEqual({ hello: 'world' });
    await server.close();
  });

  it('mounts in Fastify through an onRequest hook', async () => {
    const app = Fastify();
    app.addHook('onRequest', (request, reply, done) => {
      if (!signet.handles(request.url)) return done();
      reply.hijack();
      signet.handler(request.raw, reply.raw);
    });
    app.get('/hello', () => ({ hello: 'world' }));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await flow(url, fetch);
    expect(await (await fetch(`${url}/hello`)).json()).toEqual({ hello: 'world' });
    await app.close();
  });

  it('claims only its own paths', () => {
    expect(signet.handles('/auth/signin')).toBe(true);
    expect(signet.handles('/.well-known/jwks.json?x=1')).toBe(true);
    expect(signet.handles('/healthz')).toBe(true);
    expect(signet.handles('/authors')).toBe(false);
    expect(signet.handles('/api/auth/signin')).toBe(false);
  });
});
