import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startTestServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

/**
 * Direct TLS (issue 5 §6, contract "Response headers"): with TLS_CERT and
 * TLS_KEY Signet serves HTTPS itself and sends HSTS. The certificate is a
 * throw-away self-signed one made with openssl for this run.
 */

function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const HAVE_OPENSSL = opensslAvailable();
if (!HAVE_OPENSSL) {
  process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING the direct-TLS suite: the openssl command is not available\n${'!'.repeat(78)}\n\n`);
}

interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  protocol: string | null;
}

function httpsGet(url: string, path: string): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, url), { method: 'GET', rejectUnauthorized: false }, (res) => {
      const socket = res.socket as import('node:tls').TLSSocket;
      const protocol = socket.getProtocol?.() ?? null;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, protocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!HAVE_OPENSSL)('direct TLS (TLS_CERT / TLS_KEY)', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'signet-tls-'));
    cert = join(dir, 'c.pem');
    key = join(dir, 'k.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], {
      stdio: 'pipe',
    });
    server = await startTestServer('sqlite', { tlsCert: cert, tlsKey: key });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS: /healthz answers 200 over TLS with Strict-Transport-Security', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const response = await httpsGet(server.url, '/healthz');
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ status: 'ok' });
    const hsts = String(response.headers['strict-transport-security'] ?? '');
    const maxAge = /max-age=(\d+)/.exec(hsts);
    expect(maxAge, hsts).not.toBeNull();
    expect(Number(maxAge![1])).toBeGreaterThanOrEqual(15_552_000);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.protocol).toMatch(/^TLSv1\.[23]$/);
  });

  it('HSTS is on every HTTPS response, errors included', async () => {
    const response = await httpsGet(server.url, '/auth/me');
    expect(response.status).toBe(401);
    expect(JSON.parse(response.body).code).toBe('missing_token');
    expect(response.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expect(response.headers['cache-control']).toBe('no-store');
  });

  it('does not answer plain HTTP on the TLS port', async () => {
    const plain = server.url.replace(/^https:/, 'http:');
    await expect(fetch(`${plain}/healthz`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
  });

  it('TLS_CERT without TLS_KEY (or the reverse) is a ConfigError at start', async () => {
    await expect(startTestServer('sqlite', { tlsCert: cert })).rejects.toBeInstanceOf(ConfigError);
    await expect(startTestServer('sqlite', { tlsKey: key })).rejects.toBeInstanceOf(ConfigError);
    expect(() => loadConfig({ TLS_CERT: cert })).toThrow(ConfigError);
    expect(() => loadConfig({ TLS_KEY: key })).toThrow(ConfigError);
    expect(() => loadConfig({ TLS_CERT: cert })).toThrow(/TLS_KEY/);
  });
});
