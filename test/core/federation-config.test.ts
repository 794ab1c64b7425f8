import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const oidc = { type: 'oidc', id: 'corp', issuer: 'https://id.example.com', clientId: 'signet' };
const load = (providers: unknown, extra: Record<string, string> = {}) =>
  loadConfig({ FEDERATION_PROVIDERS: typeof providers === 'string' ? providers : JSON.stringify(providers), ...extra });

describe('FEDERATION_PROVIDERS and EMAIL_SIGNIN', () => {
  it('defaults to no providers and email sign-in off (10-minute codes)', () => {
    const config = loadConfig({});
    expect(config.federationProviders).toEqual([]);
    expect(config.emailSignin).toBe('off');
    expect(config.emailSigninTtl).toBe(600);
  });

  it('reads OpenID Connect and GitHub providers with their defaults', () => {
    const config = load([oidc, { type: 'github', id: 'github', clientId: 'Iv1.x', clientSecret: 's', trustEmail: true }]);
    expect(config.federationProviders).toEqual([
      { ...oidc, name: 'corp', clientSecret: undefined, scopes: ['openid', 'email', 'profile'], trustEmail: false },
      {
        type: 'github',
        id: 'github',
        name: 'GitHub',
        clientId: 'Iv1.x',
        clientSecret: 's',
        trustEmail: true,
        scopes: ['read:user', 'user:email'],
        authorizeUrl: 'https://github.com/login/oauth/authorize',
        tokenUrl: 'https://github.com/login/oauth/access_token',
        apiUrl: 'https://api.github.com',
      },
    ]);
  });

  it.each([
    ['not JSON', '{', /FEDERATION_PROVIDERS must be a JSON array/],
    ['a plain-HTTP issuer off loopback', [{ ...oidc, issuer: 'http://id.example.com' }], /FEDERATION_PROVIDERS\[0\]\.issuer: must be https:\/\//],
    ['an id unfit for a URL', [{ ...oidc, id: 'Corp SSO' }], /FEDERATION_PROVIDERS\[0\]\.id: must be 1 to 32/],
    ['scopes without openid', [{ ...oidc, scopes: ['email'] }], /\[0\]\.scopes: must include openid/],
    ['a GitHub provider without a secret', [{ type: 'github', id: 'gh', clientId: 'x' }], /\[0\]\.clientSecret/],
    ['an unknown key', [{ ...oidc, trustEmails: true }], /FEDERATION_PROVIDERS\[0\]/],
    ['an id used twice', [oidc, oidc], /FEDERATION_PROVIDERS\[1\]\.id: "corp" is used twice/],
  ])('refuses %s, naming the exact path', (_, providers, message) => {
    expect(() => load(providers)).toThrow(ConfigError);
    expect(() => load(providers)).toThrow(message);
  });

  it('accepts plain HTTP on loopback (development), and refuses a bad EMAIL_SIGNIN or a TTL over 10 minutes', () => {
    expect(load([{ ...oidc, issuer: 'http://127.0.0.1:4000' }]).federationProviders[0]).toMatchObject({ issuer: 'http://127.0.0.1:4000' });
    expect(() => loadConfig({ EMAIL_SIGNIN: 'magic' })).toThrow(/EMAIL_SIGNIN must be off, code, link or both/);
    expect(() => loadConfig({ EMAIL_SIGNIN_TTL: '3600' })).toThrow(/EMAIL_SIGNIN_TTL must be between 60 and 600/);
  });
});
