import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { KEY_FILE } from '../../src/core/secrets.js';
import { createServices } from '../../src/services.js';
import { DIALECTS, TestClock, newAccount, startTestServer, testConfig } from '../helpers.js';
import type { TestServer } from '../helpers.js';

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

describe.each(DIALECTS)('signing keys on %s', (dialect) => {
  let server: TestServer;
  const account = newAccount();
  beforeAll(async () => {
    server = await startTestServer(dialect, { keyRotationOverlap: 600 });
    await server.call('POST', '/auth/signup', { body: account });
  });
  afterAll(async () => {
    await server.close();
  });
  const signIn = async () => (await server.call('POST', '/auth/signin', { body: { email: account.email, password: account.password } })).body.token as string;

  it('publishes public keys only, with caching headers', async () => {
    const response = await server.call('GET', '/.well-known/jwks.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/jwk-set\+json/);
    expect(response.headers.get('cache-control')).toBe('public, max-age=150');
    expect(response.body.keys).toHaveLength(1);
    const [key] = response.body.keys;
    expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: expect.any(String), n: expect.any(String), e: 'AQAB' });
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
  });

  it('rotates without ever rejecting a valid token: next key published first, old key kept until its tokens expire', async () => {
    const { keyring } = server.signet.services;
    const oldToken = await signIn();
    const oldKid = kidOf(oldToken);
    const next = await keyring.rotate();
    expect(next.state).toBe('next');

    // Published before it signs anything.
    let jwks = (await server.call('GET', '/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([oldKid, next.kid].sort());
    expect(kidOf(await signIn())).toBe(oldKid);

    // After the overlap the next key signs; tokens of the old one still verify.
    server.clock.advance(601);
    const newToken = await signIn();
    expect(kidOf(newToken)).toBe(next.kid);
    const stillOld = await signIn();
    expect(kidOf(stillOld)).toBe(next.kid);
    expect((await server.call('GET', '/auth/me', { token: newToken })).status).toBe(200);

    // An old-key token signed just before the switch lives its full 15 minutes.
    await keyring.refresh();
    jwks = (await server.call('GET', '/.well-known/jwks.json')).body;
    expect(jwks.keys).toHaveLength(2);

    // Once every old-key token has expired (+ leeway), the old key is dropped.
    server.clock.advance(900 + 61);
    await keyring.refresh();
    jwks = (await server.call('GET', '/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([next.kid]);
    expect((await server.call('GET', '/auth/me', { token: oldToken })).status).toBe(401);
  });

  it('keeps serving sign-ins and protected calls while a rotation takes effect', async () => {
    const { keyring } = server.signet.services;
    await keyring.rotate();
    const work = Array.from({ length: 20 }, async (_, i) => {
      if (i === 10) server.clock.advance(601);
      const token = await signIn();
      return (await server.call('GET', '/auth/me', { token })).status;
    });
    expect(await Promise.all(work)).toEqual(Array.from({ length: 20 }, () => 200));
  });

  it('serves a JWKS request storm from memory', async () => {
    const started = performance.now();
    const responses = await Promise.all(Array.from({ length: 200 }, () => fetch(`${server.url}/.well-known/jwks.json`)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('scheduled rotation', () => {
  it('publishes the next key once the signing key is KEY_ROTATION_INTERVAL old', async () => {
    const server = await startTestServer('sqlite', { keyRotationInterval: 3600, keyRotationOverlap: 300 });
    const { keyring } = server.signet.services;
    const first = keyring.active().kid;
    server.clock.advance(3599);
    await keyring.refresh();
    expect(keyring.list()).toHaveLength(1);
    server.clock.advance(2);
    await keyring.refresh();
    expect(keyring.list().map((k) => k.state)).toEqual(['active', 'next']);
    await keyring.refresh();
    expect(keyring.list()).toHaveLength(2);
    server.clock.advance(301);
    expect(keyring.active().kid).not.toBe(first);
    await server.close();
  });
});

describe('private keys at rest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-keys-'));
  const secret = 'an-operator-master-secret-of-32-bytes-or-more';
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const open = (masterSecret: string | undefined, dataDir = dir) =>
    createServices({ ...loadConfig({}), ...testConfig(), dataDir, databaseUrl: undefined, masterSecret }, { clock: new TestClock() });
  const privateJwk = async (services: Awaited<ReturnType<typeof open>>) =>
    (await services.db.kysely.selectFrom('signing_keys').select('private_jwk').executeTakeFirstOrThrow()).private_jwk;

  it('seals keys with a key file kept apart from the database when SIGNET_SECRET is unset: a copied database alone forges nothing', async () => {
    const first = await open(undefined);
    const sealed = await privateJwk(first);
    expect(sealed.startsWith('v1.')).toBe(true);
    expect(sealed).not.toContain('"d"');
    await first.close();
    expect(statSync(join(dir, KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'signet.db')).mode & 0o777).toBe(0o600);

    // The database file copied elsewhere (a stolen backup) without the key file: nothing opens.
    const elsewhere = mkdtempSync(join(tmpdir(), 'signet-copy-'));
    try {
      copyFileSync(join(dir, 'signet.db'), join(elsewhere, 'signet.db'));
      await expect(open(undefined, elsewhere)).rejects.toThrow(/cannot decrypt the stored signing keys/);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('re-seals with SIGNET_SECRET once it is set, and then refuses to start without it or with another one', async () => {
    const before = await open(undefined);
    const byKeyFile = await privateJwk(before);
    await before.close();

    const second = await open(secret);
    const bySecret = await privateJwk(second);
    expect(bySecret.startsWith('v1.')).toBe(true);
    expect(bySecret).not.toBe(byKeyFile);
    await second.close();

    // The key file no longer opens them; nor does another secret.
    await expect(open(undefined)).rejects.toThrow(ConfigError);
    await expect(open(undefined)).rejects.toThrow(/key file/);
    await expect(open('another-secret-that-is-also-long-enough!!')).rejects.toThrow(/SIGNET_SECRET is not the secret/);
    const again = await open(secret);
    await again.close();
  });

  it('makes data files an older Signet left readable by others private, and refuses a data directory others can write to', async () => {
    const loose = mkdtempSync(join(tmpdir(), 'signet-perms-'));
    try {
      const made = await open(undefined, loose);
      await made.close();
      chmodSync(join(loose, 'signet.db'), 0o644);
      chmodSync(join(loose, KEY_FILE), 0o644);
      const reopened = await open(undefined, loose);
      expect(reopened.db.tightened).toEqual([expect.stringContaining('signet.db')]);
      await reopened.close();
      expect(statSync(join(loose, 'signet.db')).mode & 0o777).toBe(0o600);
      expect(statSync(join(loose, KEY_FILE)).mode & 0o777).toBe(0o600);
      chmodSync(loose, 0o777);
      await expect(open(undefined, loose)).rejects.toThrow(/can be written by other users/);
    } finally {
      rmSync(loose, { recursive: true, force: true });
    }
  });
});

describe('token size budget', () => {
  it('refuses a configuration whose tokens would not fit in a cookie', async () => {
    const huge = `https://${'x'.repeat(2000)}.example.com`;
    await expect(startTestServer('sqlite', { publicUrl: huge, audience: huge })).rejects.toThrow(/budget/);
  });

  it('keeps a typical RS256 token under 1 KB', async () => {
    const server = await startTestServer('sqlite');
    const { token } = (await server.call('POST', '/auth/signup', { body: newAccount() })).body;
    expect(token.length).toBeLessThan(1024);
    await server.close();
  });
});
