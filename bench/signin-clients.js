// Legitimate users signing in, for the attack phase of bench/run.js. Runs in a
// worker thread so their latencies are measured on an event loop of their own,
// not one also driving the attacker's autocannon connections.
//
// Each client is one person on one device: its own X-Forwarded-For address,
// its device cookie (if it has one; renewed from Set-Cookie like a browser
// would) and the right password. It signs in every `intervalMs` (its own), waiting for
// each answer before the next (a person does not click twice), starting at an
// offset so the clients spread over the interval.
import { parentPort } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';

const fetch = globalThis.fetch;
const AbortSignal = globalThis.AbortSignal;

async function signIn(url, client, cookieName, timeoutMs) {
  const headers = { 'content-type': 'application/json', 'x-forwarded-for': client.address, 'user-agent': 'signet-bench-legit' };
  if (client.cookie) headers.cookie = `${cookieName}=${client.cookie}`;
  const started = performance.now();
  try {
    const response = await fetch(`${url}/auth/signin`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ email: client.email, password: client.password }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    let ok = false;
    if (response.status === 200) {
      try {
        ok = typeof JSON.parse(text).token === 'string';
      } catch {
        ok = false;
      }
    }
    // A known device's cookie is renewed on every successful sign-in, as a browser would keep it.
    for (const line of response.headers.getSetCookie()) {
      if (!client.cookie || !line.startsWith(`${cookieName}=`)) continue;
      const value = line.slice(cookieName.length + 1).split(';')[0];
      if (value) client.cookie = value;
    }
    return { status: response.status, ok, ms };
  } catch (error) {
    const ms = performance.now() - started;
    const timeout = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    return { status: timeout ? 'timeout' : 'error', ok: false, ms, error: error instanceof Error ? error.message : String(error) };
  }
}

async function runClients({ url, clients, cookieName, durationMs, timeoutMs }) {
  const start = performance.now();
  const deadline = start + durationMs;
  const results = [];
  await Promise.all(
    clients.map(async (client, index) => {
      const { intervalMs } = client;
      let next = start + (intervalMs * index) / clients.length;
      for (;;) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        if (performance.now() >= deadline) return;
        const result = await signIn(url, client, cookieName, timeoutMs);
        results.push({ group: client.group, client: index, ...result });
        next += intervalMs;
        // A slow answer does not make the person click several times to catch up.
        if (next < performance.now()) next = performance.now();
      }
    }),
  );
  return { results, cookies: clients.map((c) => c.cookie), elapsedMs: performance.now() - start };
}

parentPort.on('message', (message) => {
  if (message.type !== 'run') return;
  runClients(message).then(
    (outcome) => parentPort.postMessage({ type: 'done', ...outcome }),
    (error) => parentPort.postMessage({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
parentPort.postMessage({ type: 'ready' });
