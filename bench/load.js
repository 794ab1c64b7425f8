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
 * rate = responses/s over autocannon's measured duration.
 */
export function load({ url, connections, durationSeconds, requests, timeoutSeconds = 30 }) {
  return new Promise((resolve, reject) => {
    const latencies = [];
    const byStatus = new Map();
    const instance = autocannon(
      { url, connections, duration: durationSeconds, requests, timeout: timeoutSeconds, pipelining: 1 },
      (error, result) => {
        running.delete(instance);
        if (error) return reject(error);
        resolve(summarize(result, latencies, byStatus));
      },
    );
    running.add(instance);
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
