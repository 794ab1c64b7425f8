import { createHmac, randomBytes } from 'node:crypto';
import type { Clock } from './clock.js';
import { constantTimeEqual } from './crypto.js';

/** A device cookie lives a year; each successful sign-in from the device renews it. */
export const DEVICE_COOKIE_TTL = 365 * 24 * 60 * 60;

/**
 * OWASP "device cookies": after a successful sign-in the browser gets a signed
 * cookie naming the account and a random device id. Sign-ins that present a
 * valid one for the same account are counted per device, so failures from
 * elsewhere (an attacker guessing) never lock the real user out.
 */
export class DeviceCookies {
  readonly #key: Buffer;
  readonly #clock: Clock;

  constructor(options: { key: Buffer; clock: Clock }) {
    this.#key = options.key;
    this.#clock = options.clock;
  }

  issue(userId: string): string {
    const payload = `${userId}.${randomBytes(16).toString('base64url')}.${Math.floor(this.#clock.now() / 1000)}`;
    return `${Buffer.from(payload).toString('base64url')}.${this.#mac(payload)}`;
  }

  /** The device id when `cookie` is a valid, unexpired device cookie of `userId`. */
  verify(cookie: string | undefined, userId: string): string | undefined {
    if (!cookie || cookie.length > 512) return undefined;
    const [encoded, mac, extra] = cookie.split('.');
    if (!encoded || !mac || extra !== undefined) return undefined;
    const payload = Buffer.from(encoded, 'base64url').toString('utf8');
    if (!constantTimeEqual(this.#mac(payload), mac)) return undefined;
    const [owner, device, issued] = payload.split('.');
    if (owner !== userId || !device || !issued) return undefined;
    if (this.#clock.now() / 1000 - Number(issued) > DEVICE_COOKIE_TTL) return undefined;
    return device;
  }

  #mac(payload: string): string {
    return createHmac('sha256', this.#key).update(`device:${payload}`).digest('base64url');
  }
}
