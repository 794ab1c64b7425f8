import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

/**
 * Creates one PostgreSQL database for this run (each suite then takes its own
 * schema in it) and checks Redis. A missing service skips its suites loudly on a
 * developer machine and fails the run when SIGNET_REQUIRE_SERVICES=1 (CI).
 */
const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS = { host: '127.0.0.1', port: Number(process.env.TEST_REDIS_PORT ?? 6379) };

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string | null;
    redisUrl: string | null;
    chromiumPath: string | null;
  }
}

/** Debian's Chromium (apt-get install -y chromium): the browser suites never download one. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function redisAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(REDIS, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.on('data', (d) => (socket.destroy(), resolve(d.toString().startsWith('+PONG'))));
    socket.on('error', () => resolve(false));
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const required = process.env.SIGNET_REQUIRE_SERVICES === '1';
  const database = `signet_test_${randomBytes(6).toString('hex')}`;
  let postgresUrl: string | null = null;
  const admin = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${database}`;
    postgresUrl = url.href;
  } catch (error) {
    const message = `PostgreSQL is not reachable at ${ADMIN_URL} (${(error as Error).message})`;
    if (required) throw new Error(`${message}; SIGNET_REQUIRE_SERVICES=1 makes this a failure`);
    process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING every PostgreSQL suite: ${message}\n${'!'.repeat(78)}\n\n`);
  }
  const redisUrl = (await redisAnswers()) ? `redis://${REDIS.host}:${REDIS.port}` : null;
  if (!redisUrl) {
    const message = `Redis is not reachable at ${REDIS.host}:${REDIS.port}`;
    if (required) throw new Error(`${message}; SIGNET_REQUIRE_SERVICES=1 makes this a failure`);
    process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING every Redis suite: ${message}\n${'!'.repeat(78)}\n\n`);
  }
  const chromiumPath = existsSync(CHROMIUM) ? CHROMIUM : null;
  if (!chromiumPath) {
    const message = `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`;
    if (required) throw new Error(`${message}; SIGNET_REQUIRE_SERVICES=1 makes this a failure`);
    process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING every browser suite: ${message}\n${'!'.repeat(78)}\n\n`);
  }
  project.provide('postgresUrl', postgresUrl);
  project.provide('redisUrl', redisUrl);
  project.provide('chromiumPath', chromiumPath);

  return async () => {
    if (postgresUrl) {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    }
    await admin.end().catch(() => undefined);
  };
}
