import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { auditCommand } from '../../src/cli/audit.js';
import { AuditLog, GENESIS_HASH, entryHash, withClientIp } from '../../src/core/audit.js';
import { migrate, openDb } from '../../src/store/db.js';
import type { Db } from '../../src/store/db.js';
import { appendAudit } from '../../src/store/audit.js';
import type { AuditRow } from '../../src/store/audit.js';
import { up as auditMigration } from '../../src/store/migrations/003_audit_log.js';
import { DIALECTS, TestClock, createPostgresSchema } from '../helpers.js';
import type { DialectName } from '../helpers.js';

/** A migrated store with the audit tables, whether or not 003 is in the migration list yet. */
async function openStore(dialect: DialectName, url?: string): Promise<Db> {
  const db = dialect === 'sqlite' ? openDb({ sqlitePath: ':memory:', dataDir: '.' }) : openDb({ databaseUrl: url, dataDir: '.' });
  const applied = await migrate(db);
  if (!applied.includes('003_audit_log') && !(await hasAuditTables(db))) await auditMigration(raw(db));
  return db;
}

async function hasAuditTables(db: Db): Promise<boolean> {
  const tables = await db.kysely.introspection.getTables();
  return tables.some((t) => t.name === 'audit_head');
}

/** Direct SQL access, as someone tampering with the database would have. */
function raw(db: Db): Kysely<any> {
  return db.kysely;
}

async function rows(db: Db): Promise<AuditRow[]> {
  return (await raw(db).selectFrom('audit_log').selectAll().orderBy('seq').execute()) as AuditRow[];
}

function expectContiguous(list: AuditRow[]): void {
  expect(list.map((r) => r.seq)).toEqual(list.map((_, i) => i + 1));
}

describe.each(DIALECTS)('audit log (%s)', (dialect) => {
  let db: Db;
  let drop: (() => Promise<void>) | undefined;
  let pgUrl: string | undefined;
  let clock: TestClock;
  let errors: { error: unknown; lost: number }[];
  let audit: AuditLog;

  beforeEach(async () => {
    const schema = dialect === 'postgres' ? await createPostgresSchema() : undefined;
    drop = schema?.drop;
    pgUrl = schema?.url;
    db = await openStore(dialect, pgUrl);
    clock = new TestClock();
    errors = [];
    audit = new AuditLog({ db, clock, onError: (error, lost) => errors.push({ error, lost }) });
  });

  afterEach(async () => {
    await audit.close();
    await db.close();
    await drop?.();
  });

  /** Records `count` sign-in failures for one user and waits for them to be written. */
  async function seed(count: number, userId = 'user-1'): Promise<void> {
    for (let i = 0; i < count; i++) {
      audit.record('auth.signin_failed', { reason: 'wrong_password', userId, attempt: i + 1 });
      clock.advance(1);
    }
    await audit.flush();
  }

  describe('chain', () => {
    it('numbers entries from 1 and links each to the previous hash, starting at the genesis value', async () => {
      await seed(3);
      const list = await rows(db);
      expectContiguous(list);
      expect(list[0].prev_hash).toBe(GENESIS_HASH);
      expect(list[1].prev_hash).toBe(list[0].hash);
      expect(list[2].prev_hash).toBe(list[1].hash);
      for (const row of list) expect(row.hash).toBe(entryHash(row));
      expect(await audit.verify()).toEqual({ ok: true, entries: 3 });
    });

    it('verifies an empty log', async () => {
      expect(await audit.verify()).toEqual({ ok: true, entries: 0 });
    });

    it('keeps userId, sessionId and ip in their columns and the rest in details', async () => {
      audit.record('security.refresh_token_reuse', { userId: 'u1', sessionId: 's1', ip: '203.0.113.7', rotatedAgoMs: 42 });
      await audit.flush();
      const [row] = await rows(db);
      expect(row).toMatchObject({ event: 'security.refresh_token_reuse', user_id: 'u1', session_id: 's1', ip: '203.0.113.7', at: expect.any(Number) });
      expect(JSON.parse(row.details)).toEqual({ rotatedAgoMs: 42 });
    });

    it('audits auth, security, account, session and user events only', async () => {
      for (const event of [
        'auth.signin_succeeded',
        'security.refresh_token_reuse',
        'account.password_changed',
        'session.ended',
        'user.signed_up',
        'mail.sent',
        'keys.generated',
        'limits.error',
        'authx.other',
      ]) {
        audit.record(event, { userId: 'u1' });
      }
      await audit.flush();
      expect((await rows(db)).map((r) => r.event)).toEqual([
        'auth.signin_succeeded',
        'security.refresh_token_reuse',
        'account.password_changed',
        'session.ended',
        'user.signed_up',
      ]);
    });

    it('takes the ip from the client scope when the fields carry none', async () => {
      await withClientIp('198.51.100.4', async () => {
        await Promise.resolve();
        audit.record('auth.signin_succeeded', { userId: 'u1' });
        audit.record('auth.signin_failed', { userId: 'u1', ip: '192.0.2.1' });
      });
      audit.record('user.signed_up', { userId: 'u1' });
      await audit.flush();
      expect((await rows(db)).map((r) => r.ip)).toEqual(['198.51.100.4', '192.0.2.1', null]);
    });
  });

  describe('secrets', () => {
    it('drops every field named like a credential and every email address, keeping the user id', async () => {
      audit.record('account.password_changed', {
        userId: 'u1',
        reason: 'user_request',
        password: 'hunter2-hunter2',
        newPassword: 'n3w-pa55word',
        refreshToken: 'rt-secret-value',
        access_token: 'at-secret-value',
        clientSecret: 'cs-secret-value',
        totpCode: '123456',
        recovery_codes: ['aaaa-bbbb'],
        passwordHash: '$argon2id$v=19$...',
        email: 'ada@example.com',
        newEmail: 'ada2@example.com',
        note: 'requested by ada@example.com',
        nested: { idToken: 'jwt-value', kept: 1, to: 'bob@example.org' },
        fields: ['name', 'username'],
      });
      await audit.flush();
      const [row] = await rows(db);
      expect(row.user_id).toBe('u1');
      expect(JSON.parse(row.details)).toEqual({ reason: 'user_request', nested: { kept: 1 }, fields: ['name', 'username'] });
      expect(JSON.stringify(row)).not.toMatch(/hunter2|n3w-pa55|secret-value|123456|aaaa-bbbb|argon2|@example|jwt-value/);
    });

    it('stores details as canonical JSON: the same fields in another order give the same text', async () => {
      audit.record('auth.signin_failed', { userId: 'u1', b: 1, a: { d: 2, c: 3 } });
      audit.record('auth.signin_failed', { a: { c: 3, d: 2 }, userId: 'u1', b: 1 });
      await audit.flush();
      const [first, second] = await rows(db);
      expect(first.details).toBe('{"a":{"c":3,"d":2},"b":1}');
      expect(second.details).toBe(first.details);
    });
  });

  describe('tamper detection', () => {
    it('reports the seq of a row whose details were changed in the database', async () => {
      await seed(5);
      await raw(db).updateTable('audit_log').set({ details: '{"reason":"ok"}' }).where('seq', '=', 3).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 3, reason: expect.stringMatching(/altered/) });
    });

    it('reports a row moved to another user', async () => {
      await seed(4);
      await raw(db).updateTable('audit_log').set({ user_id: 'someone-else' }).where('seq', '=', 2).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 2 });
    });

    it('reports a deleted row as the first missing seq', async () => {
      await seed(5);
      await raw(db).deleteFrom('audit_log').where('seq', '=', 2).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 2, reason: expect.stringMatching(/missing/) });
    });

    it('reports the first entry deleted', async () => {
      await seed(3);
      await raw(db).deleteFrom('audit_log').where('seq', '=', 1).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 1 });
    });

    it('reports the newest entries deleted, which leave no gap', async () => {
      await seed(5);
      await raw(db).deleteFrom('audit_log').where('seq', '>=', 4).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 4, reason: expect.stringMatching(/truncated/) });
    });

    it('reports the next link when a row is rewritten with a matching hash of its own', async () => {
      await seed(5);
      const [victim] = await raw(db).selectFrom('audit_log').selectAll().where('seq', '=', 3).execute();
      const forged = { ...(victim as AuditRow), details: '{"reason":"ok"}' };
      await raw(db)
        .updateTable('audit_log')
        .set({ details: forged.details, hash: entryHash(forged) })
        .where('seq', '=', 3)
        .execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 4, reason: expect.stringMatching(/prev_hash/) });
    });

    it('reports two entries swapped', async () => {
      await seed(4);
      const list = await rows(db);
      // Swap the content of entries 2 and 3, keeping their positions.
      for (const [target, source] of [
        [list[1], list[2]],
        [list[2], list[1]],
      ]) {
        await raw(db)
          .updateTable('audit_log')
          .set({ id: `${source.id}-x`, details: source.details, prev_hash: source.prev_hash, hash: source.hash })
          .where('seq', '=', target.seq)
          .execute();
      }
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 2 });
    });

    it('reports a forged prev_hash', async () => {
      await seed(3);
      await raw(db)
        .updateTable('audit_log')
        .set({ prev_hash: 'f'.repeat(64) })
        .where('seq', '=', 2)
        .execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 2 });
    });
  });

  describe('concurrency', () => {
    it('gives concurrent appends contiguous, unique numbers and a valid chain', async () => {
      const writes = Array.from({ length: 60 }, (_, i) =>
        appendAudit(
          db,
          [{ id: `id-${i}`, at: clock.now(), event: 'auth.signin_failed', user_id: `u${i % 7}`, session_id: null, ip: null, details: `{"n":${i}}` }],
          entryHash,
        ),
      );
      for (let i = 0; i < 60; i++) audit.record('auth.signin_succeeded', { userId: `u${i % 5}` });
      await Promise.all([...writes, audit.flush()]);
      const list = await rows(db);
      expect(list).toHaveLength(120);
      expectContiguous(list);
      expect(new Set(list.map((r) => r.id)).size).toBe(120);
      expect(await audit.verify()).toEqual({ ok: true, entries: 120 });
    });

    it.runIf(dialect === 'postgres')('keeps one chain when two instances write at once', async () => {
      // A second store handle is a second connection pool: another Signet instance.
      const other = openDb({ databaseUrl: pgUrl, dataDir: '.' });
      const second = new AuditLog({ db: other, clock, onError: (error, lost) => errors.push({ error, lost }) });
      try {
        const batches = Array.from({ length: 20 }, (_, i) =>
          appendAudit(
            other,
            Array.from({ length: 3 }, (__, j) => ({
              id: `b-${i}-${j}`,
              at: clock.now(),
              event: 'auth.signin_failed',
              user_id: 'u',
              session_id: null,
              ip: null,
              details: '{}',
            })),
            entryHash,
          ),
        );
        for (let i = 0; i < 50; i++) {
          audit.record('auth.signin_failed', { userId: 'a' });
          second.record('auth.signin_failed', { userId: 'b' });
        }
        await Promise.all([...batches, audit.flush(), second.flush()]);
        const list = await rows(db);
        expect(list).toHaveLength(160);
        expectContiguous(list);
        expect(await audit.verify()).toEqual({ ok: true, entries: 160 });
      } finally {
        await second.close();
        await other.close();
      }
    });
  });

  describe('failures', () => {
    it('never throws into the caller and reports entries it could not write', async () => {
      const broken = await openStore(dialect, pgUrl);
      const lost: number[] = [];
      const log = new AuditLog({ db: broken, clock, onError: (_error, count) => lost.push(count) });
      await broken.close();
      expect(() => log.record('auth.signin_failed', { userId: 'u1' })).not.toThrow();
      expect(() => log.record('auth.signin_failed', { userId: 'u1' })).not.toThrow();
      await log.flush();
      expect(lost.reduce((a, b) => a + b, 0)).toBe(2);
    });

    it('does not throw when the error callback throws', async () => {
      const log = new AuditLog({
        db,
        clock,
        onError: () => {
          throw new Error('logger down');
        },
      });
      await log.close();
      expect(() => log.record('auth.signin_failed', { userId: 'u1' })).not.toThrow();
    });

    it('writes nothing and reports nothing for events it does not keep', async () => {
      audit.record('mail.sent', { id: 'm1' });
      await audit.flush();
      expect(await rows(db)).toEqual([]);
      expect(errors).toEqual([]);
    });
  });

  describe('forUser', () => {
    it("lists only that user's entries, newest first, in pages", async () => {
      await seed(3, 'alice');
      await seed(2, 'bob');
      await seed(2, 'alice');
      const all = await audit.forUser('alice');
      expect(all.map((e) => e.seq)).toEqual([7, 6, 3, 2, 1]);
      expect(all.every((e) => e.userId === 'alice')).toBe(true);
      expect(all[0]).toMatchObject({ event: 'auth.signin_failed', details: { reason: 'wrong_password', attempt: 2 } });
      const first = await audit.forUser('alice', { limit: 2 });
      expect(first.map((e) => e.seq)).toEqual([7, 6]);
      const next = await audit.forUser('alice', { limit: 2, before: first[1].seq });
      expect(next.map((e) => e.seq)).toEqual([3, 2]);
      expect(await audit.forUser('nobody')).toEqual([]);
    });
  });

  describe('signet audit', () => {
    let out: string[];
    let err: string[];

    beforeEach(() => {
      out = [];
      err = [];
      vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
      vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (err.push(String(chunk)), true));
    });
    afterEach(() => vi.restoreAllMocks());

    it('verify prints OK with the entry count and exits 0', async () => {
      await seed(3);
      expect(await auditCommand({ audit }, ['verify'])).toBe(0);
      expect(out.join('')).toBe('OK: audit log intact, 3 entries\n');
    });

    it('verify names the first broken entry and exits 1', async () => {
      await seed(3);
      await raw(db).updateTable('audit_log').set({ event: 'auth.signin_succeeded' }).where('seq', '=', 2).execute();
      expect(await auditCommand({ audit }, ['verify'])).toBe(1);
      expect(out.join('')).toMatch(/^BROKEN at entry 2: /);
    });

    it('list prints one line per event of the user, newest first', async () => {
      await seed(3, 'alice');
      await seed(1, 'bob');
      expect(await auditCommand({ audit }, ['list', '--user', 'alice', '--limit', '2'])).toBe(0);
      const lines = out.join('').trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^3 {2}\S+Z {2}auth\.signin_failed {2}ip=- {2}session=- {2}\{"attempt":3,"reason":"wrong_password"\}$/);
      expect(lines[1]).toMatch(/^2 /);
    });

    it.each([
      [[]],
      [['list']],
      [['list', '--user']],
      [['list', '--user', 'u', '--limit', '0']],
      [['list', '--user', 'u', '--bogus', '1']],
      [['verify', 'now']],
      [['drop']],
    ])('refuses %j with usage and exit 2', async (args) => {
      expect(await auditCommand({ audit }, args)).toBe(2);
      expect(err.join('')).toMatch(/Usage: signet audit/);
    });
  });
});
