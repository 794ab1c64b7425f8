// The import benchmark: 10^6 users with bcrypt hashes, imported on SQLite and on PostgreSQL,
// timed and with peak memory (RSS) read from /usr/bin/time -v.
//
//   npm run build
//   node bench/import.js generate /tmp/users.csv 1000000   # write the file only
//   node bench/import.js run [rows]                         # generate, then import on both databases
//
// Hashes have bcrypt's exact format at cost 10 with random salts and digests: import checks format
// and cost only (computing a million bcrypt hashes would take hours), so these import like real
// ones. The end-to-end sign-in of imported bcrypt users is tested with real hashes in test/admin.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function fakeBcrypt() {
  const bytes = randomBytes(53);
  let tail = '';
  for (const b of bytes) tail += BCRYPT_ALPHABET[b & 63];
  return `$2b$10$${tail}`;
}

export async function generate(file, rows) {
  const out = createWriteStream(file);
  if (!out.write('id,username,email,password\n')) await once(out, 'drain');
  let chunk = '';
  for (let i = 1; i <= rows; i++) {
    chunk += `${i},user${i},user${i}@example.com,${fakeBcrypt()}\n`;
    if (i % 10_000 === 0) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'close');
}

function timedImport(label, file, env) {
  const run = spawnSync('/usr/bin/time', ['-v', process.execPath, 'dist/cli/main.js', '--json', 'import', file, '--key', 'id'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) throw new Error(`${label}: import failed (${run.status}): ${run.stderr}`);
  const report = JSON.parse(run.stdout);
  const wall = /Elapsed \(wall clock\) time \([^)]*\): ([\d:.]+)/.exec(run.stderr)?.[1] ?? '';
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(run.stderr)?.[1] ?? 0);
  // m:ss.ss or h:mm:ss
  const seconds = wall.split(':').reduce((total, part) => total * 60 + Number(part), 0);
  return {
    label,
    rows: report.rows,
    inserted: report.inserted,
    rejected: report.rejected,
    seconds,
    rowsPerSecond: Math.round(report.inserted / seconds),
    peakRssMiB: Math.round(rssKb / 1024),
  };
}

async function run(rows) {
  const dir = mkdtempSync(join(tmpdir(), 'signet-import-bench-'));
  const file = join(dir, 'users.csv');
  const started = Date.now();
  await generate(file, rows);
  console.log(`generated ${rows} rows in ${((Date.now() - started) / 1000).toFixed(1)} s: ${file}`);
  const results = [];
  results.push(timedImport('sqlite', file, { SIGNET_DATA_DIR: join(dir, 'sqlite'), DATABASE_URL: '' }));
  console.log(results.at(-1));
  const admin = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const database = `signet_import_bench_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${database}`);
  try {
    const url = new URL(admin);
    url.pathname = `/${database}`;
    results.push(timedImport('postgres', file, { SIGNET_DATA_DIR: join(dir, 'pg'), DATABASE_URL: url.href }));
    console.log(results.at(-1));
  } finally {
    await client.query(`drop database if exists ${database} with (force)`);
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  }
  console.table(results);
}

// The command line, when run as a script (bench/population.js imports `generate`).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'generate') await generate(args[0], Number(args[1] ?? 1_000_000));
  else if (command === 'run') await run(Number(args[0] ?? 1_000_000));
  else {
    console.error('usage: node bench/import.js generate <file> [rows] | run [rows]');
    process.exitCode = 2;
  }
}
