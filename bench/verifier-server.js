// A resource server as another service would write it: plain node:http, its
// routes guarded by signet/verify (dist/verify), in a child process of its own
// so the load generator never shares its event loop. Used by bench/run.js.
//
//   GET /bare               {"ok":true}: the same server without verification
//   GET /protected          verifier.node() (verified-token cache on, default size), answers {"sub":…}
//   GET /protected-nocache  the same with cacheSize: 0 (every request checks the RS256 signature)
//
// Environment: HOST, PORT, SIGNET_ISSUER, SIGNET_AUDIENCE, SIGNET_JWKS_URI.
// The JWKS is fetched before listening, so "ready" means the keys are loaded.
import { createServer } from 'node:http';
import { createVerifier } from '../dist/verify/index.js';

const { HOST = '127.0.0.1', PORT, SIGNET_ISSUER: issuer, SIGNET_AUDIENCE: audience, SIGNET_JWKS_URI: jwksUri } = process.env;
if (!PORT || !issuer || !audience || !jwksUri) {
  console.error('verifier-server: PORT, SIGNET_ISSUER, SIGNET_AUDIENCE and SIGNET_JWKS_URI are required');
  process.exit(2);
}

const onError = (error) => console.error(`verifier-server: ${error.message}`);
const options = { issuer, audience, algorithms: ['RS256'], jwksUri, onError };
const cached = createVerifier(options);
const uncached = createVerifier({ ...options, cacheSize: 0 });
const guards = { '/protected': cached.node(), '/protected-nocache': uncached.node() };

const BARE = JSON.stringify({ ok: true });

function sendJson(res, status, body) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(body);
}

const server = createServer((req, res) => {
  const path = req.url ?? '/';
  if (req.method === 'GET' && path === '/bare') return sendJson(res, 200, BARE);
  const guard = req.method === 'GET' ? guards[path] : undefined;
  if (!guard) return sendJson(res, 404, JSON.stringify({ error: 'not found' }));
  guard(req, res, () => sendJson(res, 200, JSON.stringify({ sub: req.auth.sub })));
});

try {
  await Promise.all([cached.refresh(), uncached.refresh()]);
} catch (error) {
  console.error(`verifier-server: could not load the JWKS from ${jwksUri}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

server.listen(Number(PORT), HOST);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    cached.close();
    uncached.close();
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
