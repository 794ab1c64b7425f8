import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, OPTIONS, describeOptions, loadConfig } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'signet-config-'));
let files = 0;
/** Writes `content` (an object is serialised as JSON) to a fresh file and returns its path. */
function configFile(content: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The ConfigError `loadConfig(env)` throws; fails the test when it does not throw one. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  expect.fail(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('loadConfig defaults', () => {
  it('listens on 127.0.0.1:3000 and derives the public URL and audience from it', () => {
    const config = loadConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(3000);
    expect(config.publicUrl).toBe('http://127.0.0.1:3000');
    expect(config.audience).toBe(config.publicUrl);
    expect(config.accessTokenTtl).toBe(900);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.jwtSecret).toBeUndefined();
    expect(config.jwtAlgorithm).toBe('RS256');
    expect(config.logLevel).toBe('info');
    expect(config.dev).toBe(false);
  });

  it('derives the default public URL from HOST and PORT', () => {
    expect(loadConfig({ HOST: '0.0.0.0', PORT: '8080' }).publicUrl).toBe('http://0.0.0.0:8080');
  });

  it('uses PUBLIC_URL, without a trailing slash, as the audience when JWT_AUDIENCE is unset', () => {
    const config = loadConfig({ PUBLIC_URL: 'https://auth.example.com/' });
    expect(config.publicUrl).toBe('https://auth.example.com');
    expect(config.audience).toBe('https://auth.example.com');
    expect(loadConfig({ PUBLIC_URL: 'https://auth.example.com', JWT_AUDIENCE: 'api://orders' }).audience).toBe('api://orders');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '' }).port).toBe(3000);
  });

  it('ignores environment variables that are not settings', () => {
    expect(() => loadConfig({ PATH: '/usr/bin', HOME: '/root' })).not.toThrow();
  });
});

describe('loadConfig validation', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PUBLIC_URL', 'not-a-url'],
    ['PUBLIC_URL', 'ftp://example.com'],
    ['DATABASE_URL', 'mysql://x'],
    ['JWT_SECRET', 'too-short-secret'],
    ['SIGNET_SECRET', 'too-short-secret'],
    ['JWT_ALG', 'HS512'],
    ['JWT_ALG', 'none'],
    ['LOG_LEVEL', 'loud'],
    ['ACCESS_TOKEN_TTL', '5'],
    ['ARGON2_MEMORY_KIB', 'lots'],
    ['SIGNET_DEV', 'maybe'],
  ])('refuses %s=%j with a ConfigError naming the variable', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.message).toContain(name);
  });

  it('refuses JWT_ALG=HS256 without JWT_SECRET', () => {
    expect(configError({ JWT_ALG: 'HS256' }).message).toMatch(/JWT_ALG|JWT_SECRET/);
  });

  it('accepts JWT_ALG=HS256 when JWT_SECRET is set (the consistent way to ask for HS256)', () => {
    const config = loadConfig({ JWT_SECRET: 'x'.repeat(32), JWT_ALG: 'HS256' });
    expect(config.jwtAlgorithm).toBe('HS256');
  });

  it('accepts postgres:// and postgresql:// database URLs', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/signet' }).databaseUrl).toBe('postgres://u@db/signet');
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@db/signet' }).databaseUrl).toBe('postgresql://u@db/signet');
  });

  it('switches to HS256 when JWT_SECRET is set, whatever JWT_ALG says', () => {
    const secret = 'x'.repeat(32);
    expect(loadConfig({ JWT_SECRET: secret }).jwtAlgorithm).toBe('HS256');
    expect(loadConfig({ JWT_SECRET: secret, JWT_ALG: 'ES256' }).jwtAlgorithm).toBe('HS256');
    expect(loadConfig({ JWT_SECRET: secret }).jwtSecret).toBe(secret);
  });

  it('returns a frozen configuration, nested objects included', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.argon2)).toBe(true);
    expect(Object.isFrozen(config.trustProxy)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
  });
});

describe('passkeys: the WebAuthn relying party', () => {
  it("takes PUBLIC_URL's host as the RP ID, its origin as the one origin, and APP_NAME as the RP name", () => {
    const config = loadConfig({ PUBLIC_URL: 'https://auth.example.com', APP_NAME: 'Example' });
    expect(config.webauthnRpId).toBe('auth.example.com');
    expect(config.webauthnOrigins).toEqual(['https://auth.example.com']);
    expect(config.webauthnRpName).toBe('Example');
    expect(loadConfig({ PUBLIC_URL: 'http://localhost:3000' }).webauthnOrigins).toEqual(['http://localhost:3000']);
    expect(Object.isFrozen(config.webauthnOrigins)).toBe(true);
  });

  it('turns passkeys off, without failing the start, when the default RP ID would be an IP address', () => {
    for (const publicUrl of ['http://127.0.0.1:3000', 'http://[::1]:3000', 'https://192.0.2.10']) {
      const config = loadConfig({ PUBLIC_URL: publicUrl });
      expect(config.webauthnRpId, publicUrl).toBeUndefined();
      expect(config.webauthnOrigins).toEqual([]);
    }
    expect(loadConfig({}).webauthnRpId).toBeUndefined();
  });

  it('accepts a registrable parent domain as the RP ID, with origins on it or its subdomains', () => {
    const config = loadConfig({
      PUBLIC_URL: 'https://auth.example.com',
      WEBAUTHN_RP_ID: 'Example.COM',
      WEBAUTHN_ORIGINS: 'https://auth.example.com, https://example.com,https://app.example.com:8443',
      WEBAUTHN_RP_NAME: 'Example Inc.',
    });
    expect(config.webauthnRpId).toBe('example.com');
    expect(config.webauthnOrigins).toEqual(['https://auth.example.com', 'https://example.com', 'https://app.example.com:8443']);
    expect(config.webauthnRpName).toBe('Example Inc.');
  });

  it.each([
    [{ WEBAUTHN_RP_ID: '127.0.0.1' }, /WEBAUTHN_RP_ID.*IP address/],
    [{ WEBAUTHN_RP_ID: '[::1]' }, /WEBAUTHN_RP_ID.*IP address/],
    [{ WEBAUTHN_RP_ID: 'https://example.com' }, /WEBAUTHN_RP_ID must be a host name/],
    [{ WEBAUTHN_RP_ID: 'example.com:443' }, /WEBAUTHN_RP_ID must be a host name/],
    [{ PUBLIC_URL: 'https://auth.example.com', WEBAUTHN_RP_ID: 'other.example' }, /PUBLIC_URL's origin.*not on the relying-party ID other\.example/],
    [
      { PUBLIC_URL: 'https://auth.example.com', WEBAUTHN_ORIGINS: 'https://evil.example' },
      /WEBAUTHN_ORIGINS: https:\/\/evil\.example is not on the relying-party ID auth\.example\.com/,
    ],
    [{ PUBLIC_URL: 'https://auth.example.com', WEBAUTHN_ORIGINS: 'https://example.com' }, /not on the relying-party ID auth\.example\.com/],
    [{ PUBLIC_URL: 'https://auth.example.com', WEBAUTHN_ORIGINS: 'https://auth.example.com/path' }, /bare origin/],
    [{ PUBLIC_URL: 'https://auth.example.com', WEBAUTHN_ORIGINS: 'https://xauth.example.com' }, /not on the relying-party ID/],
    [{ WEBAUTHN_ORIGINS: 'http://localhost:3000' }, /WEBAUTHN_ORIGINS needs WEBAUTHN_RP_ID/],
  ])('refuses %j', (env, message) => {
    expect(configError(env).message).toMatch(message);
  });
});

describe('SIGNET_CONFIG file', () => {
  it('reads settings from the JSON file, numbers and booleans included', () => {
    const path = configFile({ PORT: 4100, HOST: '127.0.0.2', ACCESS_TOKEN_TTL: '600', SIGNET_DEV: true });
    const config = loadConfig({ SIGNET_CONFIG: path });
    expect(config.port).toBe(4100);
    expect(config.host).toBe('127.0.0.2');
    expect(config.publicUrl).toBe('http://127.0.0.2:4100');
    expect(config.accessTokenTtl).toBe(600);
    expect(config.dev).toBe(true);
  });

  it('lets the environment win over the file', () => {
    const path = configFile({ PORT: '4100', LOG_LEVEL: 'debug' });
    const config = loadConfig({ SIGNET_CONFIG: path, PORT: '4200' });
    expect(config.port).toBe(4200);
    expect(config.logLevel).toBe('debug');
  });

  it('refuses an unknown key in the file with a ConfigError naming it', () => {
    const error = configError({ SIGNET_CONFIG: configFile({ PORT: '4100', PROT: '4200' }) });
    expect(error.message).toContain('PROT');
  });

  it('refuses a bad value in the file with a ConfigError naming the variable', () => {
    expect(configError({ SIGNET_CONFIG: configFile({ PORT: 'abc' }) }).message).toContain('PORT');
  });

  it('refuses a file that is not a JSON object, or cannot be read', () => {
    expect(configError({ SIGNET_CONFIG: configFile('{ not json') }).message).toContain('SIGNET_CONFIG');
    expect(configError({ SIGNET_CONFIG: configFile([1, 2]) }).message).toContain('SIGNET_CONFIG');
    expect(configError({ SIGNET_CONFIG: configFile({ PORT: { value: 1 } }) }).message).toContain('PORT');
    expect(configError({ SIGNET_CONFIG: join(dir, 'missing.json') }).message).toContain('SIGNET_CONFIG');
  });
});

describe('describeOptions', () => {
  it('lists every environment variable with its description', () => {
    const text = describeOptions();
    expect(OPTIONS.length).toBeGreaterThan(10);
    for (const option of OPTIONS) {
      expect(text).toMatch(new RegExp(`^\\s*${option.env}\\s`, 'm'));
      expect(text).toContain(option.description);
    }
    for (const name of ['HOST', 'PORT', 'PUBLIC_URL', 'SIGNET_DATA_DIR', 'DATABASE_URL', 'JWT_SECRET', 'TRUST_PROXY', 'SIGNET_DEV']) {
      expect(text).toContain(name);
    }
  });
});

describe('settings given in code', () => {
  it('meet the same parsers as the environment, and are named by both names', () => {
    expect(() => loadConfig({}, { accessTokenTtl: -5 })).toThrow(/config\.accessTokenTtl \(ACCESS_TOKEN_TTL\) must be a whole number/);
    expect(() => loadConfig({}, { bodyLimit: 0 })).toThrow(/BODY_LIMIT\) must be between 256/);
    expect(() => loadConfig({}, { argon2: { memoryCost: 1, timeCost: 2, parallelism: 1 } })).toThrow(/config\.argon2\.memoryCost/);
    expect(() => loadConfig({}, { jwtSecret: 'short' })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({}, { logLevel: 'loud' })).toThrow(/LOG_LEVEL/);
  });

  it("are normalised as the environment's are, and win over it", () => {
    const config = loadConfig(
      { PORT: '4000', RATE_LIMITS: 'on' },
      { publicUrl: 'https://auth.example.com/', rateLimits: false, trustProxy: ['10.0.0.1', '10.0.0.2'] },
    );
    expect(config.publicUrl).toBe('https://auth.example.com');
    expect(config.audience).toBe('https://auth.example.com');
    expect(config.port).toBe(4000);
    expect(config.rateLimits).toBe(false);
    expect(config.trustProxy).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('take undefined as unset, so the default applies', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://db/x' }, { databaseUrl: undefined }).databaseUrl).toBeUndefined();
  });
});
