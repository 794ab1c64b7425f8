import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import { isSignetError } from '../errors.js';
import { networkKey } from '../core/limits.js';
import { PASSWORD_MAX_LENGTH, normalizePassword, passwordLength } from '../core/passwords.js';
import type { Services } from '../services.js';
import { decodeUtf8, isFormContentType, readBody } from './body.js';
import type { AppContext, AppEnv } from './context.js';
import { email as emailSchema } from './schemas.js';

/**
 * The pages the mailed links open. Plain HTML forms (no script), so a mail
 * scanner that prefetches the link changes nothing: only a POST from the page
 * acts. Strict CSP; the one inline stylesheet is allowed by its hash.
 */
const STYLE = `body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;max-width:420px;margin:48px auto;padding:0 16px;color:#1a1a1a;line-height:1.5}
form{display:grid;gap:12px}input{font:inherit;padding:8px}button{font:inherit;padding:10px;background:#1f4fd1;color:#fff;border:0;border-radius:6px}
.error{color:#b00020}`;
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');
const CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (value: string) => value.replace(/[&<>"']/g, (ch) => ESCAPES[ch]);

function page(appName: string, title: string, body: string, status = 200): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)} · ${esc(appName)}</title><style>${STYLE}</style></head><body><h1>${esc(title)}</h1>${body}</body></html>`;
  return new Response(html, {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, 'x-frame-options': 'DENY', 'cache-control': 'no-store' },
  });
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export function registerPages(app: Hono<AppEnv>, services: Services): void {
  const { config, lifecycle, limits } = services;
  const name = config.appName;
  const origin = new URL(config.publicUrl).origin;

  /** Form posts must come from these pages: same origin, not a cross-site navigation. */
  const form = async (c: AppContext): Promise<URLSearchParams | Response> => {
    const from = c.req.header('origin');
    if ((from !== undefined && from !== origin && from !== 'null') || c.req.header('sec-fetch-site') === 'cross-site') {
      return page(name, 'Request refused', '<p class="error">This form must be sent from this site.</p>', 403);
    }
    if (!isFormContentType(c.req.header('content-type') ?? null)) return page(name, 'Request refused', '<p class="error">Unsupported form.</p>', 415);
    try {
      return new URLSearchParams(decodeUtf8(await readBody(c.req.raw, config.bodyLimit)));
    } catch {
      return page(name, 'Request refused', '<p class="error">The form could not be read.</p>', 400);
    }
  };

  const tokenField = (token: string) => `<input type="hidden" name="token" value="${esc(token)}">`;
  const invalidLink = () =>
    page(
      name,
      'This link does not work',
      '<p class="error">The link is invalid, was already used, or has expired.</p><p><a href="/forgot-password">Request a new one</a></p>',
      400,
    );

  app.get('/verify-email', (c) => {
    const token = c.req.query('token') ?? '';
    if (!TOKEN.test(token)) return invalidLink();
    return page(
      name,
      'Confirm your email',
      `<form method="post" action="/verify-email">${tokenField(token)}<button type="submit">Confirm my email address</button></form>`,
    );
  });

  app.post('/verify-email', async (c) => {
    const params = await form(c);
    if (params instanceof Response) return params;
    try {
      const user = await lifecycle.verifyEmail(params.get('token') ?? '');
      return page(name, 'Email confirmed', `<p><strong>${esc(user.email)}</strong> is confirmed. You can close this page.</p>`);
    } catch (error) {
      if (isSignetError(error, 'invalid_account_token')) return invalidLink();
      throw error;
    }
  });

  const resetForm = (token: string, message = '') =>
    `${message ? `<p class="error">${esc(message)}</p>` : ''}<form method="post" action="/reset-password">${tokenField(token)}
<label>New password <input type="password" name="password" autocomplete="new-password" required minlength="${config.passwordMinLength}" maxlength="${PASSWORD_MAX_LENGTH}"></label>
<label>Repeat it <input type="password" name="confirm" autocomplete="new-password" required></label>
<button type="submit">Set my new password</button></form>`;

  app.get('/reset-password', (c) => {
    const token = c.req.query('token') ?? '';
    if (!TOKEN.test(token)) return invalidLink();
    return page(name, 'Choose a new password', resetForm(token));
  });

  app.post('/reset-password', async (c) => {
    const params = await form(c);
    if (params instanceof Response) return params;
    const token = params.get('token') ?? '';
    const password = normalizePassword(params.get('password') ?? '');

    if (password !== normalizePassword(params.get('confirm') ?? ''))
      return page(name, 'Choose a new password', resetForm(token, 'The two passwords differ.'), 400);
    const length = passwordLength(password);
    // eslint-disable-next-line no-control-regex
    if (length < config.passwordMinLength || length > PASSWORD_MAX_LENGTH || /[\u0000-\u001f\u007f]/.test(password)) {
      return page(name, 'Choose a new password', resetForm(token, `Use ${config.passwordMinLength} to ${PASSWORD_MAX_LENGTH} characters.`), 400);
    }
    try {
      await lifecycle.resetPassword(token, password);
      return page(name, 'Password changed', '<p>Your password is changed and every session was signed out. You can sign in with the new password.</p>');
    } catch (error) {
      if (isSignetError(error, 'weak_password'))
        return page(name, 'Choose a new password', resetForm(token, 'This password is too common; choose another one.'), 400);
      if (isSignetError(error, 'invalid_account_token')) return invalidLink();
      throw error;
    }
  });

  const forgotForm = `<form method="post" action="/forgot-password"><label>Email <input type="email" name="email" autocomplete="email" required maxlength="254"></label><button type="submit">Email me a reset link</button></form>`;
  app.get('/forgot-password', () => page(name, 'Forgot your password?', forgotForm));

  app.post('/forgot-password', async (c) => {
    const params = await form(c);
    if (params instanceof Response) return params;
    const parsed = emailSchema.safeParse(params.get('email') ?? '');
    if (!parsed.success) return page(name, 'Forgot your password?', `<p class="error">Enter a valid email address.</p>${forgotForm}`, 400);
    if (limits.enabled && !(await limits.take('mail.ip', networkKey(c.var.client.ip))).allowed) {
      return page(name, 'Too many requests', '<p class="error">Too many requests from here. Try again later.</p>', 429);
    }
    lifecycle.requestPasswordReset(parsed.data);
    return page(name, 'Check your email', '<p>If an account exists for this address, an email with a reset link is on its way.</p>');
  });
}
