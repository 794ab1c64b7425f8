import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The hosted pages' only stylesheet and script, served from Signet's own origin
 * so the pages' Content-Security-Policy needs no 'unsafe-inline'. The accent
 * colour is the operator's (BRAND_COLOR); the text on it is black or white,
 * whichever contrasts more.
 */
export interface Asset {
  body: string;
  type: string;
  /** Content hash: the URL carries it, so the file can be cached for good. */
  version: string;
}

export function stylesheet(accent: string): Asset {
  const onAccent = contrastText(accent);
  const body = `:root{color-scheme:light dark;--bg:#fff;--fg:#17181c;--muted:#4a4d57;--card:#fff;--border:#c9ccd4;--field:#fff;--error:#b3261e;--ok:#146c2e;--accent:${accent};--on-accent:${onAccent};--focus:#0b57d0}
@media (prefers-color-scheme:dark){:root{--bg:#111317;--fg:#eceef2;--muted:#b7bac3;--card:#1a1d23;--border:#4b505c;--field:#111317;--error:#ffb4ab;--ok:#7fdc98;--focus:#a8c7fa}}
*{box-sizing:border-box}[hidden]{display:none!important}html{font-size:100%;-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:inherit;text-underline-offset:.2em}a:hover{text-decoration-thickness:2px}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip,.sr{position:absolute;left:-999rem}.skip:focus{left:1rem;top:1rem;background:var(--card);padding:.5rem 1rem;z-index:1}
header{display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap;max-width:44rem;margin:0 auto;padding:1rem}
.brand{display:flex;align-items:center;gap:.5rem;font-weight:600;text-decoration:none}.brand img{height:2rem;width:auto}
nav ul{display:flex;gap:1rem;list-style:none;margin:0;padding:0;flex-wrap:wrap}
main{max-width:28rem;margin:0 auto 3rem;padding:0 1rem}main.wide{max-width:44rem}
h1{font-size:1.6rem;line-height:1.25;margin:1rem 0}h2{font-size:1.2rem;margin:0 0 .75rem}
.lead,.hint{color:var(--muted)}.hint{font-size:.9rem;margin:.25rem 0 0}
section{background:var(--card);border:1px solid var(--border);border-radius:.75rem;padding:1.25rem;margin:0 0 1.25rem}
form{display:grid;gap:1rem;margin:0}form.inline{display:inline}
.field{display:grid;gap:.25rem}label{font-weight:600}
input{font:inherit;color:var(--fg);background:var(--field);border:1px solid var(--border);border-radius:.5rem;padding:.65rem .75rem;width:100%;min-height:2.75rem}
input[aria-invalid=true]{border-color:var(--error);border-width:2px}
.field-error{color:var(--error);font-weight:600;margin:0}
button,.button{font:inherit;font-weight:600;border-radius:.5rem;padding:.65rem 1rem;min-height:2.75rem;cursor:pointer;border:2px solid var(--accent);background:var(--accent);color:var(--on-accent);text-align:center;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:transparent;color:var(--fg);border-color:var(--border)}
button.danger{background:transparent;color:var(--error);border-color:var(--error)}
.alert{border:2px solid var(--error);border-radius:.5rem;padding:.75rem 1rem;margin:0 0 1rem}
.notice{border:2px solid var(--ok);border-radius:.5rem;padding:.75rem 1rem;margin:0 0 1rem}
.links{display:grid;gap:.5rem;margin:1.25rem 0 0}
.actions{display:flex;gap:.75rem;flex-wrap:wrap}.scopes{margin:0 0 1rem;padding-left:1.25rem}
.qr{background:#fff;padding:.5rem;border-radius:.5rem;width:min(14rem,100%);margin:0 auto}.qr svg{display:block;width:100%;height:auto}
code,.secret{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.codes{columns:2;list-style:none;padding:0;margin:0 0 1rem;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:1.05rem}
.sessions{list-style:none;padding:0;margin:0;display:grid;gap:.75rem}.sessions>li{border:1px solid var(--border);border-radius:.5rem;padding:.75rem;display:grid;gap:.5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1rem}dt{color:var(--muted)}dd{margin:0}
.or{text-align:center;color:var(--muted);margin:1rem 0 .5rem}.providers{list-style:none;padding:0;margin:.75rem 0;display:grid;gap:.5rem}.providers .button{display:block}.passkey-box{display:grid;gap:.75rem;margin:0 0 1rem}.passkey-list{margin:0 0 1.25rem}
.tag{font-size:.85rem;font-weight:600;border:1px solid var(--ok);color:var(--ok);border-radius:1rem;padding:0 .5rem;justify-self:start}
@media (max-width:30rem){.codes{columns:1}dl{grid-template-columns:1fr}}
`;
  return { body, type: 'text/css; charset=utf-8', version: hash(body) };
}

/**
 * Progressive enhancement only: every page works without it. Copy buttons are
 * hidden in the HTML and shown by this script.
 */
export function script(): Asset {
  const body = `(()=>{for(const b of document.querySelectorAll('[data-copy]')){const t=document.getElementById(b.dataset.copy);if(!t||!navigator.clipboard)continue;b.hidden=false;b.addEventListener('click',()=>{navigator.clipboard.writeText(t.innerText.trim()).then(()=>{b.textContent=b.dataset.done||b.textContent;});});}})();
`;
  return { body, type: 'text/javascript; charset=utf-8', version: hash(body) };
}

/**
 * The passkey scripts, in the order the pages load them: SimpleWebAuthn's
 * browser bundle (it defines `SimpleWebAuthnBrowser`), then the pages' own
 * ceremonies (passkeys.browser.js). Both are read once, at start.
 */
export function passkeyScripts(): { library: Asset; script: Asset } {
  // The package exports only its entry point (script/index.js), not package.json: go up from there.
  const root = join(dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')), '..');
  const library = withoutSourceMap(readFileSync(join(root, 'dist', 'bundle', 'index.umd.min.js'), 'utf8'));
  // Plain JavaScript next to this file, so it loads from src/ (tests) and dist/ alike.
  const script = withoutSourceMap(readFileSync(new URL('./passkeys.browser.js', import.meta.url), 'utf8'));
  return {
    library: { body: library, type: 'text/javascript; charset=utf-8', version: hash(library) },
    script: { body: script, type: 'text/javascript; charset=utf-8', version: hash(script) },
  };
}

/** Drops a trailing sourceMappingURL comment: the maps are not served. */
function withoutSourceMap(body: string): string {
  return body.replace(/\n?\/\/# sourceMappingURL=\S*\s*$/, '\n');
}

function hash(body: string): string {
  return createHash('sha256').update(body).digest('base64url').slice(0, 12);
}

/** Black or white, whichever contrasts more with `hex` (WCAG relative luminance). */
export function contrastText(hex: string): string {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) ? '#000' : '#fff';
}
