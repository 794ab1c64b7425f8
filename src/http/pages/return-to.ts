/**
 * Where a hosted page may send the browser after sign-in, sign-up, MFA or a
 * reset: a path on Signet's own origin, or a URL on the operator's allow-list
 * (RETURN_URLS). Anything else is dropped, and the page falls back to the
 * account page: no open redirect.
 *
 * The text is judged before any URL parser sees it, because parsers and
 * browsers disagree on the tricky forms: `//evil.com` and `/\evil.com` are
 * other hosts to a browser; `https:evil.com` parses as https://evil.com/;
 * `https://app.example.com@evil.com` is evil.com with a user name; an encoded
 * slash or backslash (`/%2F%2Fevil.com`) may be decoded by whatever reads it
 * next.
 */
const ABSOLUTE = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[^\s\\]*)?$/;
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\s\\\u0000-\u001f\u007f]|%00/i;
/** An encoded slash or backslash in the path (a query may carry encoded URLs, e.g. an OIDC redirect_uri). */
const ENCODED_SLASH = /%(2f|5c)/i;

export function safeReturnTo(raw: string | null | undefined, allowed: { publicUrl: string; returnUrls: readonly string[] }): string | undefined {
  if (!raw || raw.length > 2048 || FORBIDDEN.test(raw) || ENCODED_SLASH.test(raw.split(/[?#]/, 1)[0])) return undefined;
  const own = new URL(allowed.publicUrl);
  if (raw.startsWith('/')) {
    // A path on Signet's own origin: one leading slash, nothing that makes it an authority.
    if (raw.startsWith('//')) return undefined;
    const url = new URL(raw, own.origin);
    return url.origin === own.origin ? `${url.pathname}${url.search}${url.hash}` : undefined;
  }
  if (!ABSOLUTE.test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.username || url.password) return undefined;
  if (url.origin === own.origin) return url.href;
  for (const entry of allowed.returnUrls) {
    const target = new URL(entry);
    if (target.origin !== url.origin) continue;
    // An origin allows any path on it; an entry with a path allows exactly that path.
    if (target.pathname === '/' || target.pathname === url.pathname) return url.href;
  }
  return undefined;
}

/** Origins the browser may be sent to after a form post: the pages' Content-Security-Policy `form-action` must list them. */
export function returnOrigins(returnUrls: readonly string[]): string[] {
  return [...new Set(returnUrls.map((entry) => new URL(entry).origin))];
}
