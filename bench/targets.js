// The issue-11 targets of `npm run bench`: wrk runs against the bare Hono
// yardstick, refresh chains, cold start, and the table that marks each figure
// pass or fail, saved as JSON and compared with an earlier run.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import autocannon from 'autocannon';

const run = promisify(execFile);

/** wrk (Debian package `wrk`) when installed: a C load generator that outruns any Node server here. */
export const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((path) => existsSync(path));

/**
 * One wrk run (1 thread, keep-alive): requests/s and latency percentiles (ms).
 * Without wrk, autocannon in this process (its own ceiling is lower than a
 * bare Hono route's, which flatters the ratios: the report says so).
 */
export async function hammer(url, { connections, seconds, headers = {} }) {
  if (WRK) {
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
    const { stdout } = await run(WRK, args, { maxBuffer: 1 << 20 });
    const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
    const pct = (p) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+\\w+)`, 'm').exec(stdout)?.[1]);
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
    return { rate, p50: pct(50), p99: pct(99), non2xx, errors: errors ? errors.slice(1).reduce((a, n) => a + Number(n), 0) : 0 };
  }
  const result = await autocannon({ url, connections, duration: seconds, headers, pipelining: 1 });
  return { rate: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

function toMs(text) {
  if (!text) return NaN;
  const [, n, unit] = /^([\d.]+)(us|ms|s)$/.exec(text) ?? [];
  return Number(n) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
}

/**
 * Routes measured in turns (slices, rotating order) so that noise from the
 * rest of the machine hits each alike; rates are the mean over the slices.
 */
export async function interleave(routes, { connections, seconds, slices }) {
  const results = Object.fromEntries(routes.map((r) => [r.name, []]));
  for (let slice = 0; slice < slices; slice++) {
    for (let i = 0; i < routes.length; i++) {
      const route = routes[(i + slice) % routes.length];
      results[route.name].push(await hammer(route.url, { connections, seconds: seconds / slices, headers: route.headers }));
    }
  }
  return Object.fromEntries(
    Object.entries(results).map(([name, runs]) => [
      name,
      {
        rate: runs.reduce((a, r) => a + r.rate, 0) / runs.length,
        p99: Math.max(...runs.map((r) => r.p99)),
        non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
        errors: runs.reduce((a, r) => a + r.errors, 0),
      },
    ]),
  );
}

/**
 * Refreshes as real clients do them: every session presents the successor it
 * was given last. The tokens wait in a pool (one per connection): a request
 * takes one, its answer puts the successor back. (autocannon resets a
 * connection's context after each pass through `requests`, so the chain
 * cannot live there.) A failed answer drops its chain and is counted.
 */
export function refreshChains(url, refreshTokens, { seconds }) {
  const pool = [...refreshTokens];
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: refreshTokens.length,
        duration: seconds,
        pipelining: 1,
        requests: [
          {
            method: 'POST',
            path: '/auth/token/refresh',
            headers: { 'content-type': 'application/json' },
            setupRequest: (request) => ({ ...request, body: JSON.stringify({ refreshToken: pool.shift() }) }),
            onResponse: (status, body) => {
              if (status === 200) pool.push(JSON.parse(body).refreshToken);
            },
          },
        ],
      },
      (error, result) =>
        error ? reject(error) : resolve({ rate: result['2xx'] / result.duration, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors }),
    );
  });
}

/** Each figure the issue sets a target for: how to read it, the bound, and which way is better. */
export const TARGETS = {
  healthzVsBareHono: { label: 'GET /healthz ÷ bare Hono route', min: 0.7, unit: '×' },
  pipelineMicros: { label: 'pipeline cost per request (server CPU /healthz − bare Hono)', max: 20, unit: 'µs' },
  meVsBareHono: { label: 'GET /auth/me ÷ bare Hono route', min: 0.3, unit: '×' },
  verifyVsBare: { label: 'signet/verify route ÷ same route without it', min: 0.9, unit: '×' },
  signinVsRawHash: { label: 'sign-in rate ÷ raw Argon2id rate', min: 0.85, unit: '×' },
  signinCpuBeyondHashMs: { label: 'server CPU per sign-in beyond the hash', max: 1.5, unit: 'ms' },
  refreshRate: { label: 'refreshes per second', min: 3000, unit: '/s' },
  meP99FloodVsIdle: { label: '/auth/me p99 during a sign-in flood ÷ idle', max: 2, unit: '×' },
  rssAfterStartMiB: { label: 'RSS right after start', max: 80, unit: 'MiB' },
  rssAfterBenchMiB: { label: 'RSS after the benchmark', max: 120, unit: 'MiB' },
  coldStartMs: { label: 'cold start with existing data (spawn → /healthz answers)', max: 300, unit: 'ms' },
};

const show = (value, unit) => {
  if (!Number.isFinite(value)) return '-';
  const digits = unit === '×' ? 3 : Math.abs(value) < 10 ? 2 : 0;
  return `${value.toFixed(digits)}${unit === '×' ? '×' : ` ${unit}`}`;
};

/** Pass/fail of each figure against its target. */
export function judge(figures) {
  return Object.fromEntries(
    Object.entries(TARGETS).map(([key, t]) => {
      const value = figures[key];
      const pass = Number.isFinite(value) ? (t.min !== undefined ? value >= t.min : value <= t.max) : null;
      return [key, { value, target: t.min !== undefined ? `≥ ${t.min}` : `≤ ${t.max}`, pass }];
    }),
  );
}

/** Prints the targets table (and the change from `previous`, a saved run, if given). */
export function printTargets(judged, previous) {
  const width = Math.max(...Object.values(TARGETS).map((t) => t.label.length));
  console.log('');
  console.log(`Targets (issue 11)${previous ? `, compared with the run of ${previous.meta?.date ?? 'an earlier run'}` : ''}`);
  for (const [key, { value, target, pass }] of Object.entries(judged)) {
    const t = TARGETS[key];
    const mark = pass === null ? ' n/a' : pass ? ' PASS' : ' FAIL';
    let line = `  ${mark.padEnd(5)}  ${t.label.padEnd(width)}  ${show(value, t.unit).padStart(10)}   target ${target} ${t.unit === '×' ? '' : t.unit}`;
    const before = previous?.targets?.[key]?.value;
    if (Number.isFinite(before) && Number.isFinite(value)) {
      const change = before === 0 ? NaN : ((value - before) / Math.abs(before)) * 100;
      line += `   was ${show(before, t.unit)} (${change >= 0 ? '+' : ''}${change.toFixed(0)}%)`;
    }
    console.log(line);
  }
}

export function saveRun(path, run) {
  writeFileSync(path, `${JSON.stringify(run, null, 2)}\n`);
}

export function loadRun(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}
