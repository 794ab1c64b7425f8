import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import type { PageClient, PageReply } from './pages.js';

/**
 * Walks an authorization request through Signet's pages as a browser would,
 * without one: follows Signet's own redirects, signs in on the sign-in page,
 * answers the consent page, and stops at the first redirect that leaves
 * Signet (normally the client's redirect URI), which it returns.
 */
export async function authorizeThroughPages(
  pages: PageClient,
  authorizationUrl: URL | string,
  options: { login?: { identifier: string; password: string }; consent?: 'allow' | 'deny'; mfaCode?: () => string } = {},
): Promise<{ location: URL; visited: string[] }> {
  const start = new URL(authorizationUrl);
  const visited: string[] = [];
  let reply: PageReply = await pages.get(start.pathname + start.search);
  for (let hop = 0; hop < 12; hop++) {
    if (reply.location) {
      const next = new URL(reply.location, pages.base);
      if (next.origin !== new URL(pages.base).origin) return { location: next, visited };
      visited.push(next.pathname);
      reply = await pages.get(next.pathname + next.search);
      continue;
    }
    if (reply.status !== 200) throw new Error(`stopped at ${reply.status}: ${mainOf(reply.text)}`);
    const action = /<form method="post" action="([^"]+)"/.exec(reply.text)?.[1]?.replace(/&amp;/g, '&');
    const hidden = Object.fromEntries(
      [...reply.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], m[2].replace(/&amp;/g, '&')]),
    );
    if (action?.endsWith('/sign-in')) {
      if (!options.login) throw new Error('the sign-in page asked for a login');
      reply = await pages.post(action, { ...hidden, identifier: options.login.identifier, password: options.login.password });
    } else if (action?.endsWith('/sign-in/mfa')) {
      if (!options.mfaCode) throw new Error('the second-factor page asked for a code');
      reply = await pages.post(action, { ...hidden, code: options.mfaCode() });
    } else if (action?.endsWith('/consent')) {
      if (!options.consent) throw new Error('the consent page asked for an answer');
      reply = await pages.post(action, { ...hidden, decision: options.consent });
    } else {
      throw new Error(`unexpected page: ${mainOf(reply.text)}`);
    }
  }
  throw new Error('too many hops');
}

/** A client's back-channel logout endpoint: records every logout token posted to it. */
export async function backchannelReceiver(
  status = 200,
): Promise<{ url: string; tokens: string[]; tokenFor(sid: string): Promise<string>; close(): Promise<void> }> {
  const tokens: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (req.method === 'POST' && req.headers['content-type'] === 'application/x-www-form-urlencoded' && token) tokens.push(token);
      res.writeHead(status, { 'cache-control': 'no-store' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/backchannel-logout`,
    tokens,
    /** The logout token for a browser session (its `sid`), waiting up to 5 s for it. */
    async tokenFor(sid: string): Promise<string> {
      for (let waited = 0; waited < 5000; waited += 20) {
        const found = tokens.find((t) => decodeJwt(t).sid === sid);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no logout token for sid ${sid} within 5 s`);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function mainOf(page: string): string {
  return (/<main[^>]*>([\s\S]*?)<\/main>/.exec(page)?.[1] ?? page).replace(/\s+/g, ' ').slice(0, 500);
}

/** A PKCE pair (RFC 7636, S256) and the authorization URL for it. */
export function codeRequest(issuer: string, clientId: string, redirectUri: string, scope = 'openid'): { url: string; verifier: string } {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return { url: `${issuer}/oauth2/authorize?${query.toString()}`, verifier };
}

/** Redeems a code for a public client at the token endpoint; the parsed answer and its status. */
export async function redeemCode(
  issuer: string,
  clientId: string,
  redirectUri: string,
  location: URL,
  verifier: string,
): Promise<{ status: number; body: any }> {
  const reply = await fetch(`${issuer}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: location.searchParams.get('code') ?? '',
      redirect_uri: redirectUri,
      client_id: clientId,
      code_verifier: verifier,
    }),
  });
  return { status: reply.status, body: await reply.json() };
}
