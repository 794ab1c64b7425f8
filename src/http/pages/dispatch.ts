import { isSignetError } from '../../errors.js';
import type { SignetError } from '../../errors.js';
import { networkKey } from '../../core/limits.js';
import type { Authenticated } from '../../core/sessions.js';
import { decodeUtf8, isFormContentType, readBody } from '../body.js';
import type { AppContext } from '../context.js';
import { clearSessionCookies, cookieSession, readCookie } from '../cookies.js';
import { toSignetError } from '../errors.js';
import type { Route } from '../route.js';
import { html } from './html.js';
import type { PageAssets, PageKit } from './layout.js';
import { resumedRequest } from '../oidc/paths.js';
import { formTokenValid, page, pageKit, seeOther } from './layout.js';

/**
 * Runs a hosted page's row: what the row declares (a signed-in session, the
 * form's CSRF token, a per-client limit) is applied here, before the handler,
 * and every failure answers as a page (never JSON, never a stack trace).
 */
export function pageHandler(r: Route, assets: PageAssets) {
  return async (c: AppContext): Promise<Response> => {
    try {
      if (r.auth === 'page') {
        const auth = await pageSession(c);
        if (!auth) return seeOther(signInFor(c));
        c.set('auth', auth);
      }
      if (r.method !== 'GET') {
        const refused = await readForm(c, r);
        if (refused) return refused(pageKit(c, assets));
      }
      c.set('formTargets', await resumeTargets(c));
      if (r.limit) {
        const { limits } = c.var.services;
        const decision = await limits.take(r.limit, networkKey(c.var.client.ip));
        if (!decision.allowed) {
          const kit = pageKit(c, assets);
          return page(kit, {
            title: kit.t.titles.tooManyRequests,
            body: html`<p>${kit.t.text.tooManyRequests}</p>`,
            status: 429,
            headers: { 'retry-after': String(decision.resetSeconds) },
          });
        }
      }
      return await r.handle(c, undefined, {});
    } catch (thrown) {
      return errorPage(c, pageKit(c, assets, c.get('form')), toSignetError(thrown), thrown);
    }
  };
}

/**
 * The form of a POST: from this site only (Origin, Sec-Fetch-Site), a form
 * media type, within the body limit, with the right CSRF token. Returns a
 * refusal page builder when it is not.
 */
async function readForm(c: AppContext, r: Route): Promise<((kit: PageKit) => Response) | undefined> {
  const { config } = c.var.services;
  // With Referrer-Policy: no-referrer a browser sends `Origin: null` on its form posts; Sec-Fetch-Site and the
  // form token still tell another site's post apart.
  const origin = c.req.header('origin');
  const crossSite =
    r.csrf !== 'cross-site' &&
    ((origin !== undefined && origin !== 'null' && origin !== new URL(config.publicUrl).origin) ||
      c.req.header('sec-fetch-site')?.toLowerCase() === 'cross-site');
  if (crossSite) return (kit) => page(kit, { title: kit.t.titles.refused, body: html`<p>${kit.t.text.refused}</p>`, status: 403 });
  if (!isFormContentType(c.req.header('content-type') ?? null)) {
    return (kit) => page(kit, { title: kit.t.titles.refused, body: html`<p>${kit.t.text.refused}</p>`, status: 415 });
  }
  let form: URLSearchParams;
  try {
    form = new URLSearchParams(decodeUtf8(await readBody(c.req.raw, config.bodyLimit)));
  } catch {
    return (kit) => page(kit, { title: kit.t.titles.refused, body: html`<p>${kit.t.text.refused}</p>`, status: 400 });
  }
  c.set('form', form);
  if (r.csrf === 'form' && !formTokenValid(c, form.get('csrf'))) {
    // Most often an expired form cookie (a page left open for a day): say so and let the user send it again.
    return (kit) =>
      page(kit, {
        title: kit.t.titles.refused,
        body: html`<p>${kit.t.errors.formExpired}</p>
<p><a href="${c.req.path}${kit.returnTo ? `?return_to=${encodeURIComponent(kit.returnTo)}` : ''}">${kit.t.buttons.continue}</a></p>`,
        status: 403,
      });
  }
  return undefined;
}

/**
 * A page on the way back to a client (its return_to resumes an authorization
 * request) may lead there: its forms' redirects end at the client's redirect URI.
 */
async function resumeTargets(c: AppContext): Promise<string[]> {
  const requestId = resumedRequest(c.get('form')?.get('return_to') ?? c.req.query('return_to'));
  const target = requestId === undefined ? undefined : await c.var.services.oidc.authorizer.redirectTarget(requestId);
  return target === undefined ? [] : [target];
}

/**
 * The signed-in session of a page: the access cookie, or, once it has expired,
 * the refresh cookie rotated here on the server (so a page open for hours keeps
 * working without script). Undefined when neither works.
 */
export async function pageSession(c: AppContext): Promise<Authenticated | undefined> {
  const { sessions } = c.var.services;
  const access = readCookie(c, 'access');
  if (access) {
    try {
      return await sessions.authenticate(access);
    } catch (error) {
      if (!isSignetError(error, 'invalid_token')) throw error;
    }
  }
  const refresh = readCookie(c, 'refresh');
  if (!refresh) return undefined;
  try {
    const grant = await sessions.refresh(refresh);
    cookieSession(c, grant);
    return await sessions.authenticate(grant.accessToken);
  } catch (error) {
    if (!isSignetError(error, 'invalid_refresh_token') && !isSignetError(error, 'invalid_token')) throw error;
    clearSessionCookies(c);
    return undefined;
  }
}

/** The sign-in page, returning here afterwards. */
function signInFor(c: AppContext): string {
  const { pagesPrefix } = c.var.services.config;
  const here = c.req.method === 'GET' ? `${c.req.path}${new URL(c.req.url).search}` : `${pagesPrefix}account`;
  return `${pagesPrefix}sign-in?${new URLSearchParams({ return_to: here }).toString()}`;
}

function errorPage(c: AppContext, kit: PageKit, error: SignetError, thrown: unknown): Response {
  const { t } = kit;
  const retry: Record<string, string> = error.retryAfter === undefined ? {} : { 'retry-after': String(error.retryAfter) };
  switch (error.code) {
    case 'rate_limited':
      return page(kit, { title: t.titles.tooManyRequests, body: html`<p>${t.text.tooManyRequests}</p>`, status: 429, headers: retry });
    case 'unavailable':
      return page(kit, { title: t.titles.unavailable, body: html`<p>${t.text.unavailable}</p>`, status: 503, headers: retry });
    case 'not_found':
    case 'passkey_not_found':
      return page(kit, { title: t.titles.notFound, body: html`<p>${t.text.notFound}</p>`, status: 404 });
    case 'csrf_failed':
      return page(kit, { title: t.titles.refused, body: html`<p>${t.text.refused}</p>`, status: 403 });
    case 'payload_too_large':
    case 'unsupported_media_type':
    case 'invalid_json':
    case 'validation_failed':
      return page(kit, { title: t.titles.refused, body: html`<p>${t.text.refused}</p>`, status: error.status });
    default: {
      const cause = error.cause instanceof Error ? error.cause : thrown instanceof Error ? thrown : new Error(String(thrown));
      if (!c.req.raw.signal.aborted) {
        c.var.services.logger.error(
          { reqId: c.var.requestId, code: error.code, err: { type: cause.name, message: cause.message, stack: cause.stack } },
          'page failed',
        );
      }
      return page(kit, { title: t.titles.error, body: html`<p>${t.text.error(c.var.requestId)}</p>`, status: error.status >= 500 ? error.status : 500 });
    }
  }
}
