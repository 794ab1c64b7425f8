import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type TemplateName = 'verify-email' | 'password-reset' | 'password-changed' | 'account-exists' | 'signin-code' | 'signin-link' | 'signin-code-link';

export interface Template {
  subject: string;
  text: string;
  html: string;
}

const layout = (body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{appName}}</title></head>
<body style="font-family: -apple-system, Segoe UI, Roboto, sans-serif; color: #1a1a1a; max-width: 560px; margin: 24px auto; line-height: 1.5">
${body}
<p style="color: #666; font-size: 13px">{{appName}}</p>
</body></html>
`;

/** Built-in templates; an operator overrides any part with files in MAIL_TEMPLATES_DIR. */
export const DEFAULT_TEMPLATES: Record<TemplateName, Template> = {
  'verify-email': {
    subject: 'Confirm your email address',
    text: `Hello,

Confirm that {{email}} is your email address by opening this link:

{{link}}

The link works for {{expiresIn}}. If you did not create an account, ignore this message.
`,
    html: layout(`<p>Hello,</p>
<p>Confirm that <strong>{{email}}</strong> is your email address:</p>
<p><a href="{{link}}" style="background: #1f4fd1; color: #fff; padding: 10px 16px; border-radius: 6px; text-decoration: none">Confirm my email</a></p>
<p>Or open this link: <br><a href="{{link}}">{{link}}</a></p>
<p>The link works for {{expiresIn}}. If you did not create an account, ignore this message.</p>`),
  },
  'password-reset': {
    subject: 'Reset your password',
    text: `Hello,

Someone (hopefully you) asked to reset the password of the account {{email}}. To choose a new password, open this link:

{{link}}

The link works once, for {{expiresIn}}. If you did not ask for this, ignore this message: your password stays as it is.
`,
    html: layout(`<p>Hello,</p>
<p>Someone (hopefully you) asked to reset the password of the account <strong>{{email}}</strong>.</p>
<p><a href="{{link}}" style="background: #1f4fd1; color: #fff; padding: 10px 16px; border-radius: 6px; text-decoration: none">Choose a new password</a></p>
<p>Or open this link: <br><a href="{{link}}">{{link}}</a></p>
<p>The link works once, for {{expiresIn}}. If you did not ask for this, ignore this message: your password stays as it is.</p>`),
  },
  'account-exists': {
    subject: 'Someone tried to sign up with your address',
    text: `Hello,

Someone tried to create an account with {{email}}, which already has one. If it was you, sign in instead; if you forgot your password, reset it here:

{{resetLink}}

If it was not you, you can ignore this message: nothing changed.
`,
    html: layout(`<p>Hello,</p>
<p>Someone tried to create an account with <strong>{{email}}</strong>, which already has one. If it was you, sign in instead, or <a href="{{resetLink}}">reset your password</a>.</p>
<p>If it was not you, you can ignore this message: nothing changed.</p>`),
  },
  'signin-code': {
    subject: 'Your sign-in code: {{code}}',
    text: `Hello,

Your code to sign in to {{appName}} as {{email}} is:

{{code}}

It works once, for {{expiresIn}}. If you did not ask for it, ignore this message: nobody can sign in without the code.
`,
    html: layout(`<p>Hello,</p>
<p>Your code to sign in to {{appName}} as <strong>{{email}}</strong> is:</p>
<p style="font-size: 28px; letter-spacing: 4px; font-weight: bold">{{code}}</p>
<p>It works once, for {{expiresIn}}. If you did not ask for it, ignore this message: nobody can sign in without the code.</p>`),
  },
  'signin-link': {
    subject: 'Your sign-in link',
    text: `Hello,

To sign in to {{appName}} as {{email}}, open this link:

{{link}}

It works once, for {{expiresIn}}. If you did not ask for it, ignore this message.
`,
    html: layout(`<p>Hello,</p>
<p>To sign in to {{appName}} as <strong>{{email}}</strong>:</p>
<p><a href="{{link}}" style="background: #1f4fd1; color: #fff; padding: 10px 16px; border-radius: 6px; text-decoration: none">Sign in</a></p>
<p>Or open this link: <br><a href="{{link}}">{{link}}</a></p>
<p>It works once, for {{expiresIn}}. If you did not ask for it, ignore this message.</p>`),
  },
  'signin-code-link': {
    subject: 'Your sign-in code: {{code}}',
    text: `Hello,

Your code to sign in to {{appName}} as {{email}} is:

{{code}}

Or open this link:

{{link}}

Either works once, for {{expiresIn}}. If you did not ask for it, ignore this message.
`,
    html: layout(`<p>Hello,</p>
<p>Your code to sign in to {{appName}} as <strong>{{email}}</strong> is:</p>
<p style="font-size: 28px; letter-spacing: 4px; font-weight: bold">{{code}}</p>
<p>Or <a href="{{link}}">sign in with this link</a>.</p>
<p>Either works once, for {{expiresIn}}. If you did not ask for it, ignore this message.</p>`),
  },
  'password-changed': {
    subject: 'Your password was changed',
    text: `Hello,

The password of the account {{email}} was changed on {{when}}, and every other session was signed out.

If this was not you, reset your password now: {{resetLink}}
`,
    html: layout(`<p>Hello,</p>
<p>The password of the account <strong>{{email}}</strong> was changed on {{when}}, and every other session was signed out.</p>
<p>If this was not you, <a href="{{resetLink}}">reset your password now</a>.</p>`),
  },
};

/** Reads `<name>.subject.txt`, `<name>.txt` and `<name>.html` overrides from a directory, when present. */
export function loadTemplates(dir: string | undefined): Record<TemplateName, Template> {
  if (!dir) return DEFAULT_TEMPLATES;
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const out = {} as Record<TemplateName, Template>;
  for (const [name, template] of Object.entries(DEFAULT_TEMPLATES) as [TemplateName, Template][]) {
    out[name] = {
      subject: read(`${name}.subject.txt`)?.trim() ?? template.subject,
      text: read(`${name}.txt`) ?? template.text,
      html: read(`${name}.html`) ?? template.html,
    };
  }
  return out;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `{{name}}` substitution; values are HTML-escaped in the HTML part. Unknown names render empty. */
export function render(template: Template, vars: Record<string, string>): Template {
  const fill = (source: string, escape: boolean) =>
    source.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, key: string) => {
      const value = vars[key] ?? '';
      return escape ? value.replace(/[&<>"']/g, (ch) => ESCAPES[ch]) : value;
    });
  // A subject is a header: any line break is removed so nothing can be injected.
  return { subject: fill(template.subject, false).replace(/[\r\n]+/g, ' '), text: fill(template.text, false), html: fill(template.html, true) };
}
