import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for GitHub's OAuth app endpoints, because github.com is
 * unreachable from the test machines: `GET /login/oauth/authorize` (approves at
 * once for the user set by `signInAs`, as a signed-in GitHub user with the app
 * already authorized would see), `POST /login/oauth/access_token` (checks the
 * client secret, the code, its redirect URI and the PKCE verifier, and answers
 * JSON as GitHub does with `Accept: application/json`), and the REST API's
 * `GET /user` and `GET /user/emails`. Signet's client code path is the real one.
 */
export interface GithubUser {
  id: number;
  login: string;
  name: string | null;
  emails: Array<{ email: string; primary: boolean; verified: boolean }>;
}

export async function startGithubStandIn(client: { id: string; secret: string }) {
  let current: GithubUser | undefined;
  const codes = new Map<string, { user: GithubUser; redirectUri: string; challenge: string }>();
  const tokens = new Map<string, GithubUser>();
  const requests: string[] = [];
  const server = createServer((req, res): void => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    requests.push(`${req.method} ${url.pathname}`);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const redirectUri = url.searchParams.get('redirect_uri') ?? '';
      if (url.searchParams.get('client_id') !== client.id || !current || url.searchParams.get('code_challenge_method') !== 'S256')
        return send(400, { error: 'bad_request' });
      const code = randomBytes(10).toString('hex');
      codes.set(code, { user: current, redirectUri, challenge: url.searchParams.get('code_challenge') ?? '' });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', (): void => {
        const form = new URLSearchParams(body);
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        const ok =
          grant !== undefined &&
          form.get('client_id') === client.id &&
          form.get('client_secret') === client.secret &&
          form.get('redirect_uri') === grant.redirectUri &&
          createHash('sha256').update(verifier).digest('base64url') === grant.challenge;
        if (!ok) return send(200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
        const token = `gho_${randomBytes(18).toString('hex')}`;
        tokens.set(token, grant.user);
        send(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      });
      return;
    }
    const user = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /i, ''));
    if (!user) return send(401, { message: 'Bad credentials' });
    if (req.method === 'GET' && url.pathname === '/user') return send(200, { id: user.id, login: user.login, name: user.name, email: null });
    if (req.method === 'GET' && url.pathname === '/user/emails')
      return send(
        200,
        user.emails.map((e) => ({ ...e, visibility: null })),
      );
    send(404, { message: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    requests,
    signInAs(user: GithubUser) {
      current = user;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
