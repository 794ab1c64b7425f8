import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import pg from 'pg';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { SignetConfig } from '../src/config.js';
import { loadConfig } from '../src/config.js';
import type { Clock } from '../src/core/clock.js';
import type { RunningServer } from '../src/server.js';
import { startServer } from '../src/server.js';

export type DialectName = 'sqlite' | 'postgres';

const postgresUrl = inject('postgresUrl');

/** Every storage suite runs once per database; PostgreSQL only when it answers. */
export const DIALECTS: DialectName[] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];

/** A clock tests move by hand: expiry is tested without sleeping. */
export class TestClock implements Clock {
  #offset = 0;
  now(): number {
    return Date.now() + this.#offset;
  }
  advance(seconds: number): void {
    this.#offset += seconds * 1000;
  }
}

/** Fast hashing parameters for tests; one test checks the production defaults. */
export const FAST_ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

/** A fresh PostgreSQL schema in this run's database, dropped by `drop()`. */
export async function createPostgresSchema(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!postgresUrl) throw new Error('PostgreSQL is not available');
  const schema = `s_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  const url = new URL(postgresUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.href,
    drop: async () => {
      const c = new pg.Client({ connectionString: postgresUrl });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

export interface TestServer extends RunningServer {
  clock: TestClock;
  /** JSON request helper: `call('POST', '/auth/signin', { body })`. */
  call(
    method: string,
    path: string,
    options?: { body?: unknown; token?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

/** This test process's data directory (key file, outbox), private and apart from ./data. */
export const TEST_DATA_DIR = mkdtempSync(join(tmpdir(), 'signet-test-'));

/** The operator token test servers take for GET /metrics. */
export const TEST_METRICS_TOKEN = randomBytes(32).toString('base64url');

export function testConfig(overrides: Partial<SignetConfig> = {}): Partial<SignetConfig> {
  return {
    dataDir: TEST_DATA_DIR,
    metricsToken: TEST_METRICS_TOKEN,
    host: '127.0.0.1',
    port: 0,
    publicUrl: 'http://signet.test',
    audience: 'http://signet.test',
    argon2: FAST_ARGON2,
    hashConcurrency: 2,
    logLevel: 'silent',
    // The contract's RATE_LIMITS=off "for test rigs": suites that test limits turn them on.
    rateLimits: false,
    ...overrides,
  };
}

/** A real Signet server on a random loopback port, on the given database. */
export async function startTestServer(
  dialect: DialectName,
  overrides: Partial<SignetConfig> = {},
  options: { clock?: TestClock; databaseUrl?: string; logger?: Logger } = {},
): Promise<TestServer> {
  const clock = options.clock ?? new TestClock();
  const pgSchema = dialect === 'postgres' && !options.databaseUrl ? await createPostgresSchema() : undefined;
  const databaseUrl = options.databaseUrl ?? pgSchema?.url;
  const base = loadConfig({});
  const running = await startServer({
    config: { ...base, ...testConfig(overrides), databaseUrl },
    clock,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(dialect === 'sqlite' ? { sqlitePath: ':memory:' } : {}),
  });
  // The hash timing a new server measures in the background (PasswordHasher.calibrate) is done before a test starts.
  await running.signet.services.accounts.settle();
  return {
    ...running,
    clock,
    async close(closeOptions) {
      await running.close(closeOptions);
      await pgSchema?.drop();
    },
    async call(method, path, { body, token, headers = {} } = {}) {
      const response = await fetch(running.url + path, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: response.status, body: parsed, headers: response.headers };
    },
  };
}

let counter = 0;
/** A unique, valid sign-up body. */
export function newAccount(overrides: Record<string, unknown> = {}): { email: string; password: string; username: string } & Record<string, unknown> {
  const id = `${Date.now().toString(36)}${(counter++).toString(36)}${randomBytes(2).toString('hex')}`;
  return { email: `user.${id}@example.com`, password: `tidy-otter-${id}-lamp`, username: `u_${id}`, ...overrides };
}

/** GET /metrics with the operator token. */
export async function metricsText(server: { url: string }): Promise<string> {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TEST_METRICS_TOKEN}` } });
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

/** A counter of GET /metrics: `signet_events_total{event="<name>"}` (0 when absent). */
export async function eventCount(server: { url: string }, event: string): Promise<number> {
  const line = (await metricsText(server)).split('\n').find((l) => l.startsWith(`signet_events_total{event="${event}"} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A logger whose lines (parsed) land in `lines`, for tests about what is logged. */
export function captureLogger(level = 'info'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}
