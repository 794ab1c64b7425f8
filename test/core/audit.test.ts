import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { auditCommand } from '../../src/cli/audit.js';
import { AuditLog, GENESIS_HASH, entryHash, legacyEntryHash, withClientIp } from '../../src/core/audit.js';
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

/** The chain key a server derives from its at-rest secret. */
const KEY = Buffer.alloc(32, 1);

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
    audit = new AuditLog({ db, clock, keys: [KEY], onError: (error, lost) => errors.push({ error, lost }) });
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
      for (const row of list) expect(row.hash).toBe(entryHash(row, KEY));
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

    it('reports the next link when someone holding the key rewrites a row with a matching hash of its own', async () => {
      await seed(5);
      const [victim] = await raw(db).selectFrom('audit_log').selectAll().where('seq', '=', 3).execute();
      const forged = { ...(victim as AuditRow), details: '{"reason":"ok"}' };
      await raw(db)
        .updateTable('audit_log')
        .set({ details: forged.details, hash: entryHash(forged, KEY) })
        .where('seq', '=', 3)
        .execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 4, reason: expect.stringMatching(/prev_hash/) });
    });

    it('catches a row edited and the whole chain and head recomputed by someone who can write the database but lacks the key', async () => {
      await seed(5);
      const list = await rows(db);
      let prev = GENESIS_HASH;
      // The attack of issue 8 §5 on Signet 0.1: edit entry 3, then recompute every later hash and the head.
      for (const row of list) {
        const next = { ...row, prev_hash: prev, details: row.seq === 3 ? '{"reason":"ok"}' : row.details };
        const forgedHash = entryHash(next, Buffer.alloc(32, 7));
        await raw(db).updateTable('audit_log').set({ details: next.details, prev_hash: prev, hash: forgedHash }).where('seq', '=', row.seq).execute();
        prev = forgedHash;
      }
      await raw(db).updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 1, reason: expect.stringMatching(/altered/) });
    });

    it('catches a chain rewritten with the unkeyed SHA-256 of Signet 0.1, and names the upgrade step for a genuine old log', async () => {
      await seed(3);
      let prev = GENESIS_HASH;
      for (const row of await rows(db)) {
        const hash = legacyEntryHash({ ...row, prev_hash: prev });
        await raw(db).updateTable('audit_log').set({ prev_hash: prev, hash }).where('seq', '=', row.seq).execute();
        prev = hash;
      }
      await raw(db).updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 1, reason: expect.stringMatching(/reanchor/) });
      // A log written by 0.1 is re-keyed once, then verifies; new entries chain on.
      expect(await audit.reanchor()).toEqual({ entries: 3, rekeyed: 3 });
      await seed(2);
      expect(await audit.verify()).toEqual({ ok: true, entries: 5 });
    });

    it('refuses to reanchor a broken chain and changes nothing', async () => {
      await seed(4);
      await raw(db).updateTable('audit_log').set({ details: '{"reason":"ok"}' }).where('seq', '=', 2).execute();
      const before = await rows(db);
      await expect(audit.reanchor()).rejects.toThrow(/broken at entry 2/);
      expect(await rows(db)).toEqual(before);
    });

    it('checks the log against a head recorded outside the database', async () => {
      await seed(3);
      const anchor = await audit.head();
      expect(anchor).toEqual({ seq: 3, hash: (await rows(db))[2].hash });
      await seed(2);
      expect(await audit.verify({ anchor })).toEqual({ ok: true, entries: 5 });
      // Someone with the key rebuilds the log from entry 1: the chain holds, the anchor does not.
      const list = await rows(db);
      let prev = GENESIS_HASH;
      for (const row of list) {
        const next = { ...row, prev_hash: prev, details: row.seq === 2 ? '{"reason":"ok"}' : row.details };
        const hash = entryHash(next, KEY);
        await raw(db).updateTable('audit_log').set({ details: next.details, prev_hash: prev, hash }).where('seq', '=', row.seq).execute();
        prev = hash;
      }
      await raw(db).updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
      expect(await audit.verify()).toEqual({ ok: true, entries: 5 });
      expect(await audit.verify({ anchor })).toMatchObject({ ok: false, brokenAt: 3, reason: expect.stringMatching(/anchor/) });
      expect(await audit.verify({ anchor: { seq: 9, hash: anchor.hash } })).toMatchObject({ ok: false, reason: expect.stringMatching(/truncated/) });
    });

    it('verifies entries keyed with the previous secret (a key file kept after SIGNET_SECRET was set)', async () => {
      await seed(2);
      const rotated = new AuditLog({ db, clock, keys: [Buffer.alloc(32, 9), KEY], onError: (error, lost) => errors.push({ error, lost }) });
      rotated.record('auth.signin_failed', { userId: 'u' });
      await rotated.close();
      expect(await rotated.verify()).toEqual({ ok: true, entries: 3 });
      // The log under the old key alone cannot vouch for the new entry.
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 3 });
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
          (entry) => entryHash(entry, KEY),
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
      const second = new AuditLog({ db: other, clock, keys: [KEY], onError: (error, lost) => errors.push({ error, lost }) });
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
            (entry) => entryHash(entry, KEY),
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
      const log = new AuditLog({ db: broken, clock, keys: [KEY], onError: (_error, count) => lost.push(count) });
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
        keys: [KEY],
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

    it('head prints seq:hash, and verify --anchor checks the log against it', async () => {
      await seed(2);
      expect(await auditCommand({ audit }, ['head'])).toBe(0);
      const anchor = out.join('').trim();
      expect(anchor).toMatch(/^2:[0-9a-f]{64}$/);
      out.length = 0;
      await seed(1);
      expect(await auditCommand({ audit }, ['verify', '--anchor', anchor])).toBe(0);
      expect(out.join('')).toBe('OK: audit log intact, 3 entries, entry 2 matches the anchor\n');
      out.length = 0;
      expect(await auditCommand({ audit }, ['verify', '--anchor', `2:${'0'.repeat(64)}`])).toBe(1);
      expect(out.join('')).toMatch(/^BROKEN at entry 2: .*anchor/);
    });

    it('reanchor re-keys a log of Signet 0.1 and refuses a broken one', async () => {
      await seed(2);
      let prev = GENESIS_HASH;
      for (const row of await rows(db)) {
        const hash = legacyEntryHash({ ...row, prev_hash: prev });
        await raw(db).updateTable('audit_log').set({ prev_hash: prev, hash }).where('seq', '=', row.seq).execute();
        prev = hash;
      }
      await raw(db).updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
      expect(await auditCommand({ audit }, ['reanchor'])).toBe(0);
      expect(out.join('')).toMatch(/^Re-keyed 2 of 2 entries/);
      expect(await audit.verify()).toEqual({ ok: true, entries: 2 });
      await raw(db).updateTable('audit_log').set({ event: 'auth.signin_succeeded' }).where('seq', '=', 1).execute();
      out.length = 0;
      expect(await auditCommand({ audit }, ['reanchor'])).toBe(1);
      expect(out.join('')).toMatch(/^REFUSED: the audit chain is broken at entry 1/);
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
      [['verify', '--anchor', '3:nothex']],
      [['head', 'now']],
      [['drop']],
    ])('refuses %j with usage and exit 2', async (args) => {
      expect(await auditCommand({ audit }, args)).toBe(2);
      expect(err.join('')).toMatch(/Usage: signet audit/);
    });
  });
});
