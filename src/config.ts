import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseProviders } from './federation-providers.js';
import type { ProviderConfig } from './federation-providers.js';

/**
 * Operator settings. Each one is read from the environment (or from the JSON
 * file named by `SIGNET_CONFIG`, environment winning), validated once at start
 * with a message that names the variable, then frozen.
 */
export type SigningAlgorithm = 'RS256' | 'ES256' | 'EdDSA' | 'HS256';

export interface SignetConfig {
  host: string;
  port: number;
  publicUrl: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** PostgreSQL connections each instance may hold at once. */
  databasePoolMax: number;
  /** Longest a database query may take, seconds (statement, query and connect timeouts). */
  databaseTimeout: number;
  /** Seconds in-flight requests get to finish after SIGTERM/SIGINT before their connections are cut. */
  shutdownGrace: number;
  jwtSecret: string | undefined;
  masterSecret: string | undefined;
  jwtAlgorithm: SigningAlgorithm;
  audience: string;
  accessTokenTtl: number;
  refreshIdleTtl: number;
  /** SQLite's `synchronous` (WAL mode): `normal` or `full` (every commit waits for the disk). */
  sqliteSynchronous: 'normal' | 'full';
  /** Seconds a cached live session may answer a read without the database (0: no cache). */
  sessionCacheTtl: number;
  sessionAbsoluteTtl: number;
  refreshReuseGrace: number;
  keyRotationOverlap: number;
  keyRotationInterval: number;
  passwordMinLength: number;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  hashConcurrency: number;
  hashQueueBudgetMs: number;
  bodyLimit: number;
  emailVerification: 'off' | 'optional' | 'required';
  verifyTokenTtl: number;
  resetTokenTtl: number;
  smtpUrl: string | undefined;
  mailFrom: string;
  mailTemplatesDir: string | undefined;
  appName: string;
  brandLogoUrl: string | undefined;
  brandColor: string;
  pagesPrefix: string;
  returnUrls: string[];
  /**
   * The WebAuthn relying-party ID passkeys are bound to (a host name), or
   * undefined when passkeys are off: PUBLIC_URL's host is an IP address and
   * WEBAUTHN_RP_ID is unset (browsers refuse passkeys for IP addresses).
   */
  webauthnRpId: string | undefined;
  /** Exact origins whose pages may run passkey ceremonies; each on the RP ID or a subdomain of it. */
  webauthnOrigins: string[];
  webauthnRpName: string;
  /** Identity providers users may sign in with (FEDERATION_PROVIDERS); empty: none. */
  federationProviders: ProviderConfig[];
  /** Passwordless sign-in by email: a code, a link, both in one mail, or off. */
  emailSignin: 'off' | 'code' | 'link' | 'both';
  /** Lifetime of an emailed sign-in code or link, seconds (at most 10 minutes). */
  emailSigninTtl: number;
  redisUrl: string | undefined;
  redisPrefix: string;
  rateLimits: boolean;
  trustProxy: string[];
  corsOrigins: string[];
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  logLevel: string;
  retentionDays: number;
  metricsToken: string | undefined;
  metricsPort: number | undefined;
  metricsHost: string;
  dev: boolean;
}

type Raw = Record<string, string | undefined>;

interface Option {
  env: string;
  /** Property of `SignetConfig`; `argon2.x` for the nested hashing parameters. */
  key: string;
  default: string | ((raw: Raw) => string | undefined);
  description: string;
  parse: (value: string, env: string) => unknown;
  /** A value given in code as the text the environment would hold (default: `String(value)`), so it meets the same parser. */
  format?: (value: unknown) => string;
}

export class ConfigError extends TypeError {
  override readonly name = 'ConfigError';
}

function integer(min: number, max: number) {
  return (value: string, env: string): number => {
    if (!/^\d+$/.test(value)) throw new ConfigError(`${env} must be a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new ConfigError(`${env} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function boolean(value: string, env: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off|)$/i.test(value)) return false;
  throw new ConfigError(`${env} must be 1/true or 0/false, got "${value}"`);
}

function text(value: string): string {
  return value;
}

function url(value: string, env: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${env} must be an absolute URL, got "${value}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${env} must be an http(s) URL, got "${value}"`);
  }
  // The issuer is compared as an exact string by every verifier: one canonical form.
  return parsed.href.replace(/\/$/, '');
}

function secret(minBytes: number) {
  return (value: string, env: string): string => {
    if (Buffer.byteLength(value, 'utf8') < minBytes) {
      throw new ConfigError(`${env} must be at least ${minBytes} bytes long (use: openssl rand -base64 48)`);
    }
    return value;
  };
}

/** A comma-separated list of bare origins (scheme://host[:port]). */
function origins(value: string, env: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((origin) => {
      let parsed: URL;
      try {
        parsed = new URL(origin);
      } catch {
        throw new ConfigError(`${env}: "${origin}" is not an origin like https://app.example.com`);
      }
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${env}: "${origin}" must be an http(s) origin`);
      if (parsed.origin !== origin) throw new ConfigError(`${env}: "${origin}" must be a bare origin (scheme://host[:port]), e.g. ${parsed.origin}`);
      return origin;
    });
}

/** A DNS host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

const DAY = 24 * 60 * 60;

export const OPTIONS: readonly Option[] = [
  { env: 'HOST', key: 'host', default: '127.0.0.1', description: 'Interface to listen on', parse: text },
  { env: 'PORT', key: 'port', default: '3000', description: 'TCP port to listen on (0 picks a free one)', parse: integer(0, 65535) },
  {
    env: 'PUBLIC_URL',
    key: 'publicUrl',
    default: (raw) => `${raw.TLS_CERT ? 'https' : 'http'}://${raw.HOST || '127.0.0.1'}:${raw.PORT || '3000'}`,
    description: 'Public base URL: the token issuer (iss) and the base of links',
    parse: url,
  },
  { env: 'SIGNET_DATA_DIR', key: 'dataDir', default: './data', description: 'Directory of the embedded SQLite database', parse: (v: string) => resolve(v) },
  {
    env: 'DATABASE_URL',
    key: 'databaseUrl',
    default: () => undefined,
    description: 'postgres://… switches storage to PostgreSQL; unset uses SQLite in the data dir',
    parse: (value: string, env: string) => {
      if (!/^postgres(ql)?:\/\//.test(value)) throw new ConfigError(`${env} must start with postgres:// or postgresql://`);
      return value;
    },
  },
  {
    env: 'SQLITE_SYNCHRONOUS',
    key: 'sqliteSynchronous',
    default: 'normal',
    description:
      'normal: a commit survives the process being killed, a power loss may take the last ones; full: every commit waits for the disk (slower, blocks the event loop)',
    parse: (v: string, env: string) => {
      if (v !== 'normal' && v !== 'full') throw new ConfigError(`${env} must be normal or full, got "${v}"`);
      return v;
    },
  },
  {
    env: 'DATABASE_POOL_MAX',
    key: 'databasePoolMax',
    default: '10',
    description: 'PostgreSQL connections each instance holds at most; instances times this must stay under PostgreSQL max_connections (or use a pooler)',
    parse: integer(1, 1000),
  },
  {
    env: 'DATABASE_TIMEOUT',
    key: 'databaseTimeout',
    default: '5',
    description:
      'Longest a request waits for the database, seconds: PostgreSQL statement, query and connect timeouts, SQLite busy timeout; past it the request answers 503',
    parse: integer(1, 300),
  },
  {
    env: 'SHUTDOWN_GRACE',
    key: 'shutdownGrace',
    default: '10',
    description: 'Seconds in-flight requests get to finish after SIGTERM or SIGINT; connections still open then are cut (and counted in the log)',
    parse: integer(0, 600),
  },
  {
    env: 'JWT_SECRET',
    key: 'jwtSecret',
    default: () => undefined,
    description: 'Switches access tokens to HS256 with this secret (at least 32 bytes); the JWKS is then empty',
    parse: secret(32),
  },
  {
    env: 'SIGNET_SECRET',
    key: 'masterSecret',
    default: () => undefined,
    description: 'Master secret (at least 32 bytes) that encrypts private signing keys at rest',
    parse: secret(32),
  },
  {
    env: 'JWT_ALG',
    key: 'jwtAlgorithm',
    default: 'RS256',
    description: 'Access-token algorithm when JWT_SECRET is unset: RS256, ES256 or EdDSA',
    parse: (value: string, env: string) => {
      if (value !== 'RS256' && value !== 'ES256' && value !== 'EdDSA' && value !== 'HS256')
        throw new ConfigError(`${env} must be RS256, ES256, EdDSA (or HS256 with JWT_SECRET), got "${value}"`);
      return value;
    },
  },
  { env: 'JWT_AUDIENCE', key: 'audience', default: () => undefined, description: 'Access-token audience (aud); defaults to PUBLIC_URL', parse: text },
  { env: 'ACCESS_TOKEN_TTL', key: 'accessTokenTtl', default: '900', description: 'Access-token lifetime, seconds', parse: integer(30, DAY) },
  {
    env: 'REFRESH_TOKEN_TTL',
    key: 'refreshIdleTtl',
    default: String(30 * DAY),
    description: 'Idle session lifetime: a refresh token expires this many seconds after it is issued',
    parse: integer(60, 400 * DAY),
  },
  {
    env: 'SESSION_CACHE_TTL',
    key: 'sessionCacheTtl',
    default: '10',
    description:
      'Seconds a checked session may answer token reads (GET routes) from memory; every session end and account change drops it at once, on every instance sharing REDIS_URL; 0 turns the cache off',
    parse: integer(0, 300),
  },
  {
    env: 'SESSION_TTL',
    key: 'sessionAbsoluteTtl',
    default: String(90 * DAY),
    description: 'Absolute session lifetime, seconds; rotation never extends it',
    parse: integer(60, 400 * DAY),
  },
  {
    env: 'REFRESH_REUSE_GRACE',
    key: 'refreshReuseGrace',
    default: '10',
    description: 'Seconds during which a just-rotated refresh token returns the same successor',
    parse: integer(0, 300),
  },
  {
    env: 'KEY_ROTATION_OVERLAP',
    key: 'keyRotationOverlap',
    default: '3600',
    description: 'Seconds a new signing key is published in the JWKS before it signs',
    parse: integer(0, 30 * DAY),
  },
  {
    env: 'KEY_ROTATION_INTERVAL',
    key: 'keyRotationInterval',
    default: String(90 * DAY),
    description: 'Seconds between automatic signing-key rotations (0 turns scheduled rotation off)',
    parse: integer(0, 3650 * DAY),
  },
  {
    env: 'PASSWORD_MIN_LENGTH',
    key: 'passwordMinLength',
    default: '8',
    description: 'Minimum password length in code points (NIST SP 800-63B-4 asks 15 for single-factor)',
    parse: integer(1, 256),
  },
  // The caps equal the limits above which stored hashes are refused at sign-in (VERIFY_LIMITS).
  {
    env: 'ARGON2_MEMORY_KIB',
    key: 'argon2.memoryCost',
    default: '19456',
    description: 'Argon2id memory cost, KiB (OWASP: 19456; at most 262144)',
    parse: integer(8, 256 * 1024),
  },
  { env: 'ARGON2_TIME_COST', key: 'argon2.timeCost', default: '2', description: 'Argon2id passes (OWASP: 2; at most 20)', parse: integer(1, 20) },
  { env: 'ARGON2_PARALLELISM', key: 'argon2.parallelism', default: '1', description: 'Argon2id lanes (at most 16)', parse: integer(1, 16) },
  {
    env: 'HASH_CONCURRENCY',
    key: 'hashConcurrency',
    default: () => String(availableParallelism()),
    description: 'Password hashes computed at once (worker threads); defaults to the number of cores',
    parse: integer(1, 256),
  },
  {
    env: 'HASH_QUEUE_BUDGET_MS',
    key: 'hashQueueBudgetMs',
    default: '2000',
    description: 'Longest expected wait for a password hash before sign-ins from unknown devices are shed with 503',
    parse: integer(0, 60_000),
  },
  { env: 'BODY_LIMIT', key: 'bodyLimit', default: '16384', description: 'Largest accepted request body, bytes', parse: integer(256, 1024 * 1024) },
  {
    env: 'EMAIL_VERIFICATION',
    key: 'emailVerification',
    default: 'optional',
    description: 'off (no mail), optional (mail sent, sign-in allowed) or required (sign-in refused until verified)',
    parse: (v: string, env: string) => {
      if (v !== 'off' && v !== 'optional' && v !== 'required') throw new ConfigError(`${env} must be off, optional or required, got "${v}"`);
      return v;
    },
  },
  {
    env: 'VERIFY_TOKEN_TTL',
    key: 'verifyTokenTtl',
    default: String(DAY),
    description: 'Lifetime of an email-verification link, seconds',
    parse: integer(300, 30 * DAY),
  },
  { env: 'RESET_TOKEN_TTL', key: 'resetTokenTtl', default: '1800', description: 'Lifetime of a password-reset link, seconds', parse: integer(60, DAY) },
  {
    env: 'SMTP_URL',
    key: 'smtpUrl',
    default: () => undefined,
    description: 'smtp://user:pass@host:port or smtps://…; unset writes mail to <data dir>/outbox (development)',
    parse: (v: string, env: string) => {
      if (!/^smtps?:\/\//.test(v)) throw new ConfigError(`${env} must start with smtp:// or smtps://`);
      return v;
    },
  },
  {
    env: 'MAIL_FROM',
    key: 'mailFrom',
    default: (raw) => `Signet <no-reply@${hostOf(raw)}>`,
    description: 'From address of every mail',
    parse: (v: string, env: string) => {
      // eslint-disable-next-line no-control-regex
      if (/[\r\n\u0000]/.test(v)) throw new ConfigError(`${env} must be one line`);
      return v;
    },
  },
  {
    env: 'MAIL_TEMPLATES_DIR',
    key: 'mailTemplatesDir',
    default: () => undefined,
    description: 'Directory of <name>.subject.txt/.txt/.html files overriding the built-in mail templates',
    parse: (v: string) => resolve(v),
  },
  { env: 'APP_NAME', key: 'appName', default: 'Signet', description: 'Product name shown in mails and pages', parse: text },
  {
    env: 'BRAND_LOGO_URL',
    key: 'brandLogoUrl',
    default: () => undefined,
    description: 'Logo shown on the hosted pages: an https:// URL (or http:// in development)',
    parse: url,
  },
  {
    env: 'BRAND_COLOR',
    key: 'brandColor',
    default: '#1f4fd1',
    description: 'Accent colour of the hosted pages (#rrggbb); the text on it is black or white, whichever contrasts more',
    parse: (value: string, env: string) => {
      if (!/^#[0-9a-fA-F]{6}$/.test(value)) throw new ConfigError(`${env} must be a colour like #1f4fd1, got "${value}"`);
      return value.toLowerCase();
    },
  },
  {
    env: 'PAGES_PREFIX',
    key: 'pagesPrefix',
    default: '/',
    description: 'Path under which the hosted pages are served (e.g. /account/ → /account/sign-in)',
    parse: (value: string, env: string) => {
      if (!/^\/([A-Za-z0-9._~-]+\/)*$/.test(value))
        throw new ConfigError(`${env} must start and end with / and hold only path segments, e.g. / or /id/, got "${value}"`);
      if (value.startsWith('/auth/') || value.startsWith('/.well-known/')) throw new ConfigError(`${env} must not be under /auth/ or /.well-known/`);
      return value;
    },
  },
  {
    env: 'RETURN_URLS',
    key: 'returnUrls',
    default: '',
    description: 'Comma-separated app URLs the hosted pages may send users back to: an origin (any path on it) or an exact URL path',
    format: list,
    parse: (v: string, env: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((entry) => {
          let parsed: URL;
          try {
            parsed = new URL(entry);
          } catch {
            throw new ConfigError(`${env}: "${entry}" is not a URL like https://app.example.com or https://app.example.com/signed-in`);
          }
          if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${env}: "${entry}" must be an http(s) URL`);
          if (parsed.username || parsed.password || parsed.search || parsed.hash) {
            throw new ConfigError(`${env}: "${entry}" must be an origin or an origin and a path, without user, query or fragment`);
          }
          return parsed.pathname === '/' ? parsed.origin : `${parsed.origin}${parsed.pathname}`;
        }),
  },
  {
    env: 'WEBAUTHN_RP_ID',
    key: 'webauthnRpId',
    default: () => undefined,
    description: "Passkeys' relying-party ID, a host name (default: PUBLIC_URL's host; passkeys are off when that is an IP address)",
    parse: (value: string, env: string) => {
      const host = value.toLowerCase();
      if (isIP(host.replace(/^\[|\]$/g, '')) !== 0) {
        throw new ConfigError(
          `${env} must be a host name, not an IP address: browsers refuse passkeys for IP addresses (use e.g. localhost or auth.example.com)`,
        );
      }
      if (!HOST_NAME.test(host)) throw new ConfigError(`${env} must be a host name such as example.com (no scheme, port or path), got "${value}"`);
      return host;
    },
  },
  {
    env: 'WEBAUTHN_ORIGINS',
    key: 'webauthnOrigins',
    default: '',
    description: "Comma-separated origins where passkeys are used, as the browser sees them (default: PUBLIC_URL's origin)",
    format: list,
    parse: (v: string, env: string) => origins(v, env),
  },
  {
    env: 'WEBAUTHN_RP_NAME',
    key: 'webauthnRpName',
    default: () => undefined,
    description: 'Name of the service shown by passkey dialogs (default: APP_NAME)',
    parse: text,
  },
  {
    env: 'FEDERATION_PROVIDERS',
    key: 'federationProviders',
    default: '[]',
    description:
      'JSON array of identity providers for "Sign in with …": {"type":"oidc","id","issuer","clientId","clientSecret"?,"scopes"?,"name"?,"trustEmail"?} or {"type":"github","id","clientId","clientSecret",…}; see docs/federation.md',
    format: (v) => (typeof v === 'string' ? v : JSON.stringify(v)),
    parse: (value: string, env: string) => {
      try {
        return parseProviders(value);
      } catch (error) {
        throw new ConfigError(`${env}${(error as Error).message.startsWith('[') ? '' : ' '}${(error as Error).message}`);
      }
    },
  },
  {
    env: 'EMAIL_SIGNIN',
    key: 'emailSignin',
    default: 'off',
    description: 'Passwordless sign-in by email: off, code (a one-time code), link (a one-time link) or both (one mail with each)',
    parse: (v: string, env: string) => {
      if (v !== 'off' && v !== 'code' && v !== 'link' && v !== 'both') throw new ConfigError(`${env} must be off, code, link or both, got "${v}"`);
      return v;
    },
  },
  {
    env: 'EMAIL_SIGNIN_TTL',
    key: 'emailSigninTtl',
    default: '600',
    description: 'Lifetime of an emailed sign-in code or link, seconds (60 to 600)',
    parse: integer(60, 600),
  },
  {
    env: 'REDIS_URL',
    key: 'redisUrl',
    default: () => undefined,
    description: 'redis://… shares rate-limit counters between instances; unset keeps them in memory',
    parse: (v: string, env: string) => {
      if (!/^rediss?:\/\//.test(v)) throw new ConfigError(`${env} must start with redis:// or rediss://`);
      return v;
    },
  },
  {
    env: 'REDIS_PREFIX',
    key: 'redisPrefix',
    default: 'signet',
    description: 'Prefix of every Redis key, so several deployments (or test runs) can share one Redis',
    parse: (v: string, env: string) => {
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(v)) throw new ConfigError(`${env} must be 1 to 64 of A-Z a-z 0-9 _ . : -`);
      return v;
    },
  },
  {
    env: 'RATE_LIMITS',
    key: 'rateLimits',
    default: 'on',
    description: 'on, or off for test rigs (logs a warning at start)',
    format: (v) => (v === true ? 'on' : v === false ? 'off' : scalar(v)),
    parse: (v: string, env: string) => {
      if (v !== 'on' && v !== 'off') throw new ConfigError(`${env} must be on or off, got "${v}"`);
      return v === 'on';
    },
  },
  {
    env: 'TRUST_PROXY',
    key: 'trustProxy',
    default: '',
    description: 'Comma-separated proxy addresses whose X-Forwarded-For/-Proto are honoured',
    format: list,
    parse: (v: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
  },
  {
    env: 'CORS_ORIGINS',
    key: 'corsOrigins',
    default: '',
    description: 'Comma-separated origins (https://app.example.com) allowed to call the API from browsers, with credentials',
    format: list,
    parse: (v: string, env: string) => origins(v, env),
  },
  {
    env: 'TLS_CERT',
    key: 'tlsCert',
    default: () => undefined,
    description: 'PEM certificate file: serve HTTPS directly (with TLS_KEY)',
    parse: (v: string) => resolve(v),
  },
  { env: 'TLS_KEY', key: 'tlsKey', default: () => undefined, description: 'PEM private key file for TLS_CERT', parse: (v: string) => resolve(v) },
  {
    env: 'LOG_LEVEL',
    key: 'logLevel',
    default: 'info',
    description: 'trace, debug, info, warn, error, fatal or silent',
    parse: (v: string, env: string) => {
      if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(v))
        throw new ConfigError(`${env} must be one of trace, debug, info, warn, error, fatal, silent`);
      return v;
    },
  },
  {
    env: 'RETENTION_DAYS',
    key: 'retentionDays',
    default: '7',
    description: 'Days ended sessions, used tokens, MFA challenges and sent or failed mail are kept before they are deleted',
    parse: integer(1, 3650),
  },
  {
    env: 'METRICS_TOKEN',
    key: 'metricsToken',
    default: () => undefined,
    description: 'Bearer token (at least 32 bytes) that GET /metrics requires on the public listener; unset: /metrics is not served there',
    parse: secret(32),
  },
  {
    env: 'METRICS_PORT',
    key: 'metricsPort',
    default: () => undefined,
    description: 'Serve GET /metrics (without a token) on this port of METRICS_HOST, a listener of its own',
    parse: integer(0, 65535),
  },
  {
    env: 'METRICS_HOST',
    key: 'metricsHost',
    default: '127.0.0.1',
    description: 'Interface of the METRICS_PORT listener (loopback: keep it private)',
    parse: text,
  },
  {
    env: 'SIGNET_DEV',
    key: 'dev',
    default: '0',
    description: 'Development mode (plain-HTTP cookies, relaxed warnings); never in production',
    format: (v) => (v === true ? '1' : v === false ? '0' : scalar(v)),
    parse: boolean,
  },
];

/** A number, string or boolean as the environment would spell it; anything else cannot be one. */
function scalar(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `(a ${typeof value})`;
}

function list(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : scalar(value);
}

/**
 * Reads and validates the configuration. Throws `ConfigError` naming the first
 * bad setting. `given` (settings in code, library use) wins over the
 * environment and the file, and goes through the very same parsers: a value
 * the environment could not hold is refused from code too. A key given as
 * `undefined` means unset.
 */
export function loadConfig(env: Raw = process.env, given: Partial<SignetConfig> = {}): Readonly<SignetConfig> {
  const raw: Raw = { ...readConfigFile(env.SIGNET_CONFIG), ...pickDefined(env) };
  const names: Record<string, string> = {};
  for (const option of OPTIONS) {
    const [key, nested] = option.key.split('.');
    const holder = nested === undefined ? (given as Record<string, unknown>) : (given as Record<string, Record<string, unknown> | undefined>)[key];
    const field = nested ?? key;
    if (holder === undefined || !Object.hasOwn(holder, field)) continue;
    const value = holder[field];
    raw[option.env] = value === undefined || value === null ? '' : (option.format ?? scalar)(value);
    names[option.env] = `config.${option.key} (${option.env})`;
  }
  const out: Record<string, unknown> = {};
  const argon2: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const value = raw[option.env];
    const fallback = typeof option.default === 'function' ? option.default(raw) : option.default;
    const text = value !== undefined && value !== '' ? value : fallback;
    const parsed = text === undefined ? undefined : option.parse(text, names[option.env] ?? option.env);
    if (option.key.startsWith('argon2.')) argon2[option.key.slice(7)] = parsed;
    else out[option.key] = parsed;
  }
  out.argon2 = argon2;
  out.audience ??= out.publicUrl;
  return finish(out as unknown as SignetConfig);
}

/** Rules between settings; then the configuration is frozen. */
function finish(config: SignetConfig): Readonly<SignetConfig> {
  if (config.jwtSecret !== undefined) config = { ...config, jwtAlgorithm: 'HS256' };
  if (config.jwtAlgorithm === 'HS256' && config.jwtSecret === undefined) {
    throw new ConfigError('HS256 needs JWT_SECRET (at least 32 bytes)');
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) throw new ConfigError('TLS_CERT and TLS_KEY go together: set both or neither');
  if (config.sessionAbsoluteTtl < config.accessTokenTtl) {
    throw new ConfigError('SESSION_TTL must be at least ACCESS_TOKEN_TTL');
  }
  if (config.metricsPort !== undefined && config.metricsPort === config.port && config.port !== 0) {
    throw new ConfigError('METRICS_PORT must differ from PORT: metrics are served on a listener of their own');
  }
  config = { ...config, ...relyingParty(config) };
  return Object.freeze({
    ...config,
    argon2: Object.freeze({ ...config.argon2 }),
    trustProxy: Object.freeze([...config.trustProxy]) as string[],
    corsOrigins: Object.freeze([...config.corsOrigins]) as string[],
    returnUrls: Object.freeze([...config.returnUrls]) as string[],
    webauthnOrigins: Object.freeze([...config.webauthnOrigins]) as string[],
  });
}

/**
 * Passkeys' relying party (WebAuthn §5.1.2, §13.4.9): the RP ID defaults to
 * PUBLIC_URL's host and the origins to PUBLIC_URL's origin. A browser only
 * runs a ceremony for an RP ID that is the page's host or a registrable suffix
 * of it, and never for an IP address: a default that cannot work turns
 * passkeys off instead of failing the start, an explicit one that cannot work
 * is refused here.
 */
function relyingParty(config: SignetConfig): Pick<SignetConfig, 'webauthnRpId' | 'webauthnOrigins' | 'webauthnRpName'> {
  const publicUrl = new URL(config.publicUrl);
  const publicHost = publicUrl.hostname.replace(/^\[|\]$/g, '');
  const rpId = config.webauthnRpId ?? (isIP(publicHost) === 0 ? publicHost : undefined);
  const rpName = config.webauthnRpName ?? config.appName;
  if (rpId === undefined) {
    if (config.webauthnOrigins.length > 0) throw new ConfigError(`WEBAUTHN_ORIGINS needs WEBAUTHN_RP_ID: PUBLIC_URL's host ${publicHost} is an IP address`);
    return { webauthnRpId: undefined, webauthnOrigins: [], webauthnRpName: rpName };
  }
  const origins = config.webauthnOrigins.length > 0 ? config.webauthnOrigins : [publicUrl.origin];
  for (const origin of origins) {
    const host = new URL(origin).hostname;
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      const which = config.webauthnOrigins.length > 0 ? 'WEBAUTHN_ORIGINS' : "PUBLIC_URL's origin (the default of WEBAUTHN_ORIGINS)";
      throw new ConfigError(`${which}: ${origin} is not on the relying-party ID ${rpId}: its host must be ${rpId} or end in .${rpId}`);
    }
  }
  return { webauthnRpId: rpId, webauthnOrigins: origins, webauthnRpName: rpName };
}

function hostOf(raw: Raw): string {
  try {
    return new URL(raw.PUBLIC_URL ?? '').hostname || 'localhost';
  } catch {
    return raw.HOST || 'localhost';
  }
}

function pickDefined(env: Raw): Raw {
  const names = new Set(OPTIONS.map((o) => o.env));
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => names.has(k) && v !== undefined));
}

function readConfigFile(path: string | undefined): Raw {
  if (!path) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`SIGNET_CONFIG: cannot read ${path} as JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('SIGNET_CONFIG must name a JSON file holding one object of VARIABLE: value');
  }
  const names = new Set(OPTIONS.map((o) => o.env));
  const raw: Raw = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!names.has(key)) throw new ConfigError(`SIGNET_CONFIG: unknown setting "${key}"`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new ConfigError(`SIGNET_CONFIG: ${key} must be a string, number or boolean`);
    }
    raw[key] = String(value);
  }
  return raw;
}

/** The `--help` text: every option with its default. */
export function describeOptions(): string {
  return OPTIONS.map((o) => {
    const def = typeof o.default === 'function' ? '(derived)' : o.default === '' ? '(empty)' : o.default;
    return `  ${o.env.padEnd(22)} ${o.description}. Default: ${def}`;
  }).join('\n');
}
