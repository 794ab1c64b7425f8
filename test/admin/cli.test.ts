import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash as bcrypt } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startSmtpServer } from '../support/smtp.js';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import type { RunningServer } from '../../src/server.js';
import { DIALECTS, createPostgresSchema, newAccount, testConfig } from '../helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const redisUrl = inject('redisUrl');

beforeAll(() => {
  // The CLI under test is the built one, as `npx signet` runs it.
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
}, 180_000);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

describe.each(DIALECTS)('the signet command on %s', (dialect) => {
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let dropSchema: (() => Promise<void>) | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'signet-cli-'));

  function signet(args: string[], input?: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [CLI, ...args],
        { env: { ...env, ...extraEnv }, cwd: dataDir, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          let json: unknown;
          try {
            json = JSON.parse(stdout);
          } catch {
            json = undefined;
          }
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr, json });
        },
      );
      child.stdin?.end(input ?? '');
    });
  }

  async function call(path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
    const response = await fetch(server.url + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  beforeAll(async () => {
    const schema = dialect === 'postgres' ? await createPostgresSchema() : undefined;
    dropSchema = schema?.drop;
    const config = { ...loadConfig({}), ...testConfig({ dataDir }), databaseUrl: schema?.url };
    server = await startServer({ config });
    env = {
      PATH: process.env.PATH,
      SIGNET_DATA_DIR: dataDir,
      DATABASE_URL: schema?.url ?? '',
      PUBLIC_URL: 'http://signet.test',
      JWT_AUDIENCE: 'http://signet.test',
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_TIME_COST: '1',
      ARGON2_PARALLELISM: '1',
      LOG_LEVEL: 'silent',
    };
  });
  afterAll(async () => {
    await server?.close();
    await dropSchema?.();
  }, 60_000);

  it('prints what it can do with no arguments, and exits 2 on a usage error', async () => {
    const help = await signet([]);
    expect(help.code).toBe(0);
    for (const command of ['serve', 'users', 'sessions', 'import', 'export', 'admin-keys', 'keys', 'audit']) expect(help.stdout).toContain(command);
    expect((await signet(['users', 'list', '--verified', 'maybe'])).code).toBe(2);
    expect((await signet(['no-such-command'])).code).toBe(2);
    expect((await signet(['users', 'delete', 'someone'])).code).toBe(2);
    const missing = await signet(['users', 'show', 'nobody@example.com']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/User not found/);
  }, 60_000);

  it('creates, lists, disables (sign-in refused), enables and deletes a user', async () => {
    const account = newAccount();
    const created = await signet(
      ['--json', 'users', 'create', '--email', account.email, '--username', account.username, '--password-stdin', '--role', 'support'],
      `${account.password}\n`,
    );
    expect(created.code, created.stderr).toBe(0);
    const id = created.json.user.id as string;

    const listed = await signet(['--json', 'users', 'list', '--email', account.email.slice(0, 12)]);
    expect(listed.code).toBe(0);
    expect(listed.json.users.map((u: { id: string }) => u.id)).toContain(id);
    const table = await signet(['users', 'list', '--role', 'support']);
    expect(table.stdout).toMatch(/^ID\s+EMAIL/);
    expect(table.stdout).toContain(account.email);

    const signin = await call('/auth/signin', { email: account.email, password: account.password });
    expect(signin.status).toBe(200);
    expect((await signet(['users', 'disable', account.email])).code).toBe(0);
    const refused = await call('/auth/signin', { email: account.email, password: account.password });
    expect(refused).toEqual({ status: 401, body: expect.objectContaining({ code: 'invalid_credentials' }) });
    expect((await call('/auth/me', undefined, signin.body.token)).status).toBe(401);

    expect((await signet(['users', 'enable', id])).code).toBe(0);
    const again = await call('/auth/signin', { email: account.email, password: account.password });
    expect(again.status).toBe(200);
    const sessions = await signet(['--json', 'sessions', 'list', '--user', id]);
    expect(sessions.json.sessions).toHaveLength(1);

    expect((await signet(['users', 'delete', account.username, '--yes'])).code).toBe(0);
    expect((await signet(['users', 'show', id])).code).toBe(1);
    expect((await call('/auth/me', undefined, again.body.token)).status).toBe(401);
  }, 60_000);

  it('imports users with bcrypt hashes, rejects every kind of bad row with its line, and is idempotent', async () => {
    const good = await Promise.all(
      Array.from({ length: 3 }, async (_, i) => {
        const account = newAccount();
        return { ...account, id: `legacy-${i}-${account.username}`, hash: await bcrypt(account.password, 4) };
      }),
    );
    const bad = newAccount();
    const lines = [
      'id,username,email,password',
      ...good.map((g) => `${g.id},${g.username},${g.email},${g.hash}`),
      `x1,,not-an-email,${good[0].hash}`, // line 5: bad email
      `x2,,${good[0].email},${good[1].hash}`, // line 6: duplicate of line 2
      `x3,,${bad.email},plaintext-password`, // line 7: unknown hash format
      `x4,,b.${bad.email},$2b$13$${'a'.repeat(53)}`, // line 8: cost too high
      `x5,,c.${bad.email},$2b$03$${'a'.repeat(53)}`, // line 9: cost too low
      `x6,,d.${bad.email},`, // line 10: no hash
      `x 7,,e.${bad.email},${good[0].hash}`, // line 11: bad id
    ];
    const file = join(dataDir, `users-${Date.now()}.csv`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const rejectsFile = join(dataDir, 'rejects.csv');

    const dry = await signet(['--json', 'import', file, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json).toMatchObject({ dryRun: true, rows: 10, inserted: 3, rejected: 7 });
    expect((await call('/auth/signin', { email: good[0].email, password: good[0].password })).status).toBe(401);

    const first = await signet(['--json', 'import', file, '--rejects', rejectsFile]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({
      rows: 10,
      inserted: 3,
      skipped: 0,
      rejected: 7,
      rejectedByReason: { bad_email: 1, duplicate: 1, unknown_hash_format: 1, hash_cost_out_of_bounds: 2, missing_password: 1, bad_id: 1 },
    });
    const rejects = readFileSync(rejectsFile, 'utf8').trim().split('\n').slice(1);
    // Field problems are found as rows are read, duplicates when their batch is checked: sorted by line here.
    expect(rejects.map((r) => r.split(',').slice(0, 2).join(',')).sort((a, b) => parseInt(a) - parseInt(b))).toEqual([
      '5,bad_email',
      '6,duplicate',
      '7,unknown_hash_format',
      '8,hash_cost_out_of_bounds',
      '9,hash_cost_out_of_bounds',
      '10,missing_password',
      '11,bad_id',
    ]);

    const rerun = await signet(['--json', 'import', file]);
    expect(rerun.json).toMatchObject({ inserted: 0, updated: 0, skipped: 3, rejected: 7 });
    const byId = await signet(['--json', 'import', file, '--key', 'id', '--on-conflict', 'update']);
    expect(byId.json).toMatchObject({ inserted: 0, updated: 3 });

    // An imported user signs in with the old password; the hash is upgraded to Argon2id on the way.
    const { db } = server.signet.services;
    const stored = async (id: string) =>
      (await db.kysely.selectFrom('users').select('password_hash').where('id', '=', id).executeTakeFirstOrThrow()).password_hash;
    expect(await stored(good[0].id)).toMatch(/^\$2[aby]\$04\$/);
    const signin = await call('/auth/signin', { email: good[0].email, password: good[0].password });
    expect(signin.status).toBe(200);
    expect(JSON.parse(Buffer.from(signin.body.token.split('.')[1], 'base64url').toString()).sub).toBe(good[0].id);
    await server.signet.services.accounts.settle();
    expect(await stored(good[0].id)).toMatch(/^\$argon2id\$/);
    expect((await call('/auth/signin', { email: good[0].email, password: good[0].password })).status).toBe(200);
    expect((await call('/auth/signin', { email: good[1].email, password: 'not-the-password' })).status).toBe(401);

    // Export writes the format import reads.
    const exported = join(dataDir, 'export.jsonl');
    expect((await signet(['export', exported])).code).toBe(0);
    const rows = readFileSync(exported, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; password: string });
    expect(rows.find((r) => r.id === good[1].id)?.password).toBe(good[1].hash);
    const reimport = await signet(['--json', 'import', exported, '--key', 'id']);
    expect(reimport.json).toMatchObject({ inserted: 0, rejected: 0 });
  }, 60_000);

  it('doctor passes on a healthy setup and names each broken part', async () => {
    const smtp = await startSmtpServer();
    try {
      const healthy = await signet(['--json', 'doctor'], undefined, { SMTP_URL: smtp.url, ...(redisUrl ? { REDIS_URL: redisUrl } : {}) });
      expect(healthy.json.checks.filter((c: { status: string }) => c.status === 'fail')).toEqual([]);
      expect(healthy.code).toBe(0);
      const names = healthy.json.checks.map((c: { name: string }) => c.name);
      for (const name of ['config', 'storage', 'migrations', 'clock', 'keys', 'mail', 'redis', 'hashing']) expect(names).toContain(name);
    } finally {
      await smtp.close();
    }
    const broken = await signet(['doctor'], undefined, {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/signet',
      SMTP_URL: 'smtp://127.0.0.1:1',
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/FAIL\s+storage\s+postgres unreachable/);
    expect(broken.stdout).toMatch(/FAIL\s+mail\s+SMTP smtp:\/\/127\.0\.0\.1:1/);
    expect(broken.stdout).toMatch(/FAIL\s+redis\s+redis:\/\/127\.0\.0\.1:1/);
    expect(broken.stdout).toContain('→ check DATABASE_URL');
  }, 60_000);

  it('backs up SQLite online and restores into an empty data directory; refuses on PostgreSQL', async () => {
    const target = join(mkdtempSync(join(tmpdir(), 'signet-backup-')), 'signet.backup');
    if (dialect === 'postgres') {
      const refused = await signet(['backup', target]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/pg_dump/);
      return;
    }
    const account = newAccount();
    await call('/auth/signup', account);
    const backup = await signet(['backup', target]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/signet\.key/);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    const restoredDir = mkdtempSync(join(tmpdir(), 'signet-restored-'));
    copyFileSync(join(dataDir, 'signet.key'), join(restoredDir, 'signet.key'));
    const restore = await signet(['restore', target], undefined, { SIGNET_DATA_DIR: restoredDir });
    expect(restore.code, restore.stderr).toBe(0);
    const shown = await signet(['--json', 'users', 'show', account.email], undefined, { SIGNET_DATA_DIR: restoredDir });
    expect(shown.json.user.email).toBe(account.email);
    expect((await signet(['restore', target], undefined, { SIGNET_DATA_DIR: restoredDir })).code).toBe(1);
  }, 60_000);

  it('registers OpenID clients as docs/oidc.md says, the secret printed once', async () => {
    const added = await signet([
      '--json',
      'clients',
      'add',
      '--name',
      'Example App',
      '--type',
      'confidential',
      '--redirect-uri',
      'http://localhost:4000/callback',
      '--post-logout-redirect-uri',
      'http://localhost:4000/',
      '--scope',
      'openid',
      '--scope',
      'email',
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.json.secret).toBeTypeOf('string');
    const id = added.json.client.id as string;
    const shown = await signet(['clients', 'show', id]);
    expect(shown.stdout).toContain('Example App');
    expect(shown.stdout).not.toContain(added.json.secret);
    expect((await signet(['clients', 'update', id, '--name', 'Renamed'])).code).toBe(0);
    expect((await signet(['clients', 'list'])).stdout).toContain('Renamed');
    expect((await signet(['--json', 'clients', 'rotate-secret', id])).json.secret).not.toBe(added.json.secret);
    expect((await signet(['clients', 'disable', id])).code).toBe(0);
    expect((await signet(['clients', 'remove', id])).code).toBe(0);
    expect((await signet(['clients', 'show', id])).code).toBe(1);
  }, 60_000);

  it('creates, uses and revokes admin keys from the command line', async () => {
    // A second key keeps the admin API on: with no live key at all it answers 404.
    expect((await signet(['admin-keys', 'create', '--name', 'keeper', '--scope', 'write'])).code).toBe(0);
    const created = await signet(['--json', 'admin-keys', 'create', '--name', 'ci', '--scope', 'read']);
    expect(created.code).toBe(0);
    const users = await call('/admin/users?limit=1', undefined, created.json.secret);
    expect(users.status).toBe(200);
    const listed = await signet(['admin-keys', 'list']);
    expect(listed.stdout).toContain(created.json.id);
    expect(listed.stdout).not.toContain(created.json.secret);
    expect((await signet(['admin-keys', 'revoke', created.json.id])).code).toBe(0);
    expect((await call('/admin/users?limit=1', undefined, created.json.secret)).status).toBe(401);
  }, 60_000);
});
