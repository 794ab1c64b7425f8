import type { EndedSession } from '../model.js';

export type SessionEndListener = (ended: readonly EndedSession[], reason: string) => void;

/**
 * Where every way a session can end is told about it: sign-out, password
 * change or reset, refresh-token reuse, a revoked grant. Listeners react
 * without the ending code knowing them (back-channel logout to the clients
 * of an ended browser session). A listener runs synchronously and must not
 * throw: slow work belongs in its own background queue.
 */
export class SessionEnds {
  readonly #listeners: SessionEndListener[] = [];

  subscribe(listener: SessionEndListener): void {
    this.#listeners.push(listener);
  }

  publish(ended: readonly EndedSession[], reason: string): void {
    if (ended.length === 0) return;
    for (const listener of this.#listeners) listener(ended, reason);
  }
}
