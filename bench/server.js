// The Signet server under test, in a child process of its own (so the load
// generator never shares its event loop), plus what /proc says about it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const HOST = '127.0.0.1';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node dist/cli/main.js serve` on a free port with a fresh SQLite data
 * dir. `configEnvNames` are the variables Signet reads: they are removed from
 * the inherited environment so the server runs on its defaults (Argon2
 * parameters, hash concurrency, SQLite), whatever the caller's shell holds;
 * then `env` (e.g. RATE_LIMITS, TRUST_PROXY) is applied on top.
 */
/** The operator token the bench's servers take for GET /metrics. */
export const BENCH_METRICS_TOKEN = randomBytes(32).toString('base64url');

export async function startServer({ root, configEnvNames, nodeArgs = [], env: extra = {}, readyTimeoutMs = 30_000, dataDir: reuse, keepDataDir = false }) {
  // A given data dir (a restart on existing data) is the caller's to remove.
  const dataDir = reuse ?? mkdtempSync(join(tmpdir(), 'signet-bench-'));
  const port = await freePort();
  const env = { ...process.env };
  for (const name of [...configEnvNames, 'SIGNET_CONFIG']) delete env[name];
  Object.assign(env, { HOST, PORT: String(port), SIGNET_DATA_DIR: dataDir, LOG_LEVEL: 'warn', METRICS_TOKEN: BENCH_METRICS_TOKEN }, extra);
  return launch({
    args: [...nodeArgs, join(root, 'dist/cli/main.js'), 'serve'],
    cwd: dataDir,
    env,
    port,
    readyPath: '/healthz',
    dataDir: reuse || keepDataDir ? undefined : dataDir,
    readyTimeoutMs,
    what: 'server',
  }).then((server) => Object.assign(server, { dataDir }));
}

/** Starts bench/bare-hono.js (the bare Hono yardstick) on a free port; ready once it answers GET /hello. */
export async function startBareHono({ root, readyTimeoutMs = 15_000 }) {
  const port = await freePort();
  return launch({
    args: [join(root, 'bench/bare-hono.js')],
    cwd: root,
    env: { ...process.env, HOST, PORT: String(port) },
    port,
    readyPath: '/hello',
    dataDir: undefined,
    readyTimeoutMs,
    what: 'bare Hono server',
  });
}

/**
 * Starts bench/verifier-server.js (a node:http server protecting routes with
 * signet/verify) on a free port; `env` carries the issuer, audience and JWKS
 * URL. Ready once it answers GET /bare (it loads the JWKS before listening).
 */
export async function startVerifierServer({ root, env: extra, readyTimeoutMs = 15_000 }) {
  const port = await freePort();
  const env = { ...process.env, HOST, PORT: String(port), ...extra };
  return launch({
    args: [join(root, 'bench/verifier-server.js')],
    cwd: root,
    env,
    port,
    readyPath: '/bare',
    dataDir: undefined,
    readyTimeoutMs,
    what: 'verifier server',
  });
}

async function launch({ args, cwd, env, port, readyPath, dataDir, readyTimeoutMs, what }) {
  const removeDataDir = () => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const child = spawn(process.execPath, args, {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logLines = [];
  let logCount = 0;
  const keep = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.trim()) continue;
      logLines.push(line);
      logCount++;
    }
    if (logLines.length > 200) logLines.splice(0, logLines.length - 200);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  let exitInfo = '';
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
    child.once('error', (error) => {
      exited = true;
      exitInfo = `spawn failed: ${error.message}`;
      resolve();
    });
  });

  const server = {
    child,
    pid: child.pid,
    port,
    url: `http://${HOST}:${port}`,
    dataDir,
    logLines,
    /** Lines logged so far (logLines keeps only the last 200). */
    get logCount() {
      return logCount;
    },
    get exited() {
      return exited;
    },
    get exitInfo() {
      return exitInfo;
    },
    /** SIGTERM (the server's own graceful stop), SIGKILL after `graceMs`; removes the data dir. */
    async stop(graceMs = 3000) {
      if (!exited) {
        child.kill('SIGTERM');
        const killed = await Promise.race([exitPromise.then(() => true), sleep(graceMs).then(() => false)]);
        if (!killed && !exited) {
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
      removeDataDir();
    },
    /** Synchronous last resort for process.on('exit'). */
    killNow() {
      if (!exited) child.kill('SIGKILL');
      removeDataDir();
    },
  };

  const started = performance.now();
  for (;;) {
    if (exited) {
      removeDataDir();
      throw new Error(`${what} exited during start-up (${exitInfo}):\n${logLines.join('\n')}`);
    }
    if (performance.now() - started > readyTimeoutMs) {
      await server.stop();
      throw new Error(`${what} not ready after ${readyTimeoutMs} ms:\n${logLines.join('\n')}`);
    }
    try {
      const response = await globalThis.fetch(`${server.url}${readyPath}`, { signal: globalThis.AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
  server.startupMs = performance.now() - started;
  return server;
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB, from /proc/<pid>/status. */
export function readMemory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024, threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN) };
}

/** USER_HZ: the unit of utime/stime in /proc/<pid>/task/<tid>/stat (100 on every Linux Node supports). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Per thread of `pid`, keyed by tid: CPU seconds used so far and seconds spent
 * runnable but waiting for a core (run-queue wait), from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds). The main thread is the one
 * whose tid is the pid. Falls back to utime+stime ticks without schedstat.
 */
export function readThreadCpu(pid) {
  const threads = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      threads.set(tid, { seconds: runNs / 1e9, waitSeconds: waitNs / 1e9 });
    } catch {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        // comm is parenthesised and may hold spaces: the fields after the last ')' are fixed;
        // fields[0] is field 3 (state), so utime (field 14) and stime (15) are fields[11] and [12].
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        threads.set(tid, { seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND, waitSeconds: NaN });
      } catch {
        // the thread ended between readdir and read
      }
    }
  }
  return threads;
}

/**
 * CPU seconds every process on the machine has used so far (non-idle time of
 * all cores, from /proc/stat): minus the server and the bench, that is what
 * other processes took from the measurement.
 */
export function readMachineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  // cpu user nice system idle iowait irq softirq steal ...
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - ticks[3] - ticks[4]) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Thread ids of the Argon2 workers: the `count` non-main threads that worked
 * most between two snapshots taken around a hashing-bound phase. (Node names
 * every thread "node", so they are told apart by what they did.)
 */
export function busiestThreads(before, after, pid, count) {
  return [...after]
    .filter(([tid]) => tid !== String(pid))
    .map(([tid, { seconds }]) => [tid, seconds - (before.get(tid)?.seconds ?? 0)])
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([tid]) => tid);
}

/**
 * CPU seconds the server used between two `readThreadCpu` snapshots, split
 * into the main thread (event loop, JWT signing/verifying, SQLite), the Argon2
 * worker threads (`hashTids`) and the rest (V8 GC/compiler helpers, libuv pool);
 * plus `mainWait`, the main thread's run-queue wait (ready to run, no free core).
 */
export function cpuBetween(before, after, pid, hashTids) {
  const split = { main: 0, hash: 0, rest: 0, mainWait: 0 };
  for (const [tid, { seconds, waitSeconds }] of after) {
    const used = seconds - (before.get(tid)?.seconds ?? 0);
    if (tid === String(pid)) {
      split.main += used;
      split.mainWait = waitSeconds - (before.get(tid)?.waitSeconds ?? 0);
    } else if (hashTids.includes(tid)) split.hash += used;
    else split.rest += used;
  }
  return split;
}

/** The nice value of one thread (field 19 of /proc/<pid>/task/<tid>/stat), NaN if unreadable. */
export function readThreadNice(pid, tid) {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // fields[0] is field 3 (state), so nice (field 19) is fields[16].
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds used so far by every process on the machine (utime+stime of
 * /proc/<pid>/stat, which include their threads), keyed by pid, with the
 * command name; plus the kernel's interrupt time (irq+softirq of /proc/stat,
 * e.g. loopback networking), which belongs to no process. Used to say who the
 * "others" CPU was.
 */
export function readProcessCpu() {
  const processes = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      processes.set(pid, { comm, seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND });
    } catch {
      // the process ended between readdir and read
    }
  }
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { processes, interruptSeconds: (ticks[5] + ticks[6]) / CLOCK_TICKS_PER_SECOND };
}

/**
 * Who used CPU between two readProcessCpu snapshots, excluding `ownPids`:
 * the `top` busiest processes (seconds, name) and the kernel's interrupt time.
 * Processes that started and ended in between are not seen.
 */
export function otherCpuBetween(before, after, ownPids, top = 3) {
  const own = new Set(ownPids.filter((p) => p !== undefined).map(String));
  const used = [];
  for (const [pid, { comm, seconds }] of after.processes) {
    if (own.has(pid)) continue;
    const delta = seconds - (before.processes.get(pid)?.seconds ?? 0);
    if (delta > 0) used.push({ pid, comm, seconds: delta });
  }
  used.sort((a, b) => b.seconds - a.seconds);
  return {
    top: used.slice(0, top).map((p) => ({ ...p, name: describeProcess(p.pid, p.comm) })),
    interruptSeconds: after.interruptSeconds - before.interruptSeconds,
  };
}

/** "node vitest run" rather than "node": the command name and the base names of its first arguments. */
function describeProcess(pid, comm) {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    if (args.length === 0) return comm;
    const words = args.slice(0, 3).map((a) => a.split('/').filter(Boolean).pop() ?? a);
    const text = words.join(' ');
    return `${text.length > 32 ? `${text.slice(0, 31)}…` : text} (${pid})`;
  } catch {
    return comm;
  }
}
