// Signet benchmark: `npm run bench` (builds dist/ first).
//
// Measures, in one run on this machine, and prints only ratios/figures it
// measured:
//   1. raw Argon2id verifySync rate in N worker threads (no server running);
//   2. POST /auth/signin rate against the real server in a child process,
//      and its ratio to (1);
//   3. GET /auth/me (Bearer) vs GET /healthz at the same concurrency;
//   4. signet/verify (issue 3): a node:http server in another child process,
//      GET /protected guarded by createVerifier(...).node() vs GET /bare of the
//      same server, with and without the verified-token cache; and in this
//      process, verifications/s of one token: cache on/off, and jose's
//      jwtVerify on a local JWKS;
//   5. GET /auth/me latency idle vs during a wrong-password sign-in flood;
//   6. the server's RSS afterwards.
// Phases 2-6 run against a server with RATE_LIMITS=off: all their load comes
// from one address, which the per-IP limits would throttle, and their numbers
// stay comparable with runs made before the limits existed.
//   7. The attack (issue 5), against a second server with the default rate
//      limits ON and TRUST_PROXY=127.0.0.1, every simulated client having its
//      own X-Forwarded-For address, so the per-IP and per-account defences act
//      as they would in production: a wrong-password sign-in flood far above
//      hashing capacity from rotating addresses, while legitimate users sign in
//      from known devices (device cookie) and /auth/me is called; legitimate
//      success rate and latency, /auth/me p99, and where the time went.
// Plus, for each phase, where the CPU went (server main thread, server Argon2
// threads, other server threads, this load-generating process, every other
// process on the machine) and how long the server's event loop waited for a
// core, from /proc: on a shared 2-core machine those explain the ratios.
//
// Only 127.0.0.1 is targeted; nothing is written into the repository (the
// servers' SQLite lives in tmp dirs that are removed). The child servers are
// killed on success, error, SIGINT/SIGTERM and by a watchdog.
//
// BENCH_CPU_PROF=1 starts both Signet servers with --cpu-prof and keeps the profile in
// a tmp dir (printed at the end) for chrome://inspect or speedscope.
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { Buffer } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import argon2 from '@node-rs/argon2';
import { load, mergeRuns, percentile, stopAllLoad } from './load.js';
import {
  BENCH_METRICS_TOKEN,
  busiestThreads,
  cpuBetween,
  otherCpuBetween,
  readMachineCpu,
  readMemory,
  readProcessCpu,
  readThreadCpu,
  readThreadNice,
  startBareHono,
  startServer,
  startVerifierServer,
} from './server.js';
import { verificationCases, verificationRate } from './verify-micro.js';
import { WRK, interleave, judge, loadRun, printTargets, refreshChains, saveRun } from './targets.js';

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
  /** signet/verify on node:http: each route (after a warm-up) at this concurrency. */
  verifierConnections: 32,
  verifierSeconds: 8,
  /** ...in this many slices per route, the routes taking turns (rotating order), so machine noise hits them alike. */
  verifierSlices: 4,
  /** In-process verifications of one token, per case (after a warm-up). */
  microSeconds: 1,
  microWarmupSeconds: 0.3,
  attack: {
    /** Legitimate accounts; each signs in once first, from its own address, to get a device cookie. */
    accounts: 20,
    /** Of those, accounts 0..knownClients-1 keep signing in with their device cookie. */
    knownClients: 10,
    /** Accounts the attacker also aims at (a handful of real ones, all of them signing in meanwhile). */
    targetedAccounts: [0, 1, 2, 3, 4],
    /** Share of the flood aimed at those; the rest goes to unknown addresses. */
    targetShare: 0.2,
    unknownAccounts: 10_000,
    /** Distinct X-Forwarded-For addresses the flood rotates through at random (198.18.0.0/15, RFC 2544). */
    attackerAddresses: 1024,
    /** Legitimate users on a new device (no cookie), untargeted accounts from newDeviceFirst on, for contrast; one sign-in per newDeviceIntervalMs. */
    newDeviceClients: 2,
    newDeviceFirst: 15,
    newDeviceIntervalMs: 1000,
    /** Each known-device client signs in once per interval, waiting for each answer. */
    intervalMs: 500,
    clientTimeoutMs: 10_000,
    connections: 64,
    meConnections: 8,
    /** Legitimate sign-ins and /auth/me without the flood, for comparison. */
    idleSeconds: 5,
    /** The flood runs this long before legitimate traffic is measured, so its queue is full... */
    leadSeconds: 1.5,
    /** ...then legitimate traffic is measured this long (flood ≈ lead + measure + tail ≈ 15 s)... */
    measureSeconds: 13,
    /** ...and the flood continues until the last legitimate answer arrived, plus this. */
    tailSeconds: 0.5,
    metricsIntervalMs: 250,
  },
  /** The pipeline targets: bare Hono, /healthz and /auth/me measured with wrk in turns; refresh chains. */
  targets: { connections: 32, slices: 3, seconds: 12, refreshConnections: 16, refreshSeconds: 6 },
  watchdogSeconds: 260,
};

// `npm run bench -- --quick` (under two minutes: shorter phases, no attack phase),
// `--json <file>` (where the figures go; default bench-results.json),
// `--compare <file>` (an earlier run's JSON: prints the change of each target).
const argv = process.argv.slice(2);
const option = (name) => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const QUICK = argv.includes('--quick');
const JSON_OUT = option('--json') ?? 'bench-results.json';
const COMPARE = option('--compare');
if (QUICK) {
  Object.assign(SETTINGS, {
    rawHashSeconds: 3,
    signinSeconds: 4,
    meSeconds: 3,
    floodMeSeconds: 4,
    drainMaxSeconds: 3,
    verifierSeconds: 4,
    verifierSlices: 2,
    microSeconds: 0.5,
  });
  Object.assign(SETTINGS.targets, { slices: 2, seconds: 6, refreshSeconds: 3 });
  SETTINGS.watchdogSeconds = 150;
}

// ---------------------------------------------------------------- lifecycle

/** The Signet server under test now (the RATE_LIMITS=off one, then the attack one). */
let server;
/** bench/verifier-server.js while the verifier phase runs. */
let verifierServer;
let cpuProfileDir;

function killServerNow() {
  server?.killNow();
  verifierServer?.killNow();
}

process.on('exit', killServerNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers and exiting`);
    stopAllLoad();
    void Promise.all([server?.stop(1000), verifierServer?.stop(1000)]).finally(() => process.exit(130));
  });
}
const watchdog = setTimeout(() => {
  console.error(`\nbench exceeded ${SETTINGS.watchdogSeconds} s: stopping the servers and exiting`);
  stopAllLoad();
  killServerNow();
  process.exit(2);
}, SETTINGS.watchdogSeconds * 1000);
watchdog.unref();

// ---------------------------------------------------------------- helpers

const log = (message) => process.stderr.write(`  · ${message}\n`);

/**
 * A snapshot of the CPU used so far by the threads of `target` (the Signet
 * server under test unless told otherwise; null for none) and by this process.
 */
function cpuMark(target = server) {
  const live = target && !target.exited;
  return {
    wall: performance.now(),
    pid: live ? target.pid : undefined,
    threads: live ? readThreadCpu(target.pid) : new Map(),
    self: process.cpuUsage(),
    machine: readMachineCpu(),
    processes: readProcessCpu(),
  };
}

/**
 * CPU between two marks, as % of one core: server main thread, Argon2
 * threads, other server threads, this process, and every other process on the
 * machine (noise). Also the raw seconds, for per-request costs. "Server" is the
 * process the marks followed (see cpuMark).
 */
function cpuReport(from, to, hashTids) {
  const wallSeconds = (to.wall - from.wall) / 1000;
  const split = from.pid !== undefined ? cpuBetween(from.threads, to.threads, from.pid, hashTids) : { main: 0, hash: 0, rest: 0, mainWait: NaN };
  const selfSeconds = (to.self.user - from.self.user + to.self.system - from.self.system) / 1e6;
  const serverSeconds = split.main + split.hash + split.rest;
  const othersSeconds = Math.max(0, to.machine - from.machine - serverSeconds - selfSeconds);
  const pct = (seconds) => (100 * seconds) / wallSeconds;
  // Who "others" were: the busiest other processes (the Signet server is counted as one when it is not the target) and interrupts.
  const whoElse = otherCpuBetween(from.processes, to.processes, [from.pid, process.pid]);
  const othersWho = [
    ...whoElse.top.map((p) => ({ name: p.pid === String(server?.pid) ? 'signet server' : p.name, pct: pct(p.seconds) })),
    { name: 'irq+softirq', pct: pct(whoElse.interruptSeconds) },
  ].filter((o) => o.pct >= 3);
  return {
    main: pct(split.main),
    hash: pct(split.hash),
    rest: pct(split.rest),
    bench: pct(selfSeconds),
    others: pct(othersSeconds),
    mainWait: pct(split.mainWait),
    othersWho,
    seconds: { ...split, server: serverSeconds, bench: selfSeconds, others: othersSeconds, wall: wallSeconds },
  };
}

/** Several cpuReports as one: seconds added, percentages over the summed wall time. */
function mergeCpu(reports) {
  const seconds = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.seconds)) seconds[k] = (seconds[k] ?? 0) + v;
  const pct = (x) => (100 * x) / seconds.wall;
  const who = new Map();
  for (const r of reports) for (const o of r.othersWho) who.set(o.name, (who.get(o.name) ?? 0) + (o.pct * r.seconds.wall) / 100);
  const othersWho = [...who]
    .map(([name, s]) => ({ name, pct: pct(s) }))
    .sort((a, b) => b.pct - a.pct)
    .slice(0, 4);
  return {
    main: pct(seconds.main),
    hash: pct(seconds.hash),
    rest: pct(seconds.rest),
    bench: pct(seconds.bench),
    others: pct(seconds.others),
    mainWait: pct(seconds.mainWait),
    othersWho,
    seconds,
  };
}

/** Runs `run()` between two CPU marks of `target` (default: the Signet server). */
async function withCpu(hashTids, run, target = server) {
  const from = cpuMark(target);
  const result = await run();
  const to = cpuMark(target);
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
  return { status: response.status, json, text, headers: response.headers };
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

/** The worker's next message of `type` (a string or a list of them). */
function onceMessage(worker, type) {
  const types = [type].flat();
  return new Promise((resolve, reject) => {
    const onMessage = (message) => {
      if (!types.includes(message.type)) return;
      cleanup();
      resolve(message);
    };
    const onError = (error) => {
      cleanup();
      reject(error);
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`worker thread exited with code ${code}`));
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

// ---------------------------------------------------------------- verifier (issue 3)

/** A JWT's claims, unverified: only to learn the iss and aud the verifier must expect. */
function peekClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

/**
 * bench/verifier-server.js in a child process, keyed to the Signet server's
 * JWKS; GET /bare, /protected and /protected-nocache loaded one after the
 * other, all with the same rotating Bearer tokens (so the bytes on the wire are
 * the same: /bare ignores the header). CPU columns follow the verifier server.
 */
async function measureVerifierServer(S, tokens) {
  const claims = peekClaims(tokens[0]);
  const audience = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
  const jwksUri = `${server.url}/.well-known/jwks.json`;
  verifierServer = await startVerifierServer({ root: ROOT, env: { SIGNET_ISSUER: claims.iss, SIGNET_AUDIENCE: audience, SIGNET_JWKS_URI: jwksUri } });
  try {
    const target = verifierServer;
    // The routes answer as they should before anything is timed.
    for (const path of ['/protected', '/protected-nocache']) {
      const good = await globalThis.fetch(`${target.url}${path}`, { headers: { authorization: `Bearer ${tokens[0]}` } });
      const body = await good.json().catch(() => ({}));
      if (good.status !== 200 || body.sub !== claims.sub)
        throw new Error(`verifier server ${path} with a valid token answered ${good.status} ${JSON.stringify(body)}`);
      const none = await globalThis.fetch(`${target.url}${path}`);
      await none.arrayBuffer();
      if (none.status !== 401) throw new Error(`verifier server ${path} without a token answered ${none.status}, expected 401`);
    }
    const paths = ['/bare', '/protected', '/protected-nocache'];
    const run = (path, durationSeconds) =>
      load({ url: target.url, connections: S.verifierConnections, durationSeconds, requests: rotatingBearer(path, tokens), keepLatencies: true });
    for (const path of paths) await run(path, S.warmupSeconds);
    const slices = Object.fromEntries(paths.map((p) => [p, []]));
    for (let round = 0; round < S.verifierSlices; round++) {
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(k + round) % paths.length];
        slices[path].push(await withCpu([], () => run(path, S.verifierSeconds / S.verifierSlices), target));
      }
    }
    const results = Object.fromEntries(
      paths.map((p) => [p, { result: mergeRuns(slices[p].map((x) => x.result)), cpu: mergeCpu(slices[p].map((x) => x.cpu)) }]),
    );
    return { results, issuer: claims.iss, audience, jwksUri, startupMs: target.startupMs, pid: target.pid };
  } finally {
    await verifierServer.stop();
    verifierServer = undefined;
  }
}

/** In-process verifications/s of one token (see verify-micro.js); CPU is this process's. */
async function measureVerifyMicro(S, token, { issuer, audience, jwksUri }) {
  const response = await globalThis.fetch(jwksUri);
  const jwks = await response.json();
  const { cases, close } = await verificationCases({ issuer, audience, jwksUri, jwks, token });
  try {
    const out = [];
    for (const c of cases) {
      const { result, cpu } = await withCpu([], () => verificationRate(c, S.microSeconds, S.microWarmupSeconds), null);
      out.push({ name: c.name, inFlight: c.inFlight, ...result, cpu });
    }
    return out;
  } finally {
    close();
  }
}

// ---------------------------------------------------------------- attack (issue 5)

const legitAccount = (i) => ({ email: `legit-${i}@example.com`, username: `legit${i}`, password: `legit-${i}-amber-lighthouse` });
/** Each legitimate user's own address (10.0.0.0/8), stable across its requests. */
const legitAddress = (i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/**
 * The attacker's requests: wrong passwords, each from a random address of a
 * pool (198.18.0.0/15), aimed at `targets` (real accounts) with probability
 * `targetShare`, otherwise at one of `unknownAccounts` addresses nobody owns.
 */
function floodRequests({ targets, targetShare, unknownAccounts, addresses }) {
  const pick = (n) => Math.floor(Math.random() * n);
  return [
    {
      method: 'POST',
      path: '/auth/signin',
      headers: { 'content-type': 'application/json', 'user-agent': 'signet-bench-attacker' },
      setupRequest: (request) => {
        const email = Math.random() < targetShare ? targets[pick(targets.length)] : `nobody-${pick(unknownAccounts)}@example.net`;
        const k = pick(addresses);
        return {
          ...request,
          headers: { ...request.headers, 'x-forwarded-for': `198.${18 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}` },
          body: JSON.stringify({ email, password: `guess-${pick(1e9)}` }),
        };
      },
    },
  ];
}

/** The hash pool gauges and event counters of the server's /metrics. */
async function readMetrics() {
  const response = await globalThis.fetch(`${server.url}/metrics`, {
    headers: { authorization: `Bearer ${BENCH_METRICS_TOKEN}` },
    signal: globalThis.AbortSignal.timeout(5000),
  });
  const text = await response.text();
  const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const events = {};
  for (const m of text.matchAll(/^signet_events_total\{event="([^"]+)"\} (\S+)$/gm)) events[m[1]] = Number(m[2]);
  return {
    at: performance.now(),
    queued: value('signet_hash_queued'),
    busy: value('signet_hash_busy'),
    medianMs: 1000 * value('signet_hash_median_seconds'),
    completed: value('signet_hash_completed_total'),
    events,
  };
}

/** Polls /metrics every `intervalMs` until stop() (a failed poll is skipped). */
function sampleMetrics(intervalMs) {
  let stopped = false;
  const samples = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        samples.push(await readMetrics());
      } catch {
        // the server was too busy to answer in time: no sample
      }
      if (!stopped) await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

function summarizeSamples(samples) {
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const finite = (key) => samples.map((s) => s[key]).filter(Number.isFinite);
  const first = samples[0];
  const last = samples.at(-1);
  return {
    count: samples.length,
    queuedMean: mean(finite('queued')),
    queuedMax: samples.length ? Math.max(...finite('queued')) : NaN,
    busyMean: mean(finite('busy')),
    hashMsMean: mean(finite('medianMs')),
    /** Hashes completed per second between the first and the last sample. */
    hashRate: first && last && last.at > first.at ? (last.completed - first.completed) / ((last.at - first.at) / 1000) : NaN,
  };
}

/** Latency and outcome of some legitimate sign-in attempts. */
function legitStats(results, filter = () => true) {
  const list = results.filter(filter);
  const latencies = list.map((r) => r.ms).sort((a, b) => a - b);
  const okLatencies = list
    .filter((r) => r.ok)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  const statuses = {};
  for (const r of list) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const ok = list.filter((r) => r.ok).length;
  return {
    attempts: list.length,
    ok,
    successRate: list.length ? ok / list.length : NaN,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? NaN,
    okP99: percentile(okLatencies, 99),
    statuses,
  };
}

/** The legitimate users, in a worker thread (signin-clients.js). */
async function startSigninClients(url, cookieName) {
  const worker = new Worker(new URL('./signin-clients.js', import.meta.url));
  await onceMessage(worker, 'ready');
  return {
    async run(clients, durationMs, { clientTimeoutMs }) {
      const reply = onceMessage(worker, ['done', 'failed']);
      worker.postMessage({ type: 'run', url, clients, cookieName, durationMs, timeoutMs: clientTimeoutMs });
      const message = await reply;
      if (message.type === 'failed') throw new Error(`legitimate sign-in clients failed: ${message.message}`);
      // The devices keep their renewed cookies for the next run.
      message.cookies.forEach((cookie, i) => (clients[i].cookie = cookie));
      return message;
    },
    terminate: () => worker.terminate(),
  };
}

async function runAttack(S, configEnvNames, hashConcurrency, nodeArgs) {
  const A = S.attack;
  log('starting the attack server (default rate limits, TRUST_PROXY=127.0.0.1)');
  server = await startServer({ root: ROOT, configEnvNames, nodeArgs, env: { TRUST_PROXY: '127.0.0.1' } });
  const attackServer = server;
  log(
    `attack server pid ${server.pid} on ${server.url}, ready in ${f(server.startupMs, 0)} ms; ${A.accounts} accounts sign up and sign in once, each from its own address`,
  );

  // Setup: sign-up, then one sign-in per account (which issues the device cookie). Hash-bound, so it also tells the Argon2 threads apart.
  const users = Array.from({ length: A.accounts }, (_, i) => ({ ...legitAccount(i), address: legitAddress(i) }));
  const setup = await withCpu([], async () => {
    await pool(A.accounts, 2, async (i) => {
      const { address, ...body } = users[i];
      const res = await postJson('/auth/signup', body, { 'x-forwarded-for': address });
      if (res.status !== 201) throw new Error(`attack setup: sign-up ${i} answered ${res.status}: ${res.text.slice(0, 300)}`);
    });
    return pool(A.accounts, 2, async (i) => {
      const res = await postJson('/auth/signin', { email: users[i].email, password: users[i].password }, { 'x-forwarded-for': users[i].address });
      if (res.status !== 200 || typeof res.json?.token !== 'string')
        throw new Error(`attack setup: sign-in ${i} answered ${res.status}: ${res.text.slice(0, 300)}`);
      const cookie = res.headers
        .getSetCookie()
        .map((line) => /^([^=;]*signet-device)=([^;]+)/.exec(line))
        .find(Boolean);
      if (!cookie) throw new Error(`attack setup: sign-in ${i} set no device cookie (Set-Cookie: ${res.headers.getSetCookie().join(' | ')})`);
      return { token: res.json.token, cookieName: cookie[1], cookie: cookie[2] };
    });
  });
  const sessions = setup.result;
  const cookieName = sessions[0].cookieName;
  const hashTids = busiestThreads(setup.from.threads, setup.to.threads, server.pid, hashConcurrency);
  const hashNice = [...new Set(hashTids.map((tid) => readThreadNice(server.pid, tid)))];

  const targets = new Set(A.targetedAccounts);
  const client = (i, group, cookie, intervalMs) => ({
    group,
    email: users[i].email,
    password: users[i].password,
    address: users[i].address,
    cookie,
    intervalMs,
  });
  const clients = [
    ...Array.from({ length: A.knownClients }, (_, i) => client(i, targets.has(i) ? 'known-targeted' : 'known', sessions[i].cookie, A.intervalMs)),
    ...Array.from({ length: A.newDeviceClients }, (_, j) => client(A.newDeviceFirst + j, 'new', null, A.newDeviceIntervalMs)),
  ];
  const meRequests = rotatingBearer(
    '/auth/me',
    sessions.map((s) => s.token),
  );
  const signins = await startSigninClients(server.url, cookieName);
  try {
    // Without the flood: the same legitimate sign-ins and /auth/me load.
    log(
      `no flood: ${A.knownClients} known-device users signing in every ${A.intervalMs} ms, ${A.newDeviceClients} new-device users every ${A.newDeviceIntervalMs} ms, GET /auth/me at ${A.meConnections} connections, ${A.idleSeconds} s`,
    );
    const idleSampler = sampleMetrics(A.metricsIntervalMs);
    const idle = await withCpu(hashTids, () =>
      Promise.all([
        signins.run(clients, A.idleSeconds * 1000, A),
        load({ url: server.url, connections: A.meConnections, durationSeconds: A.idleSeconds, requests: meRequests }),
      ]),
    );
    const idleSamples = summarizeSamples(await idleSampler.stop());

    // The flood, then the same legitimate traffic during it.
    const before = await readMetrics();
    log(
      `flood: wrong-password sign-ins at ${A.connections} connections from ${A.attackerAddresses} rotating addresses; after ${A.leadSeconds} s the same legitimate traffic for ${A.measureSeconds} s`,
    );
    let endFlood;
    const floodStop = new Promise((resolve) => (endFlood = resolve));
    const floodRun = withCpu(hashTids, () =>
      load({
        url: server.url,
        connections: A.connections,
        durationSeconds: A.leadSeconds + A.measureSeconds + A.clientTimeoutMs / 1000 + A.tailSeconds + 2,
        requests: floodRequests({
          targets: A.targetedAccounts.map((i) => users[i].email),
          targetShare: A.targetShare,
          unknownAccounts: A.unknownAccounts,
          addresses: A.attackerAddresses,
        }),
        stop: floodStop,
      }),
    );
    let during;
    let duringSamples;
    try {
      await sleep(A.leadSeconds * 1000);
      const sampler = sampleMetrics(A.metricsIntervalMs);
      during = await withCpu(hashTids, () =>
        Promise.all([
          signins.run(clients, A.measureSeconds * 1000, A),
          load({ url: server.url, connections: A.meConnections, durationSeconds: A.measureSeconds, requests: meRequests }),
        ]),
      );
      duringSamples = summarizeSamples(await sampler.stop());
      await sleep(A.tailSeconds * 1000);
    } finally {
      endFlood();
    }
    const { result: flood, cpu: floodCpu } = await floodRun;
    const drain = await measureDrain(hashTids, S.drainMaxSeconds);
    const after = await readMetrics();
    // Everything the flood caused, including the hashes it left queued (counted after the drain).
    const events = {};
    for (const name of new Set([...Object.keys(before.events), ...Object.keys(after.events)]))
      events[name] = (after.events[name] ?? 0) - (before.events[name] ?? 0);

    const [idleSignins, idleMe] = idle.result;
    const [duringSignins, duringMe] = during.result;
    const serverLogs = { lines: server.logLines.slice(), count: server.logCount };
    return {
      startupMs: attackServer.startupMs,
      pid: attackServer.pid,
      cookieName,
      hashNice,
      idle: { signins: idleSignins, me: idleMe, cpu: idle.cpu, samples: idleSamples },
      during: { signins: duringSignins, me: duringMe, cpu: during.cpu, samples: duringSamples },
      flood,
      floodCpu,
      drain,
      hashesForFlood: after.completed - before.completed,
      events,
      serverLogs,
    };
  } finally {
    await signins.terminate();
  }
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
  log('starting the server (node dist/cli/main.js serve), RATE_LIMITS=off');
  server = await startServer({ root: ROOT, configEnvNames, nodeArgs, env: { RATE_LIMITS: 'off' }, keepDataDir: true });
  const first = server;
  const rssAfterStart = readMemory(server.pid).rssMiB;
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

  // 3b. The pipeline targets: a bare Hono route, /healthz and /auth/me in turns, with wrk; the servers' CPU per request.
  const T = S.targets;
  const bareHono = await startBareHono({ root: ROOT });
  log(
    `bare Hono (bench/bare-hono.js) vs GET /healthz vs GET /auth/me, ${WRK ? 'wrk' : 'autocannon (wrk not installed)'}, ${T.connections} connections, ${T.seconds} s each in ${T.slices} slices`,
  );
  const cpuOf = (pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  const bareCpu0 = cpuOf(bareHono.pid);
  const signetCpu0 = cpuOf(server.pid);
  const pipeline = await interleave(
    [
      { name: 'bare', url: `${bareHono.url}/hello` },
      { name: 'healthz', url: `${server.url}/healthz` },
      { name: 'me', url: `${server.url}/auth/me`, headers: { authorization: `Bearer ${tokens[0]}` } },
    ],
    T,
  );
  const bareCpuSeconds = cpuOf(bareHono.pid) - bareCpu0;
  const signetCpuSeconds = cpuOf(server.pid) - signetCpu0;
  await bareHono.stop();
  // Per request: the bare server's CPU over its requests; Signet's over /healthz and /auth/me together, split by a
  // /healthz-only slice measured on its own just after.
  const healthCpu0 = cpuOf(server.pid);
  const healthOnly = await interleave([{ name: 'healthz', url: `${server.url}/healthz` }], { ...T, slices: 1, seconds: T.seconds / T.slices });
  const healthCpuMicros = ((cpuOf(server.pid) - healthCpu0) * 1e6) / (healthOnly.healthz.rate * (T.seconds / T.slices));
  const bareCpuMicros = (bareCpuSeconds * 1e6) / (pipeline.bare.rate * T.seconds);
  log(`refresh chains: ${T.refreshConnections} sessions, each presenting its latest refresh token, ${T.refreshSeconds} s`);
  const refreshTokens = [];
  for (let i = 0; i < T.refreshConnections; i++) {
    const res = await postJson('/auth/signin', { email: accounts[i % accounts.length].email, password: accounts[i % accounts.length].password });
    refreshTokens.push(res.json.refreshToken);
  }
  const refresh = await refreshChains(server.url, refreshTokens, { seconds: T.refreshSeconds });
  void signetCpuSeconds;

  // 4. signet/verify on node:http, then in this process.
  log(
    `verifier server (bench/verifier-server.js): GET /bare, /protected, /protected-nocache, ${S.verifierConnections} connections, ${S.verifierSeconds} s each in ${S.verifierSlices} interleaved slices (after ${S.warmupSeconds} s warm-ups)`,
  );
  const verifier = await measureVerifierServer(S, tokens);
  log(`in-process verifications of one token, ${S.microSeconds} s per case`);
  const micro = await measureVerifyMicro(S, tokens[0], verifier);

  // 5. /auth/me idle, then during a wrong-password flood.
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

  // 6. Memory after the runs.
  const memory = readMemory(server.pid);
  const serverLogs = server.logLines.slice();
  log('stopping the server');
  await server.stop();

  // 6b. Cold start on the data it left (migrated, keys made): spawn until /healthz answers, best of three.
  const coldStarts = [];
  for (let i = 0; i < 3; i++) {
    server = await startServer({ root: ROOT, configEnvNames, env: { RATE_LIMITS: 'off' }, dataDir: first.dataDir });
    coldStarts.push(server.startupMs);
    await server.stop();
  }
  rmSync(first.dataDir, { recursive: true, force: true });
  const coldStartMs = Math.min(...coldStarts);
  log(`cold start with existing data: ${coldStarts.map((n) => f(n, 0)).join(', ')} ms`);

  // 7. The attack, on a second server with the rate limits on (not in --quick).
  const attack = QUICK ? undefined : await runAttack(S, configEnvNames, defaults.hashConcurrency, nodeArgs);
  if (attack) {
    log('stopping the attack server');
    await server.stop();
  }
  if (cpuProfileDir) log(`CPU profiles of the servers (file names end in their pids: ${first.pid}${attack ? `, ${attack.pid}` : ''}) in ${cpuProfileDir}`);

  // ------------------------------------------------------------ report
  const pctCell = (n) => (Number.isFinite(n) ? `${f(n, 0)}%` : '');
  const cpuCols = (c) => ({
    cMain: pctCell(c.main),
    cHash: pctCell(c.hash),
    cRest: pctCell(c.rest),
    cBench: pctCell(c.bench),
    cOthers: pctCell(c.others),
    cWait: pctCell(c.mainWait),
  });
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
    other: [statusSummary(r.statusCounts, expected), r.errors ? `${r.errors} errors` : '', r.timeouts ? `${r.timeouts} timeouts` : '']
      .filter(Boolean)
      .join(' '),
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
  const COLUMNS = [
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
  ];
  console.log('');
  console.log('Signet server with RATE_LIMITS=off (all load from one address; numbers comparable with runs before the rate limits)');
  console.log(table(rows, COLUMNS));
  console.log('');
  console.log('  ok/s = 2xx/s (flood row: 401/s). Raw row: p50 = mean ms per verification per thread.');
  console.log('  CPU columns, % of one core over the phase: srv main = server main thread (event loop); srv argon2 = server');
  console.log('  Argon2 threads; srv other = other server threads (GC, libuv); bench = this process (autocannon); others = all other');
  console.log('  CPU use on the machine (other processes, kernel softirq such as loopback networking); main wait = time the server');
  console.log('  main thread was runnable but had no free core (run-queue wait, /proc schedstat). srv CPU/req = server CPU ms per response.');
  const perSignin = (seconds) => ms((1000 * seconds) / signin.responses);
  console.log(
    `  Server CPU per sign-in: ${perSignin(signinCpu.seconds.hash)} Argon2 + ${perSignin(signinCpu.seconds.main)} main thread + ${perSignin(signinCpu.seconds.rest)} other threads.`,
  );
  console.log(`  The flood row's CPU covers the whole flood (${f(floodSeconds)} s), including the /auth/me load during it.`);
  console.log(`  Sign-up of ${S.accounts} accounts took ${f(signupSeconds, 2)} s; server ready ${f(first.startupMs, 0)} ms after spawn.`);
  const floodStatuses = Object.entries(flood.statusCounts)
    .map(([c, n]) => `${n}×${c}`)
    .join(' ');
  console.log(
    `  Flood: ${flood.responses} answers (${floodStatuses || 'none'}), ${flood.statusCounts['429'] ? `${flood.statusCounts['429']} of them 429 (rate limiting)` : 'no 429'}; ${flood.errors} errors, ${flood.timeouts} timeouts; flood latency p50 ${ms(flood.p50)} p99 ${ms(flood.p99)}.`,
  );
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
  /** Windows where others took over 20 % of a core, one line each with who they were. */
  const printNoise = (windows, consequence) => {
    const noisy = windows.filter(([, c]) => c.others > 20);
    if (!noisy.length) return;
    const width = Math.max(...noisy.map(([n]) => n.length));
    console.log(
      `  NOTE: CPU taken by other processes (of ${threads * 100}%; the busiest that outlived the window, and kernel interrupt time)${consequence ? `: ${consequence}` : ''}`,
    );
    for (const [n, c] of noisy)
      console.log(`        ${n.padEnd(width)}  ${f(c.others, 0).padStart(3)}%  ${c.othersWho.map((o) => `${o.name} ${f(o.pct, 0)}%`).join(', ')}`);
  };
  printNoise(
    [
      ['raw', raw.cpu],
      ['signin', signinCpu],
      ['me', meCpu],
      ['healthz', healthCpu],
      ['me idle', meIdleCpu],
      ['flood', floodCpu],
    ],
    'rates and throughput ratios are skewed; the per-CPU ratios below are less sensitive to that.',
  );

  // signet/verify
  const V = verifier.results;
  const bare = V['/bare'].result;
  const prot = V['/protected'].result;
  const noCache = V['/protected-nocache'].result;
  const us = (n) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)} µs` : '-');
  const microRows = micro.map((m) => ({
    name: `in-process: ${m.name}`,
    conns: m.inFlight,
    secs: f(m.elapsedSeconds),
    rate: f(m.rate, 0),
    p50: us(m.meanMicros),
    p99: '',
    non2xx: '-',
    cpuPer: us((1e6 * m.cpu.seconds.bench) / m.count),
    other: `${m.count} verifications`,
    ...cpuCols({ ...m.cpu, main: NaN, hash: NaN, rest: NaN, mainWait: NaN }),
  }));
  const verifierRows = [
    httpRow('GET /bare', bare, [200], V['/bare'].cpu),
    httpRow('GET /protected (verified-token cache)', prot, [200], V['/protected'].cpu),
    httpRow('GET /protected-nocache (cacheSize 0)', noCache, [200], V['/protected-nocache'].cpu),
    ...microRows,
  ];
  console.log('');
  console.log(`signet/verify: node:http server in a child process (bench/verifier-server.js), createVerifier({ algorithms: ['RS256'], jwksUri }).node()`);
  console.log(table(verifierRows, COLUMNS));
  console.log('');
  console.log(`  HTTP rows: srv columns = the verifier server (no Argon2 there); ${S.verifierSlices} slices per route, the routes taking turns; every route`);
  console.log(
    `  gets the same rotating Bearer tokens of ${tokens.length} users (/bare ignores the header), so only verification differs. In-process rows: conns = calls in flight, each`,
  );
  console.log("  awaited before the next; p50 column = mean time per call of one loop; CPU/req = this process's CPU per verification");
  console.log("  (jose verifies through WebCrypto on libuv's threadpool, which is counted there too).");
  console.log(`  Verifier server ready (JWKS loaded) ${f(verifier.startupMs, 0)} ms after spawn; issuer ${verifier.issuer}.`);
  printNoise([
    ['/bare', V['/bare'].cpu],
    ['/protected', V['/protected'].cpu],
    ['/protected-nocache', V['/protected-nocache'].cpu],
    ...micro.map((m) => [m.name, m.cpu]),
  ]);

  const pct100 = (x) => (Number.isFinite(x) ? `${f(100 * x)}%` : '-');
  let legit;
  if (attack) {
    // The attack
    const A = S.attack;
    const known = (r) => r.group === 'known' || r.group === 'known-targeted';
    legit = {
      idleKnown: legitStats(attack.idle.signins.results, known),
      idleNew: legitStats(attack.idle.signins.results, (r) => r.group === 'new'),
      known: legitStats(attack.during.signins.results, known),
      knownTargeted: legitStats(attack.during.signins.results, (r) => r.group === 'known-targeted'),
      knownOther: legitStats(attack.during.signins.results, (r) => r.group === 'known'),
      new: legitStats(attack.during.signins.results, (r) => r.group === 'new'),
    };
    const statusText = (st) =>
      Object.entries(st.statuses)
        .map(([c, n]) => `${n}×${c}`)
        .join(' ');
    const legitRow = (name, st, elapsedMs, users) => ({
      name,
      conns: `${users} users`,
      secs: f(elapsedMs / 1000),
      rate: f(st.ok / (elapsedMs / 1000)),
      p50: ms(st.p50),
      p99: ms(st.p99),
      non2xx: st.attempts - st.ok,
      cpuPer: '',
      other: `${st.ok}/${st.attempts} ok (${pct100(st.successRate)}): ${statusText(st)}`,
    });
    const noCpu = (row) => ({ ...row, cpuPer: '' });
    const attackRows = [
      legitRow('no flood: sign-in, known device', legit.idleKnown, attack.idle.signins.elapsedMs, A.knownClients),
      legitRow('no flood: sign-in, new device', legit.idleNew, attack.idle.signins.elapsedMs, A.newDeviceClients),
      noCpu(httpRow('no flood: GET /auth/me', attack.idle.me, [200], attack.idle.cpu)),
      noCpu({ ...httpRow('flood: POST /auth/signin wrong pw', attack.flood, [401, 429, 503], attack.floodCpu), rate: f(attack.flood.rate) }),
      legitRow('flood: sign-in, known device', legit.known, attack.during.signins.elapsedMs, A.knownClients),
      legitRow('flood: sign-in, new device', legit.new, attack.during.signins.elapsedMs, A.newDeviceClients),
      noCpu(httpRow('flood: GET /auth/me', attack.during.me, [200], attack.during.cpu)),
    ];
    console.log('');
    console.log(`Attack: second server, default rate limits ON, TRUST_PROXY=127.0.0.1; every client its own X-Forwarded-For address`);
    console.log(table(attackRows, COLUMNS));
    console.log('');
    const fl = attack.flood;
    // 401, 429 and 503 always (0 included), then anything else that came back.
    const codes = [...new Set(['401', '429', '503', ...Object.keys(fl.latencyByStatus)])];
    const byStatus = codes
      .map((code) => {
        const l = fl.latencyByStatus[code];
        return l ? `${l.count}×${code} (${f((100 * l.count) / fl.responses)}%, p50 ${ms(l.p50)}, p99 ${ms(l.p99)})` : `0×${code}`;
      })
      .join(', ');
    console.log('  Sign-in rows: ok/s = successful sign-ins/s; non2xx = attempts without a session; p50/p99 over all attempts. Flood row:');
    console.log('  ok/s = all answers/s. CPU of each window is on its /auth/me row (the legitimate sign-ins ran in the same window);');
    console.log(
      `  the flood row's covers the whole flood (${f(fl.durationSeconds)} s: ${A.leadSeconds} s lead, then the measured window, then ${A.tailSeconds} s).`,
    );
    console.log(
      `  Flood: ${fl.responses} answers, ${f(fl.rate, 0)}/s (${f(fl.rate / raw.rate, 0)}× the raw hashing capacity of ${f(raw.rate)}/s) from ${fl.connections} connections and ${A.attackerAddresses} rotating addresses; ` +
        `${f(100 * A.targetShare, 0)}% aimed at the ${A.targetedAccounts.length} real accounts ${A.targetedAccounts.join(',')}, the rest at ${A.unknownAccounts} unknown ones.`,
    );
    console.log(`    by status: ${byStatus || 'none'}${fl.errors ? `; ${fl.errors} errors` : ''}${fl.timeouts ? `; ${fl.timeouts} timeouts` : ''}.`);
    const admitted = fl.latencyByStatus['401'];
    if (admitted) {
      console.log(
        `    admitted attempts (401: hashed, or throttled after a hash's time) answered after p50 ${ms(admitted.p50)}, p99 ${ms(admitted.p99)}; HASH_QUEUE_BUDGET_MS is ${defaults.hashQueueBudgetMs} ms ` +
          `(the wait is estimated when an attempt is admitted; known devices queued later go first).`,
      );
    }
    const ev = (pattern) => Object.entries(attack.events).reduce((n, [name, count]) => n + (pattern.test(name) ? count : 0), 0);
    const allEvents = Object.entries(attack.events)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name} ${n}`)
      .join(', ');
    console.log(
      `    server events (flood and its drain): ${ev(/^auth\.signin_failed$/)} wrong passwords hashed, ${ev(/^security\.signin_throttled$/)} throttled without a hash, ` +
        `${ev(/^security\.\w+_shed$/)} shed by admission control, ${ev(/^security\.client_rate_limited$/)} per-IP 429s; ${attack.hashesForFlood} hashes computed (all: ${allEvents || 'none'}).`,
    );
    const dS = attack.during.samples;
    const iS = attack.idle.samples;
    console.log(
      `  Hash pool (/metrics every ${A.metricsIntervalMs} ms): during the flood ${f(dS.hashRate)} hashes/s, mean ${f(dS.queuedMean)} queued (max ${f(dS.queuedMax, 0)}), ` +
        `${f(dS.busyMean, 2)} of ${defaults.hashConcurrency} workers busy, one hash ${ms(dS.hashMsMean)}; without the flood ${f(iS.hashRate)} hashes/s, one hash ${ms(iS.hashMsMean)} (raw: ${ms(raw.perHashMs)}).`,
    );
    const legitDemand = A.knownClients * (1000 / A.intervalMs) + A.newDeviceClients * (1000 / A.newDeviceIntervalMs);
    console.log(
      `  Legitimate demand: ${A.knownClients} users every ${A.intervalMs} ms + ${A.newDeviceClients} every ${A.newDeviceIntervalMs} ms = at most ${f(legitDemand)} sign-ins/s, ` +
        `${f((100 * legitDemand) / raw.rate, 0)}% of the raw hashing capacity measured above (${f(raw.rate)}/s) and ${f((100 * legitDemand) / iS.hashRate, 0)}% of what the server hashed without the flood (${f(iS.hashRate)}/s).`,
    );
    console.log(
      `  Known-device sign-ins during the flood: ${legit.known.ok}/${legit.known.attempts} ok (${pct100(legit.known.successRate)}); on the attacked accounts ` +
        `${legit.knownTargeted.ok}/${legit.knownTargeted.attempts}, on the others ${legit.knownOther.ok}/${legit.knownOther.attempts}; p50 ${ms(legit.known.p50)} p99 ${ms(legit.known.p99)} max ${ms(legit.known.max)} ` +
        `(without the flood: ${legit.idleKnown.ok}/${legit.idleKnown.attempts} ok, p50 ${ms(legit.idleKnown.p50)} p99 ${ms(legit.idleKnown.p99)}).`,
    );
    console.log(
      `  New-device sign-ins (right password, no device cookie, accounts not attacked) during the flood: ${legit.new.ok}/${legit.new.attempts} ok (${statusText(legit.new) || 'none'}); ` +
        `without the flood ${legit.idleNew.ok}/${legit.idleNew.attempts}.`,
    );
    const dc = attack.during.cpu;
    console.log(
      `  Where a known-device sign-in's time goes: it waits for a free Argon2 worker (known devices queue first) and computes one hash; ` +
        `during the flood one hash took ${ms(dS.hashMsMean)} (${f(dS.hashMsMean / iS.hashMsMean, 1)}× without the flood), so p50 ${ms(legit.known.p50)} ≈ ${f(legit.known.p50 / dS.hashMsMean, 1)} hashes; ` +
        `the known devices' ${f(legit.known.ok / (attack.during.signins.elapsedMs / 1000), 1)} sign-ins/s took ${f((100 * legit.known.ok) / (attack.during.signins.elapsedMs / 1000) / dS.hashRate, 0)}% of the ${f(dS.hashRate, 1)} hashes/s computed, so beyond one hash they queue behind each other. ` +
        `Over that window the Argon2 threads (nice ${attack.hashNice.join('/')}) got ${f(dc.hash, 0)}% of a core, the server main thread ${f(dc.main, 0)}% (+${f(dc.mainWait, 0)}% waiting for a core), ` +
        `this load generator ${f(dc.bench, 0)}%, others ${f(dc.others, 0)}%, of ${threads * 100}%.`,
    );
    console.log(
      `  After the flood stopped, the Argon2 threads stayed busy ${attack.drain.capped ? 'more than ' : ''}${f(attack.drain.seconds, 2)} s (${f(attack.drain.hashSeconds, 2)} CPU s). ` +
        `Attack server ready ${f(attack.startupMs, 0)} ms after spawn; device cookie ${attack.cookieName}; it logged ${attack.serverLogs.count} lines (security events at warn).`,
    );
    printNoise([
      ['no flood', attack.idle.cpu],
      ['flood window', attack.during.cpu],
      ['whole flood', attack.floodCpu],
    ]);
  }
  console.log('');
  console.log('Ratios');
  const signinPerCpu = rawCpuMsPer / serverMsPer(signinCpu, signin);
  console.log(
    `  signin / raw-hash            ${f(signin.okRate / raw.rate, 3)}   (${f(signin.okRate)} sign-ins/s ÷ ${f(raw.rate)} verifications/s; target ≈ 1)`,
  );
  console.log(
    `    per CPU                    ${f(signinPerCpu, 3)}   (${ms(rawCpuMsPer)} CPU per raw verification ÷ ${ms(serverMsPer(signinCpu, signin))} server CPU per sign-in)`,
  );
  console.log(
    `  me / healthz                 ${f(me.okRate / health.okRate, 3)}   (${f(me.okRate, 0)} ÷ ${f(health.okRate, 0)} req/s; p99 ${ms(me.p99)} vs ${ms(health.p99)})`,
  );
  console.log(
    `    per CPU                    ${f(serverMsPer(healthCpu, health) / serverMsPer(meCpu, me), 3)}   (${ms(serverMsPer(healthCpu, health))} ÷ ${ms(serverMsPer(meCpu, me))} server CPU per request)`,
  );
  console.log(
    `  me-p99 flood / me-p99 idle   ${f(meFlood.p99 / meIdle.p99, 2)}   (${ms(meFlood.p99)} vs ${ms(meIdle.p99)}; p50 ${ms(meFlood.p50)} vs ${ms(meIdle.p50)}; ${f(meFlood.okRate, 0)} vs ${f(meIdle.okRate, 0)} req/s)`,
  );
  const verifierMsPer = (path) => serverMsPer(V[path].cpu, V[path].result);
  console.log(
    `  protected / bare             ${f(prot.okRate / bare.okRate, 3)}   (${f(prot.okRate, 0)} ÷ ${f(bare.okRate, 0)} req/s; p99 ${ms(prot.p99)} vs ${ms(bare.p99)}; verified-token cache on; target ≈ 1)`,
  );
  console.log(
    `    per CPU                    ${f(verifierMsPer('/bare') / verifierMsPer('/protected'), 3)}   (${ms(verifierMsPer('/bare'))} ÷ ${ms(verifierMsPer('/protected'))} verifier-server CPU per request)`,
  );
  console.log(
    `  protected-nocache / bare     ${f(noCache.okRate / bare.okRate, 3)}   (${f(noCache.okRate, 0)} ÷ ${f(bare.okRate, 0)} req/s; p99 ${ms(noCache.p99)}; cacheSize 0: an RS256 check per request)`,
  );
  const microRate = (i) => micro[i]?.rate;
  console.log(
    `  verify cache on / off        ${f(microRate(0) / microRate(1), 1)}×  (in process: ${f(microRate(0), 0)} ÷ ${f(microRate(1), 0)} verifications/s)`,
  );
  console.log(
    `  node:crypto / jose           ${f(microRate(1) / microRate(2), 1)}×  (uncached signet/verify ÷ jose jwtVerify: ${f(microRate(1), 0)} ÷ ${f(microRate(2), 0)}/s; jose with 32 in flight ${f(microRate(3), 0)}/s)`,
  );
  if (attack) {
    console.log(
      `  legit sign-in success        ${pct100(legit.known.successRate)}   (${legit.known.ok}/${legit.known.attempts} known-device sign-ins during the flood; without it ${pct100(legit.idleKnown.successRate)}; target 100%)`,
    );
    console.log(
      `  legit sign-in p99 (flood)    ${ms(legit.known.p99)}   (p50 ${ms(legit.known.p50)}; without the flood p99 ${ms(legit.idleKnown.p99)}, p50 ${ms(legit.idleKnown.p50)})`,
    );
    console.log(
      `  me-p99 attack / no flood     ${f(attack.during.me.p99 / attack.idle.me.p99, 2)}   (${ms(attack.during.me.p99)} vs ${ms(attack.idle.me.p99)}; p50 ${ms(attack.during.me.p50)} vs ${ms(attack.idle.me.p50)}; ${f(attack.during.me.okRate, 0)} vs ${f(attack.idle.me.okRate, 0)} req/s)`,
    );
  }

  const problems = [];
  if (signin.non2xx || signin.errors || signin.timeouts) problems.push('sign-in phase had non-2xx/errors/timeouts');
  for (const [name, r] of [
    ['/auth/me', me],
    ['/healthz', health],
    ['/auth/me idle', meIdle],
    ['/auth/me during flood', meFlood],
    ['verifier /bare', bare],
    ['verifier /protected', prot],
    ['verifier /protected-nocache', noCache],
    ...(attack
      ? [
          ['attack: /auth/me without flood', attack.idle.me],
          ['attack: /auth/me during flood', attack.during.me],
        ]
      : []),
  ]) {
    if (r.non2xx || r.errors || r.timeouts) problems.push(`${name} had non-2xx/errors/timeouts`);
  }
  for (const [name, r] of Object.entries(pipeline)) if (r.non2xx || r.errors) problems.push(`pipeline ${name} had non-2xx/errors`);
  if (refresh.non2xx || refresh.errors) problems.push(`refresh chains had ${refresh.non2xx} non-2xx answers and ${refresh.errors} errors`);

  // ------------------------------------------------------------ targets
  const figures = {
    healthzVsBareHono: pipeline.healthz.rate / pipeline.bare.rate,
    pipelineMicros: healthCpuMicros - bareCpuMicros,
    meVsBareHono: pipeline.me.rate / pipeline.bare.rate,
    verifyVsBare: prot.okRate / bare.okRate,
    signinVsRawHash: signin.okRate / raw.rate,
    signinCpuBeyondHashMs: serverMsPer(signinCpu, signin) - rawCpuMsPer,
    refreshRate: refresh.rate,
    meP99FloodVsIdle: meFlood.p99 / meIdle.p99,
    rssAfterStartMiB: rssAfterStart,
    rssAfterBenchMiB: memory.rssMiB,
    coldStartMs,
  };
  const judged = judge(figures);
  const previous = COMPARE ? loadRun(COMPARE) : undefined;
  printTargets(judged, previous);
  console.log(
    `  (${WRK ? 'wrk' : 'autocannon: install wrk for a load generator faster than the bare route'}; bare Hono ${f(pipeline.bare.rate, 0)}/s at ${f(bareCpuMicros, 1)} µs CPU per request, ` +
      `/healthz ${f(pipeline.healthz.rate, 0)}/s at ${f(healthCpuMicros, 1)} µs, /auth/me ${f(pipeline.me.rate, 0)}/s; refresh p99 ${ms(refresh.p99)}; cold starts ${coldStarts.map((n) => f(n, 0)).join('/')} ms)`,
  );
  saveRun(JSON_OUT, {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: threads,
      quick: QUICK,
      loadGenerator: WRK ? 'wrk' : 'autocannon',
    },
    targets: judged,
    details: {
      pipeline,
      bareCpuMicros,
      healthCpuMicros,
      refresh,
      coldStarts,
      raw: { rate: raw.rate, cpuMsPer: rawCpuMsPer },
      signinRate: signin.okRate,
      me: { idleP99: meIdle.p99, floodP99: meFlood.p99 },
    },
  });
  console.log(`  Figures saved to ${JSON_OUT}${COMPARE ? '' : ' (compare a later run with: npm run bench -- --compare ' + JSON_OUT + ')'}.`);

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
  await Promise.all([server?.stop(), verifierServer?.stop()]);
}
