import { statSync } from 'node:fs';
import { join } from 'node:path';
import { hash as argon2 } from '@node-rs/argon2';
import { Redis } from 'ioredis';
import nodemailer from 'nodemailer';
import type { SignetConfig } from '../../config.js';
import { databaseNow, openDb, pendingMigrations } from '../../store/db.js';
import type { Db } from '../../store/db.js';
import { listKeys } from '../../store/keys.js';
import { KEY_FILE } from '../secrets.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about it, when something is wrong. */
  fix?: string;
}

const TIMEOUT_MS = 5000;

/**
 * `signet doctor`: checks what a running Signet depends on and says what to
 * fix. Read-only: it never migrates, creates keys or sends mail.
 */
export async function diagnose(config: Readonly<SignetConfig>): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (check: Check) => checks.push(check);
  checks.push(...configChecks(config));

  const db = openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await withTimeout(db.ping(), 'the database did not answer');
    add({ name: 'storage', status: 'ok', detail: `${db.dialect} reachable` });
    await storageChecks(db, config, add);
  } catch (error) {
    add({
      name: 'storage',
      status: 'fail',
      detail: `${db.dialect} unreachable: ${message(error)}`,
      fix:
        db.dialect === 'postgres'
          ? 'check DATABASE_URL (host, port, user, database) and that PostgreSQL is running'
          : `check that ${config.dataDir} exists and is writable`,
    });
  } finally {
    await db.close().catch(() => undefined);
  }

  add(await smtpCheck(config));
  add(await redisCheck(config));
  add(await hashCheck(config));
  return checks;
}

function configChecks(config: Readonly<SignetConfig>): Check[] {
  const checks: Check[] = [{ name: 'config', status: 'ok', detail: `public URL ${config.publicUrl}, audience ${config.audience}` }];
  if (config.dev) checks.push({ name: 'config', status: 'warn', detail: 'SIGNET_DEV is on', fix: 'unset SIGNET_DEV in production' });
  if (!config.rateLimits) checks.push({ name: 'config', status: 'warn', detail: 'RATE_LIMITS=off', fix: 'turn rate limits on outside test rigs' });
  if (!config.publicUrl.startsWith('https://')) {
    checks.push({
      name: 'config',
      status: 'warn',
      detail: 'PUBLIC_URL is not https',
      fix: 'serve Signet over HTTPS (TLS_CERT/TLS_KEY or a proxy) and set PUBLIC_URL to it',
    });
  }
  if (!config.masterSecret) {
    const path = join(config.dataDir, KEY_FILE);
    const mode = fileMode(path);
    checks.push(
      mode === undefined
        ? {
            name: 'secrets',
            status: 'warn',
            detail: `no SIGNET_SECRET and no ${path} yet`,
            fix: 'the first `signet serve` creates the key file; back it up apart from the database',
          }
        : mode & 0o077
          ? { name: 'secrets', status: 'fail', detail: `${path} is readable by others (mode ${mode.toString(8)})`, fix: `chmod 600 ${path}` }
          : { name: 'secrets', status: 'ok', detail: `${path} is private` },
    );
  } else checks.push({ name: 'secrets', status: 'ok', detail: 'SIGNET_SECRET is set' });
  return checks;
}

async function storageChecks(db: Db, config: Readonly<SignetConfig>, add: (c: Check) => void): Promise<void> {
  const pending = await pendingMigrations(db);
  add(
    pending.length === 0
      ? { name: 'migrations', status: 'ok', detail: 'the database is at the latest migration' }
      : {
          name: 'migrations',
          status: 'fail',
          detail: `${pending.length} migration(s) not applied: ${pending.join(', ')}`,
          fix: 'run `signet migrate` (or start the server, which migrates)',
        },
  );
  if (db.dialect === 'sqlite') {
    const path = join(config.dataDir, 'signet.db');
    const mode = fileMode(path);
    if (mode !== undefined && mode & 0o077)
      add({ name: 'storage', status: 'fail', detail: `${path} is readable by others (mode ${mode.toString(8)})`, fix: `chmod 600 ${path}*` });
    else add({ name: 'storage', status: 'ok', detail: `${path} is private` });
  }
  const skew = (await databaseNow(db)) - Date.now();
  add(
    Math.abs(skew) > 30_000
      ? {
          name: 'clock',
          status: 'fail',
          detail: `this machine's clock is ${Math.round(-skew / 1000)} s off the database's`,
          fix: 'run NTP (chrony, systemd-timesyncd) on every host',
        }
      : { name: 'clock', status: 'ok', detail: db.dialect === 'postgres' ? `within ${Math.abs(skew)} ms of the database's` : `${new Date().toISOString()}` },
  );
  if (pending.length > 0) return;
  if (config.jwtSecret !== undefined) {
    add({ name: 'keys', status: 'ok', detail: 'HS256 with JWT_SECRET (no key rotation, no JWKS)' });
    return;
  }
  const keys = await listKeys(db);
  const now = Date.now();
  const active = keys.filter((k) => k.activates_at <= now).sort((a, b) => b.activates_at - a.activates_at)[0];
  const next = keys.find((k) => k.activates_at > now);
  if (!active) {
    add({ name: 'keys', status: 'fail', detail: 'no signing key', fix: 'start the server once, or run `signet keys rotate`' });
    return;
  }
  const ageDays = (now - active.activates_at) / 86_400_000;
  const interval = config.keyRotationInterval;
  const due = interval > 0 && now - active.activates_at > interval * 1000 + 86_400_000;
  add({
    name: 'keys',
    status: due ? 'warn' : 'ok',
    detail: `active ${active.kid} (${active.alg}) for ${ageDays.toFixed(1)} days; ${next ? `next ${next.kid} signs from ${new Date(next.activates_at).toISOString()}` : 'no next key published'}`,
    ...(due ? { fix: 'rotation is overdue: is a server running? `signet keys rotate` publishes the next key' } : {}),
  });
}

async function smtpCheck(config: Readonly<SignetConfig>): Promise<Check> {
  if (!config.smtpUrl)
    return {
      name: 'mail',
      status: 'warn',
      detail: 'no SMTP_URL: mail is written to the outbox directory only',
      fix: 'set SMTP_URL to deliver verification and reset mail',
    };
  const transport = nodemailer.createTransport(config.smtpUrl);
  try {
    await withTimeout(transport.verify(), 'the SMTP server did not answer');
    return { name: 'mail', status: 'ok', detail: `SMTP ${safeHost(config.smtpUrl)} connects and accepts the credentials` };
  } catch (error) {
    return {
      name: 'mail',
      status: 'fail',
      detail: `SMTP ${safeHost(config.smtpUrl)}: ${message(error)}`,
      fix: 'check SMTP_URL (host, port, user, password, smtps:// for TLS)',
    };
  } finally {
    transport.close();
  }
}

async function redisCheck(config: Readonly<SignetConfig>): Promise<Check> {
  if (!config.redisUrl) return { name: 'redis', status: 'ok', detail: 'no REDIS_URL: rate limits are kept per instance (fine for one instance)' };
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await withTimeout(redis.connect(), 'Redis did not answer');
    const started = performance.now();
    await redis.ping();
    const ms = performance.now() - started;
    return {
      name: 'redis',
      status: ms > 20 ? 'warn' : 'ok',
      detail: `${safeHost(config.redisUrl)} answers in ${ms.toFixed(1)} ms`,
      ...(ms > 20 ? { fix: 'every sign-in waits on Redis: put it near Signet' } : {}),
    };
  } catch (error) {
    return {
      name: 'redis',
      status: 'fail',
      detail: `${safeHost(config.redisUrl)}: ${message(error)}`,
      fix: 'check REDIS_URL and that Redis is running (limits fall back to memory meanwhile)',
    };
  } finally {
    redis.disconnect();
  }
}

/** One Argon2id hash with the configured parameters: what a sign-in costs this machine. */
async function hashCheck(config: Readonly<SignetConfig>): Promise<Check> {
  const { memoryCost, timeCost, parallelism } = config.argon2;
  const started = performance.now();
  await argon2('doctor', { memoryCost, timeCost, parallelism, algorithm: 2 });
  const ms = performance.now() - started;
  const perSecond = (1000 / ms) * config.hashConcurrency;
  const detail = `Argon2id m=${memoryCost} t=${timeCost} p=${parallelism} takes ${ms.toFixed(0)} ms: about ${perSecond.toFixed(0)} sign-ins/s with HASH_CONCURRENCY=${config.hashConcurrency}`;
  if (ms > 1000) return { name: 'hashing', status: 'warn', detail, fix: 'sign-ins will queue: lower ARGON2_MEMORY_KIB or ARGON2_TIME_COST, or add CPU' };
  if (memoryCost < 19_456) return { name: 'hashing', status: 'warn', detail, fix: 'below OWASP’s minimum (19 MiB, t=2): raise ARGON2_MEMORY_KIB' };
  return { name: 'hashing', status: 'ok', detail };
}

function fileMode(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
}

/** scheme://host:port of a URL, never its credentials. */
function safeHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(unparseable URL)';
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
