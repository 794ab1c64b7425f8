import { describe, expect, it } from 'vitest';
import { UUID_PATTERN, constantTimeEqual, open, randomToken, seal, sha256, uuidv7 } from '../../src/core/crypto.js';

const SECRET = 'a master secret that is long enough to use';

/** Flips one bit of the base64url part `index` of a sealed string. */
function tamper(sealed: string, index: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[0] ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('uuidv7', () => {
  it('has the UUID layout, version 7 and the RFC 9562 variant', () => {
    for (let i = 0; i < 50; i++) {
      const id = uuidv7();
      expect(id).toMatch(UUID_PATTERN);
      expect(id[14]).toBe('7');
      expect('89ab').toContain(id[19]);
    }
  });

  it('carries the millisecond timestamp in its first 48 bits', () => {
    const now = Date.UTC(2026, 10, 23, 10, 0, 0, 123);
    const id = uuidv7(now);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(now);
  });

  it('sorts by creation time across milliseconds', () => {
    const base = Date.now();
    const ids = Array.from({ length: 20 }, (_, i) => uuidv7(base + i * 7));
    expect([...ids].sort()).toEqual(ids);
    expect(uuidv7(base + 1) > uuidv7(base)).toBe(true);
  });

  it('is unique within the same millisecond', () => {
    const now = Date.now();
    expect(new Set(Array.from({ length: 1000 }, () => uuidv7(now))).size).toBe(1000);
  });
});

describe('seal and open', () => {
  it('round-trips text, including non-ASCII and the empty string', () => {
    for (const plaintext of ['{"kty":"EC"}', 'ünïcødé 😀', '']) {
      const sealed = seal(SECRET, 'purpose', plaintext);
      expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/);
      expect(open(SECRET, 'purpose', sealed)).toBe(plaintext);
    }
  });

  it('does not reveal the plaintext and never repeats a ciphertext', () => {
    const a = seal(SECRET, 'purpose', 'private key material');
    const b = seal(SECRET, 'purpose', 'private key material');
    expect(a).not.toBe(b);
    expect(a).not.toContain('private');
    expect(Buffer.from(a.split('.')[2], 'base64url').toString()).not.toContain('private');
  });

  it('accepts the secret as a Buffer with the same bytes', () => {
    expect(open(Buffer.from(SECRET), 'purpose', seal(SECRET, 'purpose', 'hello'))).toBe('hello');
  });

  it('answers undefined for a wrong secret or another purpose', () => {
    const sealed = seal(SECRET, 'purpose', 'hello');
    expect(open(`${SECRET}!`, 'purpose', sealed)).toBeUndefined();
    expect(open(SECRET, 'other purpose', sealed)).toBeUndefined();
  });

  it('answers undefined when the iv, ciphertext or tag was altered', () => {
    const sealed = seal(SECRET, 'purpose', 'hello world');
    expect(open(SECRET, 'purpose', tamper(sealed, 1))).toBeUndefined();
    expect(open(SECRET, 'purpose', tamper(sealed, 2))).toBeUndefined();
    expect(open(SECRET, 'purpose', tamper(sealed, 3))).toBeUndefined();
  });

  it('answers undefined for malformed input instead of throwing', () => {
    for (const bad of ['', 'v1', 'v1.a.b', 'v2.a.b.c', 'not sealed at all', 'v1...']) {
      expect(open(SECRET, 'purpose', bad)).toBeUndefined();
    }
    const [, iv, body] = seal(SECRET, 'purpose', 'hello').split('.');
    expect(open(SECRET, 'purpose', `v1.${iv}.${body}.`)).toBeUndefined();
  });
});

describe('constantTimeEqual', () => {
  it('is true only for equal strings', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('', '')).toBe(true);
    expect(constantTimeEqual('ünï', 'ünï')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'ABC')).toBe(false);
  });

  it('is false for strings of different lengths, in either order', () => {
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('abcd', 'abc')).toBe(false);
    expect(constantTimeEqual('', 'a')).toBe(false);
    expect(constantTimeEqual('a', '')).toBe(false);
  });
});

describe('randomToken', () => {
  it('is 43 base64url characters (256 bits) and never repeats', () => {
    const tokens = Array.from({ length: 200 }, () => randomToken());
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(tokens).size).toBe(tokens.length);
  });
});

describe('sha256', () => {
  it('is the base64url SHA-256 digest, stable across calls', () => {
    expect(sha256('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    expect(sha256('abc')).toBe(sha256('abc'));
    expect(sha256('abd')).not.toBe(sha256('abc'));
    expect(sha256('')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
