// The yardstick of the request-pipeline targets: a bare Hono app on
// @hono/node-server (the stack Signet is built on) answering one JSON route,
// in a child process of its own like the Signet server. Used by bench/run.js.
//
//   GET /hello   {"status":"ok"}, as Signet's GET /healthz answers
//
// Environment: HOST, PORT.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const { HOST = '127.0.0.1', PORT } = process.env;
const app = new Hono();
app.get('/hello', (c) => c.json({ status: 'ok' }));
serve({ fetch: app.fetch, hostname: HOST, port: Number(PORT) });
process.once('SIGTERM', () => process.exit(0));
