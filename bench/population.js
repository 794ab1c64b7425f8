// Sign-in latency against the size of the user table (issue 11: "sign-in p50 with 10^6 users
// within 5 % of 10^3 users, on both databases").
//
//   npm run build && node bench/population.js [small=1000] [large=1000000]
//
// For each database and each size: the users are imported with `signet import` (bench/import.js's
// generator: bcrypt-format hashes), a server starts on that store (RATE_LIMITS=off), one probe account
// signs up, then signs in 200 times one after another; p50 and p90 of those sign-ins are compared.
// A sign-in is one Argon2id verify plus the lookups and writes around it: the table's size should only
// show in the lookups, which are index seeks.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { generate } from './import.js';
import { freePort } from './server.js';

const SIGNINS = 200;
const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function importUsers(file, env) {
  const run = spawnSync(process.execPath, ['dist/cli/main.js', '--json', 'import', file, '--key', 'id'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (run.status !== 0) throw new Error(`import failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout).inserted;
}

async function signInLatency(env) {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/cli/main.js', 'serve'], {
    env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port), RATE_LIMITS: 'off', LOG_LEVEL: 'warn', EMAIL_VERIFICATION: 'off' },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      if (i > 600) throw new Error('server did not start');
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        // not yet
      }
      await sleep(50);
    }
    const probe = { email: `probe-${randomBytes(4).toString('hex')}@example.com`, password: 'a probe password for the bench' };
    const post = (path, body) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const signedUp = await post('/auth/signup', probe);
    if (signedUp.status !== 201) throw new Error(`sign-up answered ${signedUp.status}`);
    const times = [];
    for (let i = 0; i < SIGNINS + 10; i++) {
      const started = performance.now();
      const response = await post('/auth/signin', { email: probe.email, password: probe.password });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`sign-in answered ${response.status}`);
      if (i >= 10) times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return { p50: times[Math.floor(times.length * 0.5)], p90: times[Math.floor(times.length * 0.9)] };
  } finally {
    child.kill('SIGTERM');
  }
}

async function onSqlite(dir, file) {
  const env = { SIGNET_DATA_DIR: join(dir, `sqlite-${randomBytes(3).toString('hex')}`), DATABASE_URL: '' };
  const inserted = importUsers(file, env);
  return { inserted, ...(await signInLatency(env)) };
}

async function onPostgres(file) {
  const database = `signet_population_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${database}`);
  try {
    const url = new URL(ADMIN_URL);
    url.pathname = `/${database}`;
    const env = { DATABASE_URL: url.href, SIGNET_DATA_DIR: mkdtempSync(join(tmpdir(), 'signet-population-pg-')) };
    const inserted = importUsers(file, env);
    return { inserted, ...(await signInLatency(env)) };
  } finally {
    await admin.query(`drop database if exists ${database} with (force)`);
    await admin.end();
  }
}

const [small = 1000, large = 1_000_000] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'signet-population-'));
try {
  const rows = [];
  for (const size of [small, large]) {
    const file = join(dir, `users-${size}.csv`);
    await generate(file, size);
    rows.push({ database: 'sqlite', users: size, ...(await onSqlite(dir, file)) });
    console.log(rows.at(-1));
    rows.push({ database: 'postgres', users: size, ...(await onPostgres(file)) });
    console.log(rows.at(-1));
  }
  for (const database of ['sqlite', 'postgres']) {
    const [a, b] = rows.filter((r) => r.database === database);
    const change = ((b.p50 - a.p50) / a.p50) * 100;
    console.log(
      `${database}: sign-in p50 ${a.p50.toFixed(2)} ms with ${a.users} users, ${b.p50.toFixed(2)} ms with ${b.users} (${change >= 0 ? '+' : ''}${change.toFixed(1)} %; target within 5 %)`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
