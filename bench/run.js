// Signet benchmark: `npm run bench` (builds dist/ first).
//
// Measures, in one run on this machine, and prints only ratios/figures it
// measured:
//   1. raw Argon2id verifySync rate in N worker threads (no server running);
//   2. POST /auth/signin rate against the real server in a child process,
//      and its ratio to (1);
//   3. GET /auth/me (Bearer) vs GET /healthz at the same concurrency;
//   4. GET /auth/me latency idle vs during a wrong-password sign-in flood;
//   5. the server's RSS afterwards.
// Plus, for each phase, where the CPU went (server main thread, server Argon2
// threads, other server threads, this load-generating process, every other
// process on the machine) and how long the server's event loop waited for a
// core, from /proc: on a shared 2-core machine those explain the ratios.
//
// Only 127.0.0.1 is targeted; nothing is written into the repository (the
// server's SQLite lives in a tmp dir that is removed). The child server is
// killed on success, error, SIGINT/SIGTERM and by a watchdog.
//
// BENCH_CPU_PROF=1 starts the server with --cpu-prof and keeps the profile in
// a tmp dir (printed at the end) for chrome://inspect or speedscope.
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import argon2 from '@node-rs/argon2';
import { load, stopAllLoad } from './load.js';
import { busiestThreads, cpuBetween, readMachineCpu, readMemory, readThreadCpu, startServer } from './server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ARGON2ID = 2;

const SETTINGS = {
  rawHashSeconds: 5,
  accounts: 50,
  signinConnections: 8,
  signinSeconds: 8,
  meConnections: 32,
  meSeconds: 8,
  warmupSeconds: 1,
  floodConnections: 64,
  floodMeConnections: 8,
  floodMeSeconds: 8,
  /** The flood starts this long before /auth/me is measured, so its queue is full. */
  floodLeadSeconds: 1.5,
  /** After the flood, watch the Argon2 threads at most this long for queued work left behind. */
  drainMaxSeconds: 8,
  watchdogSeconds: 170,
};

// ---------------------------------------------------------------- lifecycle

let server;
let cpuProfileDir;

function killServerNow() {
  server?.killNow();
}

process.on('exit', killServerNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the server and exiting`);
    stopAllLoad();
    void (server ? server.stop(1000) : Promise.resolve()).finally(() => process.exit(130));
  });
}
const watchdog = setTimeout(() => {
  console.error(`\nbench exceeded ${SETTINGS.watchdogSeconds} s: stopping the server and exiting`);
  stopAllLoad();
  killServerNow();
  process.exit(2);
}, SETTINGS.watchdogSeconds * 1000);
watchdog.unref();

// ---------------------------------------------------------------- helpers

const log = (message) => process.stderr.write(`  · ${message}\n`);

/** A snapshot of the CPU used so far by the server's threads and by this process. */
function cpuMark() {
  return { wall: performance.now(), threads: server && !server.exited ? readThreadCpu(server.pid) : new Map(), self: process.cpuUsage(), machine: readMachineCpu() };
}

/**
 * CPU between two marks, as % of one core: server main thread, Argon2
 * threads, other server threads, this process, and every other process on the
 * machine (noise). Also the raw seconds, for per-request costs.
 */
function cpuReport(from, to, hashTids) {
  const wallSeconds = (to.wall - from.wall) / 1000;
  const split = server ? cpuBetween(from.threads, to.threads, server.pid, hashTids) : { main: 0, hash: 0, rest: 0, mainWait: NaN };
  const selfSeconds = (to.self.user - from.self.user + to.self.system - from.self.system) / 1e6;
  const serverSeconds = split.main + split.hash + split.rest;
  const othersSeconds = Math.max(0, to.machine - from.machine - serverSeconds - selfSeconds);
  const pct = (seconds) => (100 * seconds) / wallSeconds;
  return {
    main: pct(split.main),
    hash: pct(split.hash),
    rest: pct(split.rest),
    bench: pct(selfSeconds),
    others: pct(othersSeconds),
    mainWait: pct(split.mainWait),
    seconds: { ...split, server: serverSeconds, bench: selfSeconds, others: othersSeconds, wall: wallSeconds },
  };
}

/** Runs `run()` between two CPU marks. */
async function withCpu(hashTids, run) {
  const from = cpuMark();
  const result = await run();
  const to = cpuMark();
  return { result, from, to, cpu: cpuReport(from, to, hashTids) };
}

async function postJson(path, body, headers = {}) {
  const response = await globalThis.fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

/** Runs `task(i)` for i in [0, count) with at most `limit` in flight. */
async function pool(count, limit, task) {
  let next = 0;
  const results = new Array(count);
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

const account = (i) => ({ email: `bench-${i}@example.com`, username: `bench${i}`, password: `bench-${i}-violet-harbour` });

/** An autocannon request whose JSON body rotates across `bodies`. */
function rotatingPost(path, bodies) {
  let next = 0;
  const encoded = bodies.map((b) => JSON.stringify(b));
  return [
    {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, body: encoded[next++ % encoded.length] }),
    },
  ];
}

/** An autocannon GET whose Bearer token rotates across `tokens`. */
function rotatingBearer(path, tokens) {
  let next = 0;
  return [
    {
      method: 'GET',
      path,
      setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }),
    },
  ];
}

// ---------------------------------------------------------------- phases

async function measureRawHash(params, threads, seconds) {
  const password = 'bench-raw-violet-harbour';
  const hash = argon2.hashSync(password, { ...params, algorithm: ARGON2ID });
  const workerUrl = new URL('./argon2-worker.js', import.meta.url);
  const workers = Array.from({ length: threads }, () => new Worker(workerUrl, { workerData: { hash, password } }));
  try {
    const ready = await Promise.all(workers.map((w) => onceMessage(w, 'ready')));
    if (!ready.every((m) => m.ok)) throw new Error('raw Argon2 warm-up: the hash did not verify');
    const { result: results, cpu } = await withCpu([], () => {
      const done = Promise.all(workers.map((w) => onceMessage(w, 'done')));
      for (const w of workers) w.postMessage({ durationMs: seconds * 1000 });
      return done;
    });
    if (results.some((r) => r.failures > 0)) throw new Error('raw Argon2: a verification returned false');
    const count = results.reduce((a, r) => a + r.count, 0);
    const rate = results.reduce((a, r) => a + r.count / (r.elapsedMs / 1000), 0);
    const perHashMs = results.reduce((a, r) => a + r.elapsedMs / r.count, 0) / results.length;
    return { hash, count, rate, perHashMs, elapsedSeconds: Math.max(...results.map((r) => r.elapsedMs)) / 1000, cpu };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function onceMessage(worker, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (message) => {
      if (message.type !== type) return;
      cleanup();
      resolve(message);
    };
    const onError = (error) => {
      cleanup();
      reject(error);
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`raw Argon2 worker exited with code ${code}`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/**
 * Seconds until the server's Argon2 threads fall idle (under 10 % of one core
 * over a 250 ms window), at most `maxSeconds`; and their CPU seconds meanwhile.
 */
async function measureDrain(hashTids, maxSeconds) {
  const start = cpuMark();
  let previous = start;
  for (;;) {
    await sleep(250);
    const now = cpuMark();
    const window = cpuReport(previous, now, hashTids);
    const elapsed = (now.wall - start.wall) / 1000;
    if (window.hash < 10 || elapsed >= maxSeconds) {
      const total = cpuReport(start, now, hashTids);
      return { seconds: window.hash < 10 ? (previous.wall - start.wall) / 1000 : elapsed, capped: window.hash >= 10, hashSeconds: total.seconds.hash };
    }
    previous = now;
  }
}

async function signUpAll(count) {
  const results = await pool(count, 2, async (i) => {
    const res = await postJson('/auth/signup', account(i));
    if (res.status !== 201 || typeof res.json?.token !== 'string') {
      throw new Error(`POST /auth/signup for account ${i} answered ${res.status}: ${res.text.slice(0, 300)}`);
    }
    return res.json.token;
  });
  return results;
}

// ---------------------------------------------------------------- output

const f = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ms = (n) => (Number.isFinite(n) ? `${n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1)} ms` : '-');

function statusSummary(counts, expected) {
  const parts = Object.entries(counts)
    .filter(([code]) => !expected.includes(Number(code)))
    .map(([code, n]) => `${n}×${code}`);
  return parts.length ? parts.join(' ') : '';
}

function table(rows, columns) {
  const widths = columns.map((c) => Math.max(c.title.length, ...rows.map((r) => String(r[c.key] ?? '').length)));
  const line = (cells) => cells.map((cell, i) => (columns[i].left ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i]))).join('  ');
  return [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => r[c.key] ?? '')))].join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const configModule = await import(pathToFileURL(join(ROOT, 'dist/config.js')).href);
  // The production defaults, read from the code rather than restated: an empty environment.
  const defaults = configModule.loadConfig({});
  const params = { ...defaults.argon2 };
  // Every variable Signet reads is removed from the server's environment, so it runs on its defaults.
  const configEnvNames = (configModule.OPTIONS ?? []).map((o) => o.env);
  const threads = availableParallelism();
  const S = SETTINGS;

  console.log(`Signet bench — node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, availableParallelism ${threads}`);
  console.log(`Argon2id m=${params.memoryCost} KiB t=${params.timeCost} p=${params.parallelism}; server HASH_CONCURRENCY default ${defaults.hashConcurrency}`);

  // 1. Raw Argon2id, before the server exists so nothing competes.
  log(`raw Argon2id verifySync, ${threads} threads, ${S.rawHashSeconds} s`);
  const raw = await measureRawHash(params, threads, S.rawHashSeconds);

  // Server in a child process.
  const nodeArgs = [];
  if (process.env.BENCH_CPU_PROF === '1') {
    cpuProfileDir = mkdtempSync(join(tmpdir(), 'signet-bench-prof-'));
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`);
  }
  log('starting the server (node dist/cli/main.js serve)');
  server = await startServer({ root: ROOT, configEnvNames, nodeArgs });
  log(`server pid ${server.pid} on ${server.url}, ready in ${f(server.startupMs, 0)} ms; signing up ${S.accounts} accounts`);
  const signupStart = performance.now();
  const tokens = await signUpAll(S.accounts);
  const signupSeconds = (performance.now() - signupStart) / 1000;
  const accounts = Array.from({ length: S.accounts }, (_, i) => account(i));

  // Warm the sign-in path (and the dummy hash some paths create lazily) outside the measurement.
  for (const i of [0, 1]) {
    const res = await postJson('/auth/signin', { email: accounts[i].email, password: accounts[i].password });
    if (res.status !== 200 || typeof res.json?.token !== 'string') throw new Error(`warm-up sign-in answered ${res.status}: ${res.text.slice(0, 300)}`);
  }
  const wrong = await postJson('/auth/signin', { email: accounts[0].email, password: 'not-the-violet-harbour' });
  if (wrong.status !== 401) throw new Error(`a wrong password answered ${wrong.status}, expected 401: ${wrong.text.slice(0, 300)}`);

  // 2. Sign-in with correct passwords.
  log(`POST /auth/signin (correct passwords), ${S.signinConnections} connections, ${S.signinSeconds} s`);
  const signinBodies = accounts.map((a) => ({ email: a.email, password: a.password }));
  const signinRun = await withCpu([], () =>
    load({ url: server.url, connections: S.signinConnections, durationSeconds: S.signinSeconds, requests: rotatingPost('/auth/signin', signinBodies) }),
  );
  const signin = signinRun.result;
  // The Argon2 threads are the ones that worked most while sign-ins were hashing.
  const hashTids = busiestThreads(signinRun.from.threads, signinRun.to.threads, server.pid, defaults.hashConcurrency);
  const signinCpu = cpuReport(signinRun.from, signinRun.to, hashTids);

  // 3. /auth/me vs /healthz.
  const meRequests = rotatingBearer('/auth/me', tokens);
  const healthRequests = [{ method: 'GET', path: '/healthz' }];
  const run = (connections, durationSeconds, requests) => load({ url: server.url, connections, durationSeconds, requests });
  log(`GET /auth/me and GET /healthz, ${S.meConnections} connections, ${S.meSeconds} s each (after ${S.warmupSeconds} s warm-ups)`);
  await run(S.meConnections, S.warmupSeconds, meRequests);
  const { result: me, cpu: meCpu } = await withCpu(hashTids, () => run(S.meConnections, S.meSeconds, meRequests));
  await run(S.meConnections, S.warmupSeconds, healthRequests);
  const { result: health, cpu: healthCpu } = await withCpu(hashTids, () => run(S.meConnections, S.meSeconds, healthRequests));

  // 4. /auth/me idle, then during a wrong-password flood.
  log(`GET /auth/me idle, ${S.floodMeConnections} connections, ${S.floodMeSeconds} s`);
  const { result: meIdle, cpu: meIdleCpu } = await withCpu(hashTids, () => run(S.floodMeConnections, S.floodMeSeconds, meRequests));
  log(`POST /auth/signin wrong passwords, ${S.floodConnections} connections, with GET /auth/me at ${S.floodMeConnections} connections`);
  const wrongBodies = accounts.map((a, i) => ({ email: a.email, password: `wrong-${i}-violet-harbour` }));
  const floodSeconds = S.floodLeadSeconds + S.floodMeSeconds + 0.5;
  const floodRun = withCpu(hashTids, () => run(S.floodConnections, floodSeconds, rotatingPost('/auth/signin', wrongBodies)));
  await sleep(S.floodLeadSeconds * 1000);
  const { result: meFlood, cpu: meFloodCpu } = await withCpu(hashTids, () => run(S.floodMeConnections, S.floodMeSeconds, meRequests));
  const { result: flood, cpu: floodCpu } = await floodRun;
  // The flood's clients are gone now: how long do the Argon2 threads stay busy with their queued hashes?
  const drain = await measureDrain(hashTids, S.drainMaxSeconds);

  // 5. Memory after the runs.
  const memory = readMemory(server.pid);
  const serverLogs = server.logLines.slice();
  log('stopping the server');
  await server.stop();
  if (cpuProfileDir) log(`server CPU profile in ${cpuProfileDir}`);

  // ------------------------------------------------------------ report
  const pctCell = (n) => (Number.isFinite(n) ? `${f(n, 0)}%` : '');
  const cpuCols = (c) => ({ cMain: pctCell(c.main), cHash: pctCell(c.hash), cRest: pctCell(c.rest), cBench: pctCell(c.bench), cOthers: pctCell(c.others), cWait: pctCell(c.mainWait) });
  /** Server CPU (all threads) per answered request, ms. */
  const serverMsPer = (cpu, r) => (1000 * cpu.seconds.server) / r.responses;
  const httpRow = (name, r, expected, cpu) => ({
    name,
    conns: r.connections,
    secs: f(r.durationSeconds),
    rate: f(expected.includes(200) ? r.okRate : r.rate),
    p50: ms(r.p50),
    p99: ms(r.p99),
    non2xx: r.non2xx,
    cpuPer: ms(serverMsPer(cpu, r)),
    other: [statusSummary(r.statusCounts, expected), r.errors ? `${r.errors} errors` : '', r.timeouts ? `${r.timeouts} timeouts` : ''].filter(Boolean).join(' '),
    ...cpuCols(cpu),
  });
  const rawCpuMsPer = (1000 * raw.cpu.seconds.bench) / raw.count;
  const rows = [
    {
      name: `argon2id verifySync ×${threads} threads`,
      conns: '-',
      secs: f(raw.elapsedSeconds),
      rate: f(raw.rate),
      p50: ms(raw.perHashMs),
      p99: '',
      non2xx: '-',
      cpuPer: ms(rawCpuMsPer),
      other: `${raw.count} verifications; CPU/req is this process's`,
      ...cpuCols({ ...raw.cpu, main: NaN, hash: NaN, rest: NaN, mainWait: NaN }),
    },
    httpRow('POST /auth/signin (correct pw)', signin, [200], signinCpu),
    httpRow('GET /auth/me (Bearer)', me, [200], meCpu),
    httpRow('GET /healthz', health, [200], healthCpu),
    httpRow('GET /auth/me idle', meIdle, [200], meIdleCpu),
    httpRow('GET /auth/me during flood', meFlood, [200], meFloodCpu),
    { ...httpRow('POST /auth/signin wrong pw (flood)', flood, [401], floodCpu), cpuPer: '' },
  ];
  console.log('');
  console.log(
    table(rows, [
      { key: 'name', title: 'phase', left: true },
      { key: 'conns', title: 'conns' },
      { key: 'secs', title: 's' },
      { key: 'rate', title: 'ok/s' },
      { key: 'p50', title: 'p50' },
      { key: 'p99', title: 'p99' },
      { key: 'non2xx', title: 'non2xx' },
      { key: 'cMain', title: 'srv main' },
      { key: 'cHash', title: 'srv argon2' },
      { key: 'cRest', title: 'srv other' },
      { key: 'cBench', title: 'bench' },
      { key: 'cOthers', title: 'others' },
      { key: 'cWait', title: 'main wait' },
      { key: 'cpuPer', title: 'srv CPU/req' },
      { key: 'other', title: 'unexpected / notes', left: true },
    ]),
  );
  console.log('');
  console.log('  ok/s = 2xx/s (flood row: 401/s). Raw row: p50 = mean ms per verification per thread.');
  console.log('  CPU columns, % of one core over the phase: srv main = server main thread (event loop); srv argon2 = server');
  console.log('  Argon2 threads; srv other = other server threads (GC, libuv); bench = this process (autocannon); others = all other');
  console.log('  CPU use on the machine (other processes, kernel softirq such as loopback networking); main wait = time the server');
  console.log('  main thread was runnable but had no free core (run-queue wait, /proc schedstat). srv CPU/req = server CPU ms per response.');
  const perSignin = (seconds) => ms((1000 * seconds) / signin.responses);
  console.log(`  Server CPU per sign-in: ${perSignin(signinCpu.seconds.hash)} Argon2 + ${perSignin(signinCpu.seconds.main)} main thread + ${perSignin(signinCpu.seconds.rest)} other threads.`);
  console.log(`  The flood row's CPU covers the whole flood (${f(floodSeconds)} s), including the /auth/me load during it.`);
  console.log(`  Sign-up of ${S.accounts} accounts took ${f(signupSeconds, 2)} s; server ready ${f(server.startupMs, 0)} ms after spawn.`);
  const floodStatuses = Object.entries(flood.statusCounts).map(([c, n]) => `${n}×${c}`).join(' ');
  console.log(`  Flood: ${flood.responses} answers (${floodStatuses || 'none'}), ${flood.statusCounts['429'] ? `${flood.statusCounts['429']} of them 429 (rate limiting)` : 'no 429'}; ${flood.errors} errors, ${flood.timeouts} timeouts; flood latency p50 ${ms(flood.p50)} p99 ${ms(flood.p99)}.`);
  console.log(
    `  After the flood's clients disconnected, the Argon2 threads stayed busy ${drain.capped ? 'more than ' : ''}${f(drain.seconds, 2)} s (${f(drain.hashSeconds, 2)} CPU s) on hashes queued for them.`,
  );
  const any429 = [signin, me, health, meIdle, meFlood, flood].reduce((n, r) => n + (r.statusCounts['429'] ?? 0), 0);
  if (any429) console.log(`  NOTE: ${any429} responses were 429 Too Many Requests.`);
  console.log(`  Memory: server RSS after the runs ${f(memory.rssMiB)} MiB (peak ${f(memory.hwmMiB)} MiB, ${memory.threads} threads).`);
  const warnings = serverLogs.filter((l) => /"level":(4|5|6)0/.test(l));
  if (warnings.length) {
    const distinct = [...new Set(warnings.map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 120)))];
    console.log(`  Server logged ${warnings.length} warn+ lines: ${distinct.slice(0, 5).join(' | ')}`);
  }
  const noisy = [['raw', raw.cpu], ['signin', signinCpu], ['me', meCpu], ['healthz', healthCpu], ['me idle', meIdleCpu], ['flood', floodCpu]].filter(([, c]) => c.others > 20);
  if (noisy.length) {
    console.log(`  NOTE: other processes took CPU during ${noisy.map(([n, c]) => `${n} (${f(c.others, 0)}%)`).join(', ')} of ${threads} cores:`);
    console.log('        rates and throughput ratios are skewed; the per-CPU ratios below are less sensitive to that.');
  }

  console.log('');
  console.log('Ratios');
  const signinPerCpu = rawCpuMsPer / serverMsPer(signinCpu, signin);
  console.log(`  signin / raw-hash            ${f(signin.okRate / raw.rate, 3)}   (${f(signin.okRate)} sign-ins/s ÷ ${f(raw.rate)} verifications/s; target ≈ 1)`);
  console.log(`    per CPU                    ${f(signinPerCpu, 3)}   (${ms(rawCpuMsPer)} CPU per raw verification ÷ ${ms(serverMsPer(signinCpu, signin))} server CPU per sign-in)`);
  console.log(`  me / healthz                 ${f(me.okRate / health.okRate, 3)}   (${f(me.okRate, 0)} ÷ ${f(health.okRate, 0)} req/s; p99 ${ms(me.p99)} vs ${ms(health.p99)})`);
  console.log(`    per CPU                    ${f(serverMsPer(healthCpu, health) / serverMsPer(meCpu, me), 3)}   (${ms(serverMsPer(healthCpu, health))} ÷ ${ms(serverMsPer(meCpu, me))} server CPU per request)`);
  console.log(`  me-p99 flood / me-p99 idle   ${f(meFlood.p99 / meIdle.p99, 2)}   (${ms(meFlood.p99)} vs ${ms(meIdle.p99)}; p50 ${ms(meFlood.p50)} vs ${ms(meIdle.p50)}; ${f(meFlood.okRate, 0)} vs ${f(meIdle.okRate, 0)} req/s)`);

  const problems = [];
  if (signin.non2xx || signin.errors || signin.timeouts) problems.push('sign-in phase had non-2xx/errors/timeouts');
  for (const [name, r] of [['/auth/me', me], ['/healthz', health], ['/auth/me idle', meIdle], ['/auth/me during flood', meFlood]]) {
    if (r.non2xx || r.errors || r.timeouts) problems.push(`${name} had non-2xx/errors/timeouts`);
  }
  if (problems.length) {
    console.log('');
    console.log(`Problems: ${problems.join('; ')}`);
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (error) {
  stopAllLoad();
  console.error(`\nbench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  if (server?.logLines.length) console.error(`server log tail:\n${server.logLines.slice(-20).join('\n')}`);
  process.exitCode = 1;
} finally {
  await server?.stop();
}
