// Figures for docs/scaling.md: `npm run build && node bench/scaling.js`.
//
//   1. Argon2id verifications per core per second at the default parameters
//      (19456 KiB, t=2, p=1), on one thread in this process.
//   2. CPU per sign-in of a real `signet serve` (child process, SQLite,
//      RATE_LIMITS=off, default hashing), read from /proc: sign-ins per core
//      per second end to end.
//   3. Round trips to PostgreSQL and Redis per sign-up, sign-in, refresh and
//      /auth/me, counted at the client libraries (every pg `Client.query`, every
//      ioredis command) of an in-process server with the production defaults
//      (rate limits on, REDIS_URL set). Requests run one after another, so each
//      audit entry is its own batch: an upper bound (under load, entries share
//      transactions). Timer work (mail queue poll, key refresh) is measured
//      while idle and subtracted. `/auth/me` is measured twice: a session's
//      first check, and the same sessions again moments later.
//
// Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres)
// and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379). Prints JSON-ish lines.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import argon2 from '@node-rs/argon2';
import { Redis } from 'ioredis';
import pg from 'pg';

const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = join(import.meta.dirname, '..');
const DEFAULTS = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

// --- counting round trips at the client libraries -------------------------
let pgQueries = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (...args) {
  pgQueries++;
  return query.apply(this, args);
};
let redisCommands = 0;
const sendCommand = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (...args) {
  redisCommands++;
  return sendCommand.apply(this, args);
};

function account() {
  const id = randomBytes(6).toString('hex');
  return { email: `bench.${id}@example.com`, password: `tidy-otter-${id}-lamp`, username: `b_${id}` };
}

async function call(url, method, path, { body, token } = {}) {
  const response = await fetch(url + path, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

// --- 1. raw Argon2id ---------------------------------------------------------
function rawArgon2() {
  const password = 'correct horse battery staple';
  const hash = argon2.hashSync(password, DEFAULTS);
  argon2.verifySync(hash, password);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < 3000) {
    argon2.verifySync(hash, password);
    count++;
  }
  const ms = performance.now() - started;
  return { verifiesPerCoreSecond: Math.round((count / ms) * 1000 * 10) / 10, msPerVerify: Math.round((ms / count) * 100) / 100 };
}

// --- 2. CPU per sign-in of signet serve --------------------------------------
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime (fields 14 and 15), in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function serveCpuPerSignIn() {
  const dataDir = mkdtempSync(join(tmpdir(), 'signet-scaling-'));
  const child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'serve'], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: '0',
      SIGNET_DATA_DIR: dataDir,
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'info',
      EMAIL_VERIFICATION: 'off',
      HASH_QUEUE_BUDGET_MS: '60000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The listening line names the URL (port 0 picks a free one).
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /"url":"(http:[^"]+)"/.exec(out);
      if (match) resolve(match[1]);
      if (process.env.BENCH_DEBUG) process.stderr.write(chunk);
    });
    child.once('exit', (code, signal) => reject(new Error(`signet serve exited ${code ?? signal}`)));
  });
  try {
    const accounts = Array.from({ length: 40 }, account);
    for (const a of accounts) await call(url, 'POST', '/auth/signup', { body: a });
    // Warm up.
    for (const a of accounts.slice(0, 10)) await call(url, 'POST', '/auth/signin', { body: { email: a.email, password: a.password } });
    const rounds = 8;
    const before = cpuMs(child.pid);
    const started = performance.now();
    for (let r = 0; r < rounds; r++) {
      await Promise.all(accounts.map((a) => call(url, 'POST', '/auth/signin', { body: { email: a.email, password: a.password } })));
    }
    const seconds = (performance.now() - started) / 1000;
    const n = rounds * accounts.length;
    const cpuPerSignIn = (cpuMs(child.pid) - before) / n;
    return {
      signIns: n,
      perSecond: Math.round(n / seconds),
      cpuMsPerSignIn: Math.round(cpuPerSignIn * 100) / 100,
      signInsPerCoreSecond: Math.round(1000 / cpuPerSignIn),
    };
  } finally {
    child.kill('SIGTERM');
  }
}

// --- 3. round trips per operation ---------------------------------------------
async function roundTrips() {
  const { startServer } = await import(join(ROOT, 'dist/server.js'));
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(ADMIN_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const running = await startServer({
    config: {
      host: '127.0.0.1',
      port: 0,
      publicUrl: 'http://signet.test',
      dataDir: mkdtempSync(join(tmpdir(), 'signet-scaling-')),
      databaseUrl: url.href,
      redisUrl: REDIS_URL,
      redisPrefix: schema,
      logLevel: 'silent',
      argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
    },
  });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
  const services = running.signet.services;
  const quiet = async () => {
    await services.accounts.settle();
    await services.audit.flush();
    await settle();
  };
  try {
    await quiet();
    // Idle rate of timer work (mail queue poll, key refresh), to subtract.
    let pg0 = pgQueries;
    let r0 = redisCommands;
    let t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const idle = { pgPerMs: (pgQueries - pg0) / (performance.now() - t0), redisPerMs: (redisCommands - r0) / (performance.now() - t0) };

    const N = 20;
    const results = {};
    const measure = async (name, op) => {
      pg0 = pgQueries;
      r0 = redisCommands;
      t0 = performance.now();
      for (let i = 0; i < N; i++) await op(i);
      await quiet();
      const ms = performance.now() - t0;
      results[name] = {
        pgRoundTrips: Math.round(((pgQueries - pg0 - idle.pgPerMs * ms) / N) * 10) / 10,
        redisRoundTrips: Math.round(((redisCommands - r0 - idle.redisPerMs * ms) / N) * 10) / 10,
      };
    };
    const accounts = Array.from({ length: N }, account);
    const sessions = [];
    await measure('signup', async (i) => {
      sessions.push(await call(running.url, 'POST', '/auth/signup', { body: accounts[i] }));
    });
    await measure('signin', async (i) => {
      sessions[i] = await call(running.url, 'POST', '/auth/signin', { body: { email: accounts[i].email, password: accounts[i].password } });
    });
    await measure('refresh', async (i) => {
      sessions[i] = await call(running.url, 'POST', '/auth/token/refresh', { body: { refreshToken: sessions[i].refreshToken } });
    });
    await measure('me', async (i) => {
      await call(running.url, 'GET', '/auth/me', { token: sessions[i].token });
    });
    // The same sessions again, moments later: what a session cache, if any, answers.
    await measure('me (again)', async (i) => {
      await call(running.url, 'GET', '/auth/me', { token: sessions[i].token });
    });
    return { idlePgQueriesPerSecond: Math.round(idle.pgPerMs * 1000 * 10) / 10, perOperation: results };
  } finally {
    await running.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${schema}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
}

console.log(JSON.stringify({ argon2: rawArgon2() }));
console.log(JSON.stringify({ signInCpu: await serveCpuPerSignIn() }));
console.log(JSON.stringify({ roundTrips: await roundTrips() }, null, 1));
