import { pino } from 'pino';
import type { Logger } from 'pino';
import { ConfigError } from './config.js';
import type { SignetConfig } from './config.js';
import type { Clock } from './core/clock.js';
import { systemClock } from './core/clock.js';
import { HashPool } from './core/hash-pool.js';
import { Keyring } from './core/keys.js';
import { PasswordHasher } from './core/passwords.js';
import { SessionEnds } from './core/session-ends.js';
import { SessionCache } from './core/session-cache.js';
import { CacheBus } from './core/cache-bus.js';
import { createOidc } from './core/oidc/index.js';
import type { Oidc } from './core/oidc/index.js';
import { SessionService } from './core/sessions.js';
import { TOKEN_SIZE_BUDGET, TokenService } from './core/tokens.js';
import { AccountService } from './core/users.js';
import { AdminKeys } from './core/admin/keys.js';
import { UserAdmin } from './core/admin/users.js';
import { UserImporter } from './core/admin/import.js';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { AuditLog } from './core/audit.js';
import { DeviceCookies } from './core/devices.js';
import { AccountLifecycle } from './core/lifecycle.js';
import { MfaService } from './core/mfa.js';
import { PasskeyService } from './core/passkeys/service.js';
import { FederationService } from './core/federation/service.js';
import { EmailSignIn } from './core/email-signin/service.js';
import { Sealer, loadAtRestSecret, serverKey } from './core/secrets.js';
import type { AtRestSecret } from './core/secrets.js';
import { Retention } from './core/retention.js';
import { SignInGuard } from './core/signin-guard.js';
import { Limits } from './core/limits.js';
import { loadTemplates } from './core/mail-templates.js';
import { Mailer } from './core/mailer.js';
import { Metrics } from './metrics.js';
import { OutageLog } from './outages.js';
import { migrate, openDb } from './store/db.js';
import type { Db } from './store/db.js';

/** Everything the routes call: the composition root, free of HTTP. */
export interface Services {
  config: Readonly<SignetConfig>;
  clock: Clock;
  logger: Logger;
  db: Db;
  pool: HashPool;
  hasher: PasswordHasher;
  keyring: Keyring;
  tokens: TokenService;
  sessions: SessionService;
  accounts: AccountService;
  lifecycle: AccountLifecycle;
  mfa: MfaService;
  passkeys: PasskeyService;
  /** "Sign in with …" other identity providers (FEDERATION_PROVIDERS). */
  federation: FederationService;
  /** Passwordless sign-in by emailed code or link (EMAIL_SIGNIN). */
  emailSignIn: EmailSignIn;
  devices: DeviceCookies;
  /** Keys Signet signs its own cookies with (see core/secrets.ts). */
  serverKeys: { csrf: Buffer; device: Buffer };
  mailer: Mailer;
  limits: Limits;
  metrics: Metrics;
  audit: AuditLog;
  retention: Retention;
  /** The OpenID Provider (its routes exist only with asymmetric keys). */
  oidc: Oidc;
  /** One log line per answered request (see requestLogger). */
  requestLog(requestId: string, method: string, route: string, status: number, ms: number): void;
  /** Database, Redis and mail-queue outages, logged once, summarised, and once more when they end. */
  outages: OutageLog;
  /** Set by the server when it starts draining for shutdown: `/readyz` then answers 503 so load balancers stop sending. */
  readiness: { draining: boolean };
  /** What operators do: the CLI and the admin API call these (core/admin). */
  admin: { users: UserAdmin; keys: AdminKeys; importer: UserImporter };
  close(): Promise<void>;
}

export interface ServiceOptions {
  clock?: Clock;
  logger?: Logger;
  /** SQLite file path, e.g. `:memory:` (ignored with DATABASE_URL). */
  sqlitePath?: string;
}

/**
 * The process's logger. Lines go to stdout through pino's asynchronous
 * destination: a request never waits for a write (pino flushes what is
 * buffered when the process exits).
 */
export function createLogger(config: Pick<SignetConfig, 'logLevel'>): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'signet' },
      // Defence in depth: these keys never reach a log line even if passed by mistake.
      redact: {
        paths: [
          'password',
          'newPassword',
          'currentPassword',
          'token',
          'refreshToken',
          'accessToken',
          'authorization',
          '*.password',
          '*.token',
          '*.refreshToken',
          '*.authorization',
          'email',
          '*.email',
        ],
        censor: '[redacted]',
      },
    },
    pino.destination({ sync: false }),
  );
}

/**
 * One line per request: its id, method, route pattern, status and time. Its
 * fields are Signet's own, never the client's, so the line skips the redaction
 * pass that every other line takes; at a level above info it costs one check.
 */
function requestLogger(logger: Logger): Services['requestLog'] {
  const lines = logger.child({}, { redact: [] });
  return (reqId, method, route, status, ms) => {
    if (lines.isLevelEnabled('info')) lines.info({ reqId, method, route, status, ms: Math.round(ms * 100) / 100 }, 'request');
  };
}

export async function createServices(config: Readonly<SignetConfig>, options: ServiceOptions = {}): Promise<Services> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config);
  const pool = new HashPool(config.hashConcurrency);
  // On PostgreSQL other instances and `signet` commands can only tell this one over Redis: without it, no cache.
  // (SQLite has one server process; a command writing to the same file shows in its data_version.)
  const cacheTtlMs = config.databaseUrl && !config.redisUrl ? 0 : config.sessionCacheTtl * 1000;
  const sessionCache = new SessionCache({ ttlMs: cacheTtlMs, max: SESSION_CACHE_MAX });
  const metrics = new Metrics({ pool, sessionCache });

  // The queue lives in the database: both are back when it answers.
  const ping = async () => db.ping();
  const outages = new OutageLog({
    logger,
    probes: { database: ping, 'mail queue': ping },
    consequences: { redis: 'rate limits fall back to per-instance memory', database: 'requests that need it answer 503' },
  });
  const db = openDb({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    sqliteSynchronous: config.sqliteSynchronous,
    timeoutMs: config.databaseTimeout * 1000,
    poolMax: config.databasePoolMax,
    ...(options.sqlitePath !== undefined ? { sqlitePath: options.sqlitePath } : {}),
    onBackgroundError: (error) => outages.failed('database', error),
  });
  for (const path of db.tightened) logger.warn({ path }, 'made a data file private (0600): it was readable by other users');
  let atRest: AtRestSecret;
  try {
    atRest = loadAtRestSecret(config);
  } catch (error) {
    await pool.close();
    await db.close();
    throw error;
  }
  for (const path of atRest.tightened) logger.warn({ path }, 'made the key file private (0600): it was readable by other users');
  const sealer = new Sealer(atRest);
  const audit = new AuditLog({
    db,
    clock,
    keys: sealer.derived('audit chain'),
    onError: (error, lost) => logger.error({ err: error instanceof Error ? error.message : String(error), lost }, 'audit log write failed'),
  });
  const floods = new FloodLog(logger);
  let cacheBus: CacheBus | undefined;
  const onEvent = (event: string, fields: Record<string, unknown>) => {
    metrics.event(event);
    // A change to an account drops its cached sessions here and on every other instance.
    if (ACCOUNT_CHANGE.test(event) && typeof fields.userId === 'string') cacheBus?.forgetUser(fields.userId);
    // The queue is polled every second: during an outage, one line and a count, not one a second.
    if (event === 'mail.queue_error') return outages.failed('mail queue', new Error(String(fields.error)));
    // Load events carry no account: counted, logged in summary, never one row per request (a flood
    // would otherwise spend on bookkeeping the CPU that shedding it was meant to save).
    if (FLOOD_EVENTS.has(event)) return floods.count(event);
    if (event.startsWith('security.')) logger.warn({ event, ...fields }, event);
    else logger.info({ event, ...fields }, event);
    audit.record(event, fields);
  };

  let redis: Redis | undefined;
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    const keyring = new Keyring({ db, config, clock, sealer, onEvent });
    await keyring.init();
    const hasher = new PasswordHasher({ pool, params: config.argon2, onRefusedHash: (reason) => logger.warn({ reason }, 'stored password hash refused') });
    const tokens = new TokenService({ keyring, config, clock });
    const worstCase = await tokens.worstCaseSize();
    if (worstCase > TOKEN_SIZE_BUDGET) {
      throw new ConfigError(
        `access tokens could reach ${worstCase} bytes, over the ${TOKEN_SIZE_BUDGET}-byte budget for cookies and headers: shorten PUBLIC_URL or JWT_AUDIENCE`,
      );
    }
    const ends = new SessionEnds();
    const sessions = new SessionService({ db, tokens, clock, config, onEvent, ends, cache: sessionCache });
    const oidc = createOidc({ db, clock, keyring, tokens, sessions, ends, config, onEvent });
    const retention = new Retention({ db, clock, config, onEvent });
    const mailer = new Mailer({
      db,
      clock,
      templates: loadTemplates(config.mailTemplatesDir),
      from: config.mailFrom,
      smtpUrl: config.smtpUrl,
      outboxDir: join(config.dataDir, 'outbox'),
      appName: config.appName,
      sealer,
      onEvent,
    });
    redis = config.redisUrl ? connectRedis(config.redisUrl, outages) : undefined;
    const bus = (cacheBus = new CacheBus({
      cache: sessionCache,
      redis,
      channel: `${config.redisPrefix}:session-cache`,
      onError: (error) => logger.debug({ err: error.message }, 'session cache invalidation not published'),
    }));
    // Ends on this instance reach the others' caches too.
    ends.subscribe((ended) => bus.publishEnded(ended.map((s) => s.id)));
    const limits = new Limits({ enabled: config.rateLimits, redis, prefix: config.redisPrefix, onEvent });
    const guard = new SignInGuard({ limits, hasher, config, onEvent });
    const lifecycle = new AccountLifecycle({ db, hasher, mailer, limits, guard, clock, config, onEvent, ends });
    const serverKeys = {
      csrf: serverKey(atRest.secret, 'csrf'),
      device: serverKey(atRest.secret, 'device-cookie'),
    };
    const devices = new DeviceCookies({ key: serverKeys.device, clock });
    const passkeys = new PasskeyService({ db, hasher, guard, clock, config, onEvent });
    const mfa = new MfaService({ db, hasher, limits, guard, sealer, passkeys, clock, config, onEvent });
    const federation = new FederationService({ db, sealer, clock, config, sessions, devices, mfa, lifecycle, onEvent });
    const emailSignIn = new EmailSignIn({
      db,
      mailer,
      limits,
      sessions,
      devices,
      mfa,
      clock,
      config,
      codeKey: serverKey(atRest.secret, 'email sign-in code'),
      onEvent,
    });
    const accounts = new AccountService({ db, hasher, sessions, lifecycle, guard, devices, mfa, passkeys, clock, config, onEvent });
    return {
      config,
      clock,
      logger,
      db,
      pool,
      hasher,
      keyring,
      tokens,
      sessions,
      accounts,
      lifecycle,
      mfa,
      passkeys,
      federation,
      emailSignIn,
      devices,
      serverKeys,
      mailer,
      limits,
      metrics,
      audit,
      retention,
      oidc,
      requestLog: requestLogger(logger),
      outages,
      readiness: { draining: false },
      admin: {
        users: new UserAdmin({ db, clock, onEvent, hasher, sessions, guard, config }),
        keys: new AdminKeys({ db, clock, onEvent }),
        importer: new UserImporter({ db, clock, onEvent }),
      },
      async close() {
        await retention.close();
        await oidc.logout.settle();
        await accounts.settle();
        await lifecycle.settle();
        await emailSignIn.settle();
        await mailer.close();
        // After everything that reports events, before the store closes.
        await audit.close();
        await bus.close();
        // QUIT lets Redis finish what was sent; while it is unreachable, just drop the socket.
        await redis?.quit().catch(() => redis?.disconnect());
        await pool.close();
        outages.close();
        await db.close();
      },
    };
  } catch (error) {
    await audit.close();
    redis?.disconnect();
    await pool.close();
    outages.close();
    await db.close();
    throw error;
  }
}

/**
 * Redis for shared rate-limit counters. Commands fail fast while it is down
 * (the limiter then falls back to memory); the outage is logged once when it
 * starts, summarised while it lasts, and once when Redis is back.
 */
/** ioredis is loaded only with REDIS_URL (it costs a start ~0.2 s and ~20 MB). */
const require = createRequire(import.meta.url);

function connectRedis(url: string, outages: OutageLog): Redis {
  const { Redis: Client } = require('ioredis') as typeof import('ioredis');
  const redis = new Client(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 });
  redis.on('error', (error: Error) => outages.failed('redis', error));
  redis.on('ready', () => outages.recovered('redis'));
  return redis;
}

/** Entries of the session cache: about 2 KB each, so at most ~20 MB. */
const SESSION_CACHE_MAX = 10_000;

/** Events that change what a cached session says about its user (profile, e-mail, MFA, disabled…). */
const ACCOUNT_CHANGE = /^(account|admin|user)\./;

/** Events that arrive once per refused request during a flood. */
const FLOOD_EVENTS = new Set(['security.signin_shed', 'security.signup_shed', 'security.reauth_shed', 'security.client_rate_limited']);

/** Logs flood events as one summary line per event kind at most every 10 seconds. */
class FloodLog {
  readonly #counts = new Map<string, number>();
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  count(event: string): void {
    this.#counts.set(event, (this.#counts.get(event) ?? 0) + 1);
    if (this.#timer) return;
    this.#flush();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, 10_000);
    this.#timer.unref();
  }

  #flush(): void {
    for (const [event, count] of this.#counts) this.#logger.warn({ event, count, windowSeconds: 10 }, event);
    this.#counts.clear();
  }
}
