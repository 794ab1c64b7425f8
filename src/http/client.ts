import { isIP } from 'node:net';
import type { ClientContext } from '../core/sessions.js';
import { readCookie } from './cookies.js';
import type { AppContext } from './context.js';

interface NodeBindings {
  incoming?: { socket?: { remoteAddress?: string; encrypted?: boolean } };
}

function remoteAddress(c: AppContext): string | null {
  const env = c.env as NodeBindings | undefined;
  return normalize(env?.incoming?.socket?.remoteAddress ?? null);
}

function normalize(address: string | null): string | null {
  if (address === null) return null;
  // IPv4-mapped IPv6 (::ffff:127.0.0.1) is the IPv4 client.
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client's address. X-Forwarded-For is honoured only when the peer is a
 * configured trusted proxy, and then read from the right, skipping further
 * trusted proxies (the left-most entries are whatever the client wrote).
 */
export function clientIp(c: AppContext, trusted: readonly string[]): string | null {
  const peer = remoteAddress(c);
  if (peer === null || !trusted.includes(peer)) return peer;
  const forwarded = (c.req.header('x-forwarded-for') ?? '')
    .split(',')
    .map((s) => normalize(s.trim()))
    .filter((s): s is string => !!s && isIP(s) !== 0);
  for (let i = forwarded.length - 1; i >= 0; i--) {
    if (!trusted.includes(forwarded[i])) return forwarded[i];
  }
  return forwarded[0] ?? peer;
}

/** Whether the request reached us over HTTPS (directly, or per a trusted proxy). */
export function isHttps(c: AppContext, trusted: readonly string[]): boolean {
  const env = c.env as NodeBindings | undefined;
  if (env?.incoming?.socket?.encrypted) return true;
  const peer = remoteAddress(c);
  if (peer !== null && trusted.includes(peer)) return c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
  // On a Node socket the connection decides, never the URL a client wrote in its request line.
  if (env?.incoming?.socket) return false;
  return new URL(c.req.url).protocol === 'https:';
}

/**
 * Who sent this request, as core sees it. The abort signal is made only when
 * core asks for it (a queued hash): most requests never need one.
 */
export function clientContext(c: AppContext, trusted: readonly string[]): ClientContext {
  const context: ClientContext = {
    ip: clientIp(c, trusted),
    userAgent: c.req.header('user-agent') ?? null,
    deviceCookie: c.req.header('cookie') === undefined ? undefined : readCookie(c, 'device'),
  };
  return Object.defineProperty(context, 'signal', { get: () => c.req.raw.signal, enumerable: true });
}
