import { createHmac, randomBytes } from 'node:crypto';
import { getCookie } from 'hono/cookie';
import type { SignetConfig } from '../../config.js';
import { constantTimeEqual } from '../../core/crypto.js';
import type { AppContext } from '../context.js';
import { cookieNames, csrfToken, setCookie } from '../cookies.js';
import type { Asset } from './assets.js';
import { passkeyScripts, script, stylesheet } from './assets.js';
import { Html, html } from './html.js';
import { negotiate } from './i18n/index.js';
import type { Messages } from './i18n/index.js';
import { returnOrigins, safeReturnTo } from './return-to.js';

/** What every page handler works with: the catalog, paths, the form token, where to go next. */
export interface PageKit {
  t: Messages;
  config: Readonly<SignetConfig>;
  /** A path of the hosted pages: `to('sign-in')` → `/sign-in` (or under PAGES_PREFIX). */
  to(page: string, query?: Record<string, string | undefined>): string;
  /** The token every form of this response carries (bound to the session when signed in, else to the form cookie). */
  csrf: string;
  /** The validated `return_to` of this request (query or form), if any. */
  returnTo: string | undefined;
  assets: PageAssets;
  /** Where this page's forms may lead besides Signet (CSP form-action): an app waiting on this sign-in. */
  formTargets: readonly string[];
}

const FORM_COOKIE_TTL = 60 * 60 * 24;

/** The pages' stylesheet and script, and the passkey scripts when the pages offer passkeys. */
export type PageAssets = { css: Asset; js: Asset; passkeys?: { library: Asset; script: Asset } | undefined };

type PasskeyConfig = Pick<SignetConfig, 'publicUrl' | 'webauthnRpId' | 'webauthnOrigins'>;

/**
 * Whether the hosted pages offer passkeys: a relying party is configured and
 * the pages' own origin (PUBLIC_URL's) is one of its origins.
 */
export function pagesOfferPasskeys(config: PasskeyConfig): boolean {
  return config.webauthnRpId !== undefined && config.webauthnOrigins.includes(new URL(config.publicUrl).origin);
}

/** Built once per app: the assets do not change while it runs. */
export function pageAssets(config: Pick<SignetConfig, 'brandColor'> & PasskeyConfig): PageAssets {
  return { css: stylesheet(config.brandColor), js: script(), passkeys: pagesOfferPasskeys(config) ? passkeyScripts() : undefined };
}

export function pageKit(c: AppContext, assets: PageAssets, form?: URLSearchParams): PageKit {
  const { config } = c.var.services;
  const auth = c.get('auth') as AppContext['var']['auth'] | undefined;
  const raw = form?.get('return_to') ?? c.req.query('return_to');
  return {
    t: negotiate(c.req.header('accept-language')),
    config,
    to: (page, query) => pagePath(config.pagesPrefix, page, query),
    csrf: auth ? csrfToken(c, auth.session.id) : formToken(c),
    returnTo: safeReturnTo(raw, config),
    assets,
    formTargets: c.get('formTargets') ?? [],
  };
}

export function pagePath(prefix: string, page: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined));
  const search = params.size > 0 ? `?${params.toString()}` : '';
  return `${prefix}${page}${search}`;
}

/**
 * Forms of pages without a session carry an HMAC of a random value kept in a
 * `__Host-` cookie (SameSite=Strict): another site can neither read the
 * value nor plant the cookie, so it cannot forge a form post (login CSRF).
 */
function formToken(c: AppContext): string {
  const name = formCookieName(c);
  let value = getCookie(c, name);
  if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
    value = randomBytes(32).toString('base64url');
    setCookie(c, name, value, { path: '/', httpOnly: true, secure: cookieNames(c).secure, sameSite: 'Strict', maxAge: FORM_COOKIE_TTL });
  }
  return formMac(c, value);
}

function formCookieName(c: AppContext): string {
  return cookieNames(c).secure ? '__Host-signet-form' : 'signet-form';
}

function formMac(c: AppContext, value: string): string {
  return createHmac('sha256', c.var.services.serverKeys.csrf).update(`form:${value}`).digest('base64url');
}

/** Whether a posted form carries the right token: the session's when signed in, else the form cookie's. */
export function formTokenValid(c: AppContext, sent: string | null): boolean {
  if (!sent) return false;
  const auth = c.get('auth') as AppContext['var']['auth'] | undefined;
  if (auth) return constantTimeEqual(sent, csrfToken(c, auth.session.id));
  const value = getCookie(c, formCookieName(c));
  return value !== undefined && constantTimeEqual(sent, formMac(c, value));
}

export interface PageOptions {
  title: string;
  body: Html;
  status?: number;
  /** The account page's wider column. */
  wide?: boolean;
  /** Show the signed-in navigation. */
  signedIn?: boolean;
  /** Load the passkey scripts (when the pages offer passkeys). */
  passkeys?: boolean;
  headers?: Record<string, string>;
  /** More places this page's forms may lead (CSP form-action sources), e.g. a client's post-logout URI. */
  formTargets?: readonly string[];
}

/** A whole page: the shell, the security headers, no caching. */
export function page(kit: PageKit, options: PageOptions): Response {
  const { t, config, assets } = kit;
  const logo = config.brandLogoUrl ? html`<img src="${config.brandLogoUrl}" alt="${t.a11y.logo(config.appName)}">` : '';
  const nav = options.signedIn
    ? html`<nav aria-label="${t.nav.account}"><ul><li><a href="${kit.to('account')}">${t.nav.account}</a></li><li><form class="inline" method="post" action="${kit.to('sign-out')}"><input type="hidden" name="csrf" value="${kit.csrf}"><button type="submit" class="secondary">${t.nav.signOut}</button></form></li></ul></nav>`
    : '';
  const document = html`<!doctype html>
<html lang="${t.lang}" dir="${t.dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${options.title} · ${config.appName}</title>
<link rel="stylesheet" href="${kit.to('assets/signet.css', { v: assets.css.version })}">
<script src="${kit.to('assets/signet.js', { v: assets.js.version })}" defer></script>
${
  options.passkeys && assets.passkeys
    ? html`<script src="${kit.to('assets/webauthn.js', { v: assets.passkeys.library.version })}" defer></script>
<script src="${kit.to('assets/passkeys.js', { v: assets.passkeys.script.version })}" defer></script>`
    : ''
}
</head>
<body>
<a class="skip" href="#main">${t.nav.main}</a>
<header><a class="brand" href="${kit.to(options.signedIn ? 'account' : 'sign-in')}">${logo}<span>${config.appName}</span></a>${nav}</header>
<main id="main"${options.wide ? new Html(' class="wide"') : ''}>
<h1>${options.title}</h1>
${options.body}
</main>
</body>
</html>
`;
  return new Response(document.value, {
    status: options.status ?? 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': pagePolicy(config, [...kit.formTargets, ...(options.formTargets ?? [])]),
      'cache-control': 'no-store',
      vary: 'Accept-Language, Cookie',
      ...options.headers,
    },
  });
}

/**
 * Scripts, styles and images from Signet's own origin only (the logo's origin
 * too); forms may post to Signet and the browser may follow a post's redirect
 * to an app on RETURN_URLS, or to the client an authorization request waits
 * on (Chromium applies form-action to every redirect after a form post).
 * With passkeys, the pages' script fetches ceremony options from Signet's own
 * JSON routes: `connect-src 'self'`, and nothing else.
 */
export function pagePolicy(config: Pick<SignetConfig, 'brandLogoUrl' | 'returnUrls'> & PasskeyConfig, formTargets: readonly string[] = []): string {
  const images = ["'self'", ...(config.brandLogoUrl ? [new URL(config.brandLogoUrl).origin] : [])];
  const forms = [...new Set(["'self'", ...returnOrigins(config.returnUrls), ...formTargets.map(cspSource)])];
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${images.join(' ')}`,
    ...(pagesOfferPasskeys(config) ? ["connect-src 'self'"] : []),
    `form-action ${forms.join(' ')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/**
 * A URI as a CSP source: its origin, or for a native app's private-use
 * scheme (com.example.app:/cb) the scheme alone.
 */
export function cspSource(uri: string): string {
  const url = new URL(uri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}

/** 303 See Other: after a form post, the browser GETs the next page. */
export function seeOther(location: string): Response {
  return new Response(null, { status: 303, headers: { location, 'cache-control': 'no-store' } });
}

export interface FieldOptions {
  name: string;
  /** The input's id when `f-<name>` would not be unique on the page. */
  id?: string;
  label: string;
  type?: 'text' | 'email' | 'password' | 'hidden';
  autocomplete?: string;
  value?: string | undefined;
  error?: string | undefined;
  hint?: string | undefined;
  required?: boolean;
  minlength?: number;
  maxlength?: number;
  inputmode?: 'numeric' | 'text' | 'email';
  pattern?: string;
  autofocus?: boolean;
}

/**
 * A labelled input. An error is tied to its field (aria-invalid,
 * aria-describedby), and the first field in error gets `autofocus` (the
 * caller decides which): focus lands on it without any script.
 */
export function field(f: FieldOptions, t: Messages): Html {
  const id = f.id ?? `f-${f.name}`;
  const described = [f.hint ? `${id}-hint` : '', f.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return html`<div class="field">
<label for="${id}">${f.label}</label>
<input id="${id}" name="${f.name}" type="${f.type ?? 'text'}"${attr('autocomplete', f.autocomplete)}${attr('value', f.type === 'password' ? undefined : f.value)}${f.required ? new Html(' required') : ''}${attr('minlength', f.minlength)}${attr('maxlength', f.maxlength)}${attr('inputmode', f.inputmode)}${attr('pattern', f.pattern)}${attr('aria-describedby', described || undefined)}${f.error ? new Html(' aria-invalid="true"') : ''}${f.autofocus ? new Html(' autofocus') : ''}>
${f.hint ? html`<p class="hint" id="${id}-hint">${f.hint}</p>` : ''}
${f.error ? html`<p class="field-error" id="${id}-error"><span class="sr">${t.a11y.errorPrefix} </span>${f.error}</p>` : ''}
</div>`;
}

function attr(name: string, value: string | number | undefined): Html {
  return value === undefined || value === '' ? new Html('') : html` ${new Html(name)}="${String(value)}"`;
}

/** The hidden fields every form carries: the CSRF token and, when there is one, where to return. */
export function formFields(kit: PageKit): Html {
  return html`<input type="hidden" name="csrf" value="${kit.csrf}">${kit.returnTo ? html`<input type="hidden" name="return_to" value="${kit.returnTo}">` : ''}`;
}

/** A message for the whole form (role=alert, so screen readers announce it). */
export function alert(message: string | undefined): Html {
  return message ? html`<div class="alert" role="alert">${message}</div>` : html``;
}

export function notice(message: string | undefined): Html {
  return message ? html`<div class="notice" role="status">${message}</div>` : html``;
}

/** Which field gets focus: the first one in error, in form order. */
export function firstError(errors: Record<string, string | undefined>, order: readonly string[]): string | undefined {
  return order.find((name) => errors[name] !== undefined);
}
