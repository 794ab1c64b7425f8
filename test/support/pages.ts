/**
 * A form-posting client for the hosted pages without a browser: it keeps
 * cookies like one (a jar keyed by name), follows nothing on its own, and
 * sends each form back with the CSRF token the page it came from carried.
 */
export interface PageReply {
  status: number;
  headers: Headers;
  text: string;
  /** The `Location` of a redirect, if any. */
  location: string | null;
}

export class PageClient {
  readonly cookies = new Map<string, string>();
  #csrf: string | undefined;

  constructor(
    readonly base: string,
    readonly headers: Record<string, string> = {},
  ) {}

  /** GETs a page (remembering its CSRF token for the next post). */
  async get(path: string, headers: Record<string, string> = {}): Promise<PageReply> {
    const reply = await this.#send(path, { method: 'GET', headers });
    this.#csrf = csrfIn(reply.text) ?? this.#csrf;
    return reply;
  }

  /** POSTs a form, with the CSRF token of the last page unless `fields.csrf` is given. */
  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<PageReply> {
    const body = new URLSearchParams({ ...(this.#csrf !== undefined ? { csrf: this.#csrf } : {}), ...fields });
    const reply = await this.#send(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: body.toString(),
    });
    this.#csrf = csrfIn(reply.text) ?? this.#csrf;
    return reply;
  }

  /** Follows a redirect answer with a GET. */
  async follow(reply: PageReply): Promise<PageReply> {
    if (!reply.location) throw new Error(`not a redirect (${reply.status})`);
    const url = new URL(reply.location, this.base);
    return this.get(url.pathname + url.search);
  }

  async #send(path: string, init: { method: string; headers: Record<string, string>; body?: string }): Promise<PageReply> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(this.base + path, {
      method: init.method,
      redirect: 'manual',
      headers: { origin: new URL(this.base).origin, ...this.headers, ...(cookie ? { cookie } : {}), ...init.headers },
      body: init.body,
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const [name, ...rest] = pair.split('=');
      const value = rest.join('=');
      const gone = value === '' || attributes.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (gone) this.cookies.delete(name.trim());
      else this.cookies.set(name.trim(), value);
    }
    return { status: response.status, headers: response.headers, text: await response.text(), location: response.headers.get('location') };
  }
}

export function csrfIn(html: string): string | undefined {
  return /name="csrf" value="([^"]+)"/.exec(html)?.[1];
}
