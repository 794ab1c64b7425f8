import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { migrationProvider } from './migrations/index.js';
import { createPrivateFile, privateDirectory, tightenFiles } from './files.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /** Files whose permissions were tightened to 0600 at open (created readable by an older Signet). */
  tightened: string[];
  /** Cheap round trip for `/readyz`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  databaseUrl?: string | undefined;
  /** SQLite file; `:memory:` works for tests. */
  sqlitePath?: string;
  dataDir: string;
  /** Called for pool errors that have no request to fail (idle connection dropped). */
  onBackgroundError?: (error: Error) => void;
}

export function openDb(options: OpenDbOptions): Db {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options.onBackgroundError) : openSqlite(options.sqlitePath ?? sqliteFile(options.dataDir));
}

function sqliteFile(dataDir: string): string {
  privateDirectory(dataDir);
  return join(dataDir, 'signet.db');
}

function openSqlite(path: string): Db {
  const onDisk = path !== ':memory:' && path !== '';
  // SQLite gives the -wal and -shm files the database file's permissions: 0600 all three.
  if (onDisk) createPrivateFile(path);
  const tightened = onDisk ? tightenFiles([path, `${path}-wal`, `${path}-shm`]) : [];
  const database = new SQLite(path);
  database.pragma('journal_mode = WAL');
  // FULL makes every commit durable in WAL mode (NORMAL may lose the last commits on power loss).
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return {
    kysely,
    dialect: 'sqlite',
    tightened,
    ping: async () => {
      database.prepare('select 1').get();
      return Promise.resolve();
    },
    close: () => kysely.destroy(),
  };
}

const INT8_OID = 20;

function openPostgres(connectionString: string, onBackgroundError?: (error: Error) => void): Db {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    // A store that is down must answer 503 quickly, not hang the request.
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
    // BIGINT columns hold epoch milliseconds, well inside Number's exact range.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : (pg.types.getTypeParser(oid, format) as unknown)) as typeof pg.types.getTypeParser,
    },
  });
  // Without listeners, a client losing its connection (idle in the pool, or checked
  // out between queries) emits an unhandled 'error' and would crash the process.
  // The request using it still fails on its own and answers 503.
  pool.on('error', (error) => onBackgroundError?.(error));
  pool.on('connect', (client) => client.on('error', (error) => onBackgroundError?.(error)));
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    kysely,
    dialect: 'postgres',
    tightened: [],
    ping: async () => {
      const client = await pool.connect();
      try {
        await client.query('select 1');
      } finally {
        client.release();
      }
    },
    close: () => kysely.destroy(),
  };
}

/** Migrations this code has that the database has not applied (`signet doctor`); applies nothing. */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const migrator = await migratorFor(db);
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
}

/** The database server's clock, ms (PostgreSQL; SQLite runs on this machine's). */
export async function databaseNow(db: Db): Promise<number> {
  if (db.dialect === 'sqlite') return Date.now();
  const { rows } = await sql<{ ms: string }>`select (extract(epoch from clock_timestamp()) * 1000)::bigint as ms`.execute(db.kysely);
  return Number(rows[0]?.ms);
}

async function migratorFor(db: Db): Promise<Migrator> {
  const schema = db.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db.kysely)).rows[0]?.schema : undefined;
  // 006 shipped after 007 and 008: a database migrated before it gets it applied late, which is safe
  // because it only adds columns, indexes and a table nothing earlier reads.
  return new Migrator({
    db: db.kysely,
    provider: migrationProvider,
    allowUnorderedMigrations: true,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
}

export async function migrate(db: Db): Promise<string[]> {
  // On PostgreSQL, keep Kysely's bookkeeping in the schema Signet works in: without it the
  // migrator can see another schema's tables in the same database and skip creating its own.
  const migrator = await migratorFor(db);
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error('migration failed', { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** The constraint a unique violation hit, or undefined for any other error. */
export function uniqueViolation(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  if (code === '23505') return typeof constraint === 'string' ? constraint : 'unknown';
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    // "UNIQUE constraint failed: users.email_key"
    return /failed: (\S+)/.exec(error.message)?.[1]?.replace('.', '_') ?? 'unknown';
  }
  return undefined;
}

/**
 * A consistent copy of the SQLite database at `destination`, taken with
 * SQLite's online backup API while servers keep writing (not a file copy,
 * which can catch a half-written page or miss the WAL).
 */
export async function backupSqlite(dataDir: string, destination: string): Promise<{ pages: number }> {
  const source = new SQLite(sqliteFile(dataDir), { readonly: true, fileMustExist: true });
  try {
    createPrivateFile(destination);
    const { totalPages } = await source.backup(destination);
    return { pages: totalPages };
  } finally {
    source.close();
  }
}

/**
 * Checks a backup (SQLite's integrity check) and writes it, with the backup
 * API, as the data directory's database. Refuses when one exists there.
 */
export async function restoreSqlite(backup: string, dataDir: string): Promise<string> {
  const source = new SQLite(backup, { readonly: true, fileMustExist: true });
  try {
    const result: unknown = source.pragma('integrity_check', { simple: true });
    if (result !== 'ok') throw new Error(`the backup fails SQLite's integrity check: ${String(result)}`);
    const path = sqliteFile(dataDir);
    if (existsSync(path) && statSync(path).size > 0) throw new Error(`${path} exists: restore only into an empty data directory`);
    createPrivateFile(path);
    await source.backup(path);
    return path;
  } finally {
    source.close();
  }
}
