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

export async function migrate(db: Db): Promise<string[]> {
  // On PostgreSQL, keep Kysely's bookkeeping in the schema Signet works in: without it the
  // migrator can see another schema's tables in the same database and skip creating its own.
  const schema = db.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db.kysely)).rows[0]?.schema : undefined;
  // 006 shipped after 007 and 008: a database migrated before it gets it applied late, which is safe
  // because it only adds columns, indexes and a table nothing earlier reads.
  const migrator = new Migrator({
    db: db.kysely,
    provider: migrationProvider,
    allowUnorderedMigrations: true,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
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
