import { z } from 'zod';

/**
 * The identity providers an operator lets users sign in with
 * (FEDERATION_PROVIDERS): validated once at start, like every setting. Lives
 * beside config.ts (the bottom layer), so it imports nothing of Signet's.
 */
export interface OidcProviderConfig {
  type: 'oidc';
  /** Short name in URLs (`/auth/federation/<id>/callback`) and in stored identities; never change it once users linked. */
  id: string;
  /** Shown on the "Sign in with …" button. */
  name: string;
  /** The issuer; its discovery document is read from `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  clientId: string;
  /** Unset: a public client (PKCE only, no client authentication). */
  clientSecret: string | undefined;
  scopes: string[];
  /** Whether an address the provider says is verified may link to an existing account with that address. */
  trustEmail: boolean;
}

export interface GithubProviderConfig {
  type: 'github';
  id: string;
  name: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  trustEmail: boolean;
  /** GitHub's endpoints; overridable for GitHub Enterprise Server (and for a local stand-in in tests). */
  authorizeUrl: string;
  tokenUrl: string;
  apiUrl: string;
}

export type ProviderConfig = OidcProviderConfig | GithubProviderConfig;

const ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

const httpUrl = z
  .string()
  .url()
  .refine((v) => /^https?:\/\//.test(v), 'must be an http(s) URL')
  .refine((v) => v.startsWith('https://') || isLoopbackUrl(v), 'must be https:// (plain http is accepted on loopback only, for development)')
  .transform((v) => v.replace(/\/$/, ''));

const common = {
  id: z.string().regex(ID, 'must be 1 to 32 of a-z 0-9 - (it is part of the callback URL)'),
  name: z.string().trim().min(1).max(60).optional(),
  clientId: z.string().min(1).max(512),
  trustEmail: z.boolean().default(false),
};

const oidcSchema = z.strictObject({
  type: z.literal('oidc'),
  ...common,
  issuer: httpUrl,
  clientSecret: z.string().min(1).max(512).optional(),
  scopes: z
    .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token'))
    .max(20)
    .default(['openid', 'email', 'profile'])
    .refine((s) => s.includes('openid'), 'must include openid'),
});

const githubSchema = z.strictObject({
  type: z.literal('github'),
  ...common,
  clientSecret: z.string().min(1).max(512),
  scopes: z
    .array(z.string().regex(/^[a-z:_]+$/))
    .max(20)
    .default(['read:user', 'user:email']),
  authorizeUrl: httpUrl.default('https://github.com/login/oauth/authorize'),
  tokenUrl: httpUrl.default('https://github.com/login/oauth/access_token'),
  apiUrl: httpUrl.default('https://api.github.com'),
});

const listSchema = z.array(z.discriminatedUnion('type', [oidcSchema, githubSchema])).max(20);

/** Parses the JSON list; throws an Error whose message names the exact path that is wrong. */
export function parseProviders(text: string): ProviderConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('must be a JSON array of providers, e.g. [{"type":"oidc","id":"corp","issuer":"https://id.example.com","clientId":"…"}]');
  }
  const parsed = listSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    throw new Error(`${path || '(root)'}: ${issue.message}`);
  }
  const seen = new Set<string>();
  return parsed.data.map((p, i) => {
    if (seen.has(p.id)) throw new Error(`[${i}].id: "${p.id}" is used twice`);
    seen.add(p.id);
    const name = p.name ?? (p.type === 'github' ? 'GitHub' : p.id);
    return p.type === 'oidc' ? { ...p, name, clientSecret: p.clientSecret } : { ...p, name };
  });
}

export function isLoopbackUrl(value: string): boolean {
  try {
    const host = new URL(value).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
