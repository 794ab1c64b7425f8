// autocannon runs with exact latency percentiles. autocannon's own histogram
// keeps whole milliseconds, too coarse for a ~1 ms route, so every response
// time (float ms, from its 'response' event) is kept and sorted here.
import autocannon from 'autocannon';

const running = new Set();

/** Stops every autocannon run still going (SIGINT, fatal error). */
export function stopAllLoad() {
  for (const instance of running) instance.stop();
}

/**
 * One autocannon run. `requests` is autocannon's requests array (use
 * setupRequest to rotate bodies or tokens). Resolves to a summary:
 * rate = responses/s over autocannon's measured duration. `stop`, a promise,
 * ends the run early when it settles (durationSeconds is then the upper bound).
 */
export function load({ url, connections, durationSeconds, requests, timeoutSeconds = 30, stop, keepLatencies = false }) {
  return new Promise((resolve, reject) => {
    const latencies = [];
    const byStatus = new Map();
    const instance = autocannon({ url, connections, duration: durationSeconds, requests, timeout: timeoutSeconds, pipelining: 1 }, (error, result) => {
      running.delete(instance);
      if (error) return reject(error);
      const summary = summarize(result, latencies, byStatus);
      resolve(keepLatencies ? { ...summary, latencies } : summary);
    });
    running.add(instance);
    const halt = () => instance.stop();
    stop?.then(halt, halt);
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      latencies.push(responseTimeMs);
      let list = byStatus.get(statusCode);
      if (!list) byStatus.set(statusCode, (list = []));
      list.push(responseTimeMs);
    });
  });
}

function summarize(result, latencies, byStatus) {
  latencies.sort((a, b) => a - b);
  const latencyByStatus = {};
  for (const [code, list] of byStatus) {
    list.sort((a, b) => a - b);
    latencyByStatus[code] = { count: list.length, p50: percentile(list, 50), p99: percentile(list, 99) };
  }
  const statusCounts = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]));
  const responses = latencies.length;
  return {
    durationSeconds: result.duration,
    connections: result.connections,
    responses,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCounts,
    rate: responses / result.duration,
    okRate: result['2xx'] / result.duration,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1] : NaN,
    /** Per HTTP status: count, p50, p99 (ms). */
    latencyByStatus,
  };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Several runs of the same requests (made with keepLatencies) as one: counts
 * and durations added, percentiles over all their latencies. Used to
 * interleave runs of different routes in slices, so that a burst of load from
 * other processes on the machine hits them all alike.
 */
export function mergeRuns(runs) {
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const sum = (key) => runs.reduce((a, r) => a + r[key], 0);
  const statusCounts = {};
  for (const r of runs) for (const [code, n] of Object.entries(r.statusCounts)) statusCounts[code] = (statusCounts[code] ?? 0) + n;
  const durationSeconds = sum('durationSeconds');
  return {
    durationSeconds,
    connections: runs[0].connections,
    responses: latencies.length,
    ok: sum('ok'),
    non2xx: sum('non2xx'),
    errors: sum('errors'),
    timeouts: sum('timeouts'),
    statusCounts,
    rate: latencies.length / durationSeconds,
    okRate: sum('ok') / durationSeconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1] : NaN,
    latencyByStatus: {},
    slices: runs.length,
  };
}
