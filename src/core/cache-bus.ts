import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SessionCache } from './session-cache.js';

/** How long an invalidation waits for a Redis connection that is not up yet. */
const PUBLISH_WAIT_MS = 2000;

function ready(redis: Redis, waitMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error('Redis not connected'));
    }, waitMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

interface Message {
  from: string;
  sessions?: string[];
  user?: string;
}

export interface CacheBusOptions {
  cache: SessionCache;
  /** Shared with the other instances; without it the cache serves this process alone. */
  redis?: Redis | undefined;
  channel: string;
  onError?: (error: Error) => void;
}

/**
 * Carries session-cache invalidations to every instance sharing a Redis
 * (pub/sub). While this instance is not subscribed (starting, Redis down,
 * reconnecting) its cache stores nothing, since it could miss an
 * invalidation; when the subscription is back the cache starts empty.
 */
export class CacheBus {
  readonly #cache: SessionCache;
  readonly #publisher: Redis | undefined;
  readonly #subscriber: Redis | undefined;
  readonly #channel: string;
  readonly #id = randomUUID();
  readonly #onError: (error: Error) => void;
  readonly #pending = new Set<Promise<void>>();

  constructor(options: CacheBusOptions) {
    this.#cache = options.cache;
    this.#channel = options.channel;
    this.#onError = options.onError ?? (() => {});
    this.#publisher = options.redis;
    if (!options.redis) return;
    this.#cache.reset(false);
    const subscriber = (this.#subscriber = options.redis.duplicate());
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.#channel) this.#receive(text);
    });
    // ioredis subscribes again after a reconnect; until then nothing may be cached.
    subscriber.on('close', () => this.#cache.reset(false));
    subscriber.on('error', () => this.#cache.reset(false));
    subscriber.on('ready', () => this.#subscribe(subscriber));
  }

  /** Tells the other instances of sessions that ended here (SessionService has dropped them from this cache). */
  publishEnded(sessionIds: readonly string[]): void {
    if (sessionIds.length > 0) this.#publish({ from: this.#id, sessions: [...sessionIds] });
  }

  forgetUser(userId: string): void {
    this.#cache.forgetUser(userId);
    this.#publish({ from: this.#id, user: userId });
  }

  /** Sends what is still queued (a `signet` command's invalidation), then leaves the channel. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#pending);
    if (this.#subscriber) await this.#subscriber.quit().catch(() => this.#subscriber?.disconnect());
  }

  #subscribe(subscriber: Redis): void {
    subscriber.subscribe(this.#channel).then(
      () => this.#cache.reset(true),
      (error: unknown) => this.#onError(error instanceof Error ? error : new Error(String(error))),
    );
  }

  #publish(message: Message): void {
    const publisher = this.#publisher;
    if (!publisher) return;
    // Commands fail at once while Redis is not connected (no offline queue): a process that has only just
    // started (a `signet` command) waits for the connection, a little, rather than drop the message.
    const sent = ready(publisher, PUBLISH_WAIT_MS)
      .then(() => publisher.publish(this.#channel, JSON.stringify(message)))
      .then(
        () => undefined,
        (error: unknown) => this.#onError(error instanceof Error ? error : new Error(String(error))),
      )
      .finally(() => this.#pending.delete(sent));
    this.#pending.add(sent);
  }

  #receive(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return;
    }
    if (message.from === this.#id) return;
    if (Array.isArray(message.sessions)) this.#cache.forgetSessions(message.sessions.filter((s) => typeof s === 'string'));
    if (typeof message.user === 'string') this.#cache.forgetUser(message.user);
  }
}
