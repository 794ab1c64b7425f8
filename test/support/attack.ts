import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Secret, TOTP } from 'otpauth';
import type { SignetConfig } from '../../src/config.js';
import { LIMIT_RULES } from '../../src/core/limits.js';
import { newAccount, startTestServer } from '../helpers.js';
import type { DialectName, TestServer } from '../helpers.js';

/**
 * The attacker's and the real user's side of the defence suites: clients that
 * each come from their own address (X-Forwarded-For from the trusted loopback
 * proxy), keep a device cookie like a browser, and the answers they expect.
 */

export const DEVICE_COOKIE = '__Host-signet-device';

export type Reply = Awaited<ReturnType<TestServer['call']>>;
export type CallOptions = { body?: unknown; token?: string; headers?: Record<string, string> };

const IP_NET = randomInt(1, 255);
let ipSeq = 0;
/** A client address no other test uses. */
export function freshIp(): string {
  ipSeq++;
  return `10.${IP_NET}.${(ipSeq >> 8) & 255}.${ipSeq & 255}`;
}

/** One client: an address and, optionally, the device cookie its browser keeps. */
export class Client {
  constructor(
    readonly server: TestServer,
    readonly ip: string = freshIp(),
    public deviceCookie?: string,
  ) {}

  call(method: string, path: string, options: CallOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { 'x-forwarded-for': this.ip };
    if (this.deviceCookie !== undefined) headers.cookie = `${DEVICE_COOKIE}=${this.deviceCookie}`;
    return this.server.call(method, path, { ...options, headers: { ...headers, ...options.headers } });
  }

  signIn(login: Record<string, string>): Promise<Reply> {
    return this.call('POST', '/auth/signin', { body: login });
  }

  /** POST /auth/token with a form body. */
  token(params: Record<string, string>): Promise<Reply> {
    return this.call('POST', '/auth/token', { body: new URLSearchParams(params).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }
}

export function ipClient(server: TestServer): Client {
  return new Client(server);
}

/** The device cookie a response sets, with its attributes. */
export function deviceCookieOf(reply: Reply): { value: string; attributes: string[] } | undefined {
  const line = reply.headers.getSetCookie().find((l) => l.startsWith(`${DEVICE_COOKIE}=`));
  if (!line) return undefined;
  const [pair, ...attributes] = line.split(';').map((s) => s.trim());
  return { value: decodeURIComponent(pair.slice(DEVICE_COOKIE.length + 1)), attributes };
}

/** Every header but the per-response ones (request id, date). */
export function headerSet(headers: Headers): [string, string][] {
  return [...headers.entries()].filter(([k]) => k !== 'x-request-id' && k !== 'date').sort(([a], [b]) => a.localeCompare(b));
}

export function expectSameAnswer(actual: Reply, expected: Reply): void {
  expect(actual.status).toBe(expected.status);
  expect(actual.body).toEqual(expected.body);
  expect(headerSet(actual.headers)).toEqual(headerSet(expected.headers));
}

export const INVALID_CREDENTIALS = { statusCode: 401, error: 'Unauthorized', message: 'Invalid credentials', code: 'invalid_credentials' };

export function expectInvalidCredentials(reply: Reply): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(401);
  expect(reply.body).toEqual(INVALID_CREDENTIALS);
  expect(reply.headers.get('set-cookie')).toBeNull();
  expect(reply.headers.get('retry-after')).toBeNull();
}

export function expectRetryAfter(reply: Reply, max: number): number {
  const value = reply.headers.get('retry-after');
  expect(value, 'Retry-After header').toMatch(/^\d+$/);
  const seconds = Number(value);
  expect(seconds).toBeGreaterThanOrEqual(1);
  expect(seconds).toBeLessThanOrEqual(max);
  return seconds;
}

/** `429 rate_limited` with Retry-After and the IETF RateLimit-* headers (issue 5 §1). */
export function expectRateLimited(reply: Reply, rule: keyof typeof LIMIT_RULES): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(429);
  expect(reply.body).toEqual({ statusCode: 429, error: 'Too Many Requests', message: expect.any(String), code: 'rate_limited' });
  expectRetryAfter(reply, LIMIT_RULES[rule].duration);
  expect(reply.headers.get('ratelimit-limit'), `RateLimit-Limit on a ${rule} 429`).toBe(String(LIMIT_RULES[rule].points));
  expect(reply.headers.get('ratelimit-remaining'), `RateLimit-Remaining on a ${rule} 429`).toBe('0');
  expect(reply.headers.get('ratelimit-reset'), `RateLimit-Reset on a ${rule} 429`).toMatch(/^[1-9]\d*$/);
}

/** Signs an account up from its own address; returns the account. */
export async function signedUp(server: TestServer, overrides: Record<string, unknown> = {}) {
  const account = newAccount(overrides);
  const reply = await ipClient(server).call('POST', '/auth/signup', { body: account });
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return { ...account, id: reply.body.user.id as string };
}

/** The real user's browser: signs in once and keeps the device cookie. */
export async function knownDevice(server: TestServer, account: { email: string; password: string }): Promise<Client> {
  const device = ipClient(server);
  const reply = await device.signIn({ email: account.email, password: account.password });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  const cookie = deviceCookieOf(reply);
  expect(cookie, 'a successful sign-in sets the device cookie').toBeDefined();
  device.deviceCookie = cookie!.value;
  return device;
}

export function flip(value: string, index: number): string {
  const c = value[index];
  return value.slice(0, index) + (c === 'A' ? 'B' : 'A') + value.slice(index + 1);
}

export function unknownEmail(): string {
  return `nobody.${randomBytes(6).toString('hex')}@example.com`;
}

export function totpFor(secret: string): TOTP {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
}

export function wrongCode(right: string): string {
  return String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
}

/** A server with rate limits on, trusting the loopback proxy, its dev outbox in a temporary directory. */
export async function limited(dialect: DialectName, overrides: Partial<SignetConfig> = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'signet-defences-'));
  const server = await startTestServer(dialect, { rateLimits: true, trustProxy: ['127.0.0.1'], dataDir, ...overrides });
  return {
    ...server,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
