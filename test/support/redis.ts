import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TestServer } from '../helpers.js';

/**
 * A Redis key prefix of its own for one suite (REDIS_PREFIX), so suites and
 * runs sharing the machine's Redis never see each other's counters; `drop()`
 * deletes every key under it.
 */
export interface RedisScope {
  url: string;
  prefix: string;
  /** Resolves once `server` writes its counters to Redis (its client connects in the background at start). */
  ready(server: TestServer): Promise<void>;
  drop(): Promise<void>;
}

export function redisScope(url: string): RedisScope {
  const prefix = `signet-test-${randomBytes(6).toString('hex')}`;
  const admin = new Redis(url, { lazyConnect: true });
  return {
    url,
    prefix,
    async ready(server) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        // Any per-client limit writes a key under the prefix once the client is connected.
        await server.call('GET', '/auth/revocations', { headers: { 'x-forwarded-for': '10.254.254.254' } });
        if ((await admin.keys(`${prefix}:*`)).length > 0) return;
        if (Date.now() > deadline) throw new Error(`${server.url} never wrote its counters to Redis`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async drop() {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await admin.del(...keys);
      } while (cursor !== '0');
      admin.disconnect();
    },
  };
}
