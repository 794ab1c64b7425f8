import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import type { SqliteDatabase } from 'kysely';
import { createRequire } from 'node:module';
import type pg from 'pg';
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
  /** SQLite's `synchronous` in WAL mode: `full` syncs every commit to disk, `normal` at checkpoints. */
  sqliteSynchronous?: 'full' | 'normal';
  /**
   * Longest a query (or waiting for a connection) may take, ms (DATABASE_TIMEOUT);
   * past it the query fails and the request answers 503. Default 5000.
   */
  timeoutMs?: number;
  /** PostgreSQL pool size (DATABASE_POOL_MAX). Default 10. */
  poolMax?: number;
}

export function openDb(options: OpenDbOptions): Db {
  const timeoutMs = options.timeoutMs ?? 5000;
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, { timeoutMs, poolMax: options.poolMax ?? 10 }, options.onBackgroundError)
    : openSqlite(options.sqlitePath ?? sqliteFile(options.dataDir), { timeoutMs, synchronous: options.sqliteSynchronous ?? 'full' });
}

function sqliteFile(dataDir: string): string {
  privateDirectory(dataDir);
  return join(dataDir, 'signet.db');
}

function openSqlite(path: string, options: { timeoutMs: number; synchronous: 'full' | 'normal' }): Db {
  const { timeoutMs, synchronous } = options;
  const onDisk = path !== ':memory:' && path !== '';
  // SQLite gives the -wal and -shm files the database file's permissions: 0600 all three.
  if (onDisk) createPrivateFile(path);
  const tightened = onDisk ? tightenFiles([path, `${path}-wal`, `${path}-shm`]) : [];
  const database = new SQLite(path);
  database.pragma('journal_mode = WAL');
  // NORMAL: a commit is in the WAL (the OS has it: it survives the process being killed) without waiting
  // for the disk; a power loss may take the last commits. FULL waits for the disk on every commit, and
  // better-sqlite3 waits on the event loop (see SQLITE_SYNCHRONOUS in docs/configuration.md).
  database.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  database.pragma('foreign_keys = ON');
  // Another process holding the write lock (a CLI command, a backup) makes a writer wait this long, then SQLITE_BUSY (503).
  database.pragma(`busy_timeout = ${Math.floor(timeoutMs)}`);
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
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

/** pg's message when `query_timeout` passes: the server may never answer on that connection again. */
const QUERY_TIMEOUT = 'Query read timeout';

/** Loaded only when PostgreSQL is used (it costs an embedded start ~80 ms and ~15 MB). */
const require = createRequire(import.meta.url);

function openPostgres(connectionString: string, limits: { timeoutMs: number; poolMax: number }, onBackgroundError?: (error: Error) => void): Db {
  const { timeoutMs, poolMax } = limits;
  const { Pool, types } = require('pg') as typeof pg;
  const pool = new Pool({
    connectionString,
    max: poolMax,
    // A store that is down, or reachable but not answering, must answer 503 within
    // DATABASE_TIMEOUT, not hang the request: waiting for a pooled connection or a new
    // one, and each query (the server cancels it; the client stops waiting for a
    // server that does not even do that), are bounded alike.
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + 250,
    // A transaction left open by a stalled client must not hold its row locks forever.
    idle_in_transaction_session_timeout: timeoutMs * 2,
    // Finds a dead peer on an idle pooled connection instead of failing the next request on it.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // BIGINT columns hold epoch milliseconds, well inside Number's exact range.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : (types.getTypeParser(oid, format) as unknown)) as typeof types.getTypeParser,
    },
  });
  // Without listeners, a client losing its connection (idle in the pool, or checked
  // out between queries) emits an unhandled 'error' and would crash the process.
  // The request using it still fails on its own and answers 503.
  pool.on('error', (error) => onBackgroundError?.(error));
  pool.on('connect', (client) => client.on('error', (error) => onBackgroundError?.(error)));
  const guarded = discardingTimedOut(pool);
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: guarded }) });
  return {
    kysely,
    dialect: 'postgres',
    tightened: [],
    ping: async () => {
      const client = await guarded.connect();
      try {
        await client.query('select 1');
      } finally {
        client.release();
      }
    },
    close: () => kysely.destroy(),
  };
}

/**
 * The pool as Kysely sees it, except that a connection whose query timed out is
 * destroyed on release rather than reused: the server may still answer the
 * abandoned query on it (or never answer anything again).
 */
function discardingTimedOut(pool: pg.Pool): pg.Pool {
  const connect = async () => {
    const client = await pool.connect();
    let timedOut = false;
    const clientQuery = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    const query = async (...args: unknown[]) =>
      clientQuery(...args).catch((error: unknown) => {
        if (error instanceof Error && error.message === QUERY_TIMEOUT) timedOut = true;
        throw error;
      });
    // Kysely passes `true` for a connection it discards itself.
    const release = (destroy?: boolean | Error) => client.release(timedOut ? new Error(QUERY_TIMEOUT) : destroy);
    return { query, release } as unknown as pg.PoolClient;
  };
  // Kysely's PostgresDriver uses these two only.
  return { connect, end: () => pool.end() } as unknown as pg.Pool;
}

export async function migrate(db: Db): Promise<string[]> {
  // On PostgreSQL, keep Kysely's bookkeeping in the schema Signet works in: without it the
  // migrator can see another schema's tables in the same database and skip creating its own.
  const schema = db.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db.kysely)).rows[0]?.schema : undefined;
  const migrator = new Migrator({ db: db.kysely, provider: migrationProvider, ...(schema ? { migrationTableSchema: schema } : {}) });
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

/** Statements kept prepared (distinct SQL texts; IN lists of other lengths are other texts). */
const STATEMENT_CACHE = 256;

/**
 * Kysely prepares every query it runs; preparing costs more than running most
 * of Signet's. The database Kysely sees keeps each SQL text's statement (a
 * bounded map, oldest first out). Safe because better-sqlite3 runs a statement
 * to completion before the next one starts.
 */
function withStatementCache(database: SQLite.Database): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => database.close(),
    prepare(text: string) {
      let statement = statements.get(text);
      if (!statement) {
        statement = database.prepare(text);
        if (statements.size >= STATEMENT_CACHE) statements.delete(statements.keys().next().value as string);
        statements.set(text, statement);
      }
      return statement;
    },
  };
}
