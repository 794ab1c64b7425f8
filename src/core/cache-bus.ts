import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SessionCache } from './session-cache.js';

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

  forgetSessions(sessionIds: readonly string[]): void {
    if (sessionIds.length === 0) return;
    this.#cache.forgetSessions(sessionIds);
    this.#publish({ from: this.#id, sessions: [...sessionIds] });
  }

  forgetUser(userId: string): void {
    this.#cache.forgetUser(userId);
    this.#publish({ from: this.#id, user: userId });
  }

  async close(): Promise<void> {
    if (this.#subscriber) await this.#subscriber.quit().catch(() => this.#subscriber?.disconnect());
  }

  #subscribe(subscriber: Redis): void {
    subscriber.subscribe(this.#channel).then(
      () => this.#cache.reset(true),
      (error: unknown) => this.#onError(error instanceof Error ? error : new Error(String(error))),
    );
  }

  #publish(message: Message): void {
    this.#publisher?.publish(this.#channel, JSON.stringify(message)).catch((error: unknown) => {
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    });
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
