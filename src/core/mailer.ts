import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { Db } from '../store/db.js';
import { claimMail, dueMail, enqueueMail, listFailedMail, markMailFailed, markMailRetry, markMailSent } from '../store/mail.js';
import type { Clock } from './clock.js';
import { uuidv7 } from './crypto.js';
import type { Template, TemplateName } from './mail-templates.js';
import { render } from './mail-templates.js';
import type { Sealer } from './secrets.js';

/** Attempts before a message is given up on and recorded as failed (about 8.5 minutes of retries). */
export const MAIL_MAX_ATTEMPTS = 10;
const LOCK_MS = 60_000;
const BODY_PURPOSE = 'signet mail body v1';

export interface MailerOptions {
  db: Db;
  clock: Clock;
  templates: Record<TemplateName, Template>;
  from: string;
  /** `smtp://…`/`smtps://…`; unset writes each message to `outboxDir` (development). */
  smtpUrl: string | undefined;
  outboxDir: string;
  appName: string;
  /** Seals queued bodies at rest (core/secrets.ts). */
  sealer: Sealer;
  onEvent: (event: string, fields: Record<string, unknown>) => void;
}

/** A message given up on, as the operator sees it. */
export interface FailedMail {
  id: string;
  template: string;
  recipient: string;
  createdAt: Date;
  attempts: number;
  failedAt: Date;
  lastError: string | null;
}

interface Delivery {
  send(message: { from: string; to: string; subject: string; text: string; html: string }): Promise<string | undefined>;
  close(): void;
}

/**
 * Outgoing mail through a durable queue: a message is stored before any
 * attempt, so requests never wait on SMTP and an outage loses nothing. A
 * background loop sends due messages with exponential backoff; one that still
 * fails after MAIL_MAX_ATTEMPTS is recorded as failed (`signet mail failed`).
 */
export class Mailer {
  readonly #options: MailerOptions;
  readonly #delivery: Delivery;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: MailerOptions) {
    this.#options = options;
    this.#delivery = options.smtpUrl ? smtpDelivery(options.smtpUrl) : outboxDelivery(options.outboxDir);
  }

  get transport(): 'smtp' | 'outbox' {
    return this.#options.smtpUrl ? 'smtp' : 'outbox';
  }

  /** Stores a rendered message and wakes the sender; resolves once it is stored, not sent. */
  async enqueue(template: TemplateName, to: string, vars: Record<string, string>): Promise<void> {
    const now = this.#options.clock.now();
    const message = render(this.#options.templates[template], { appName: this.#options.appName, ...vars });
    await enqueueMail(this.#options.db, {
      id: uuidv7(now),
      template,
      recipient: to,
      subject: message.subject,
      // Bodies may hold live single-use links: sealed at rest until sent, then cleared.
      text_body: this.#options.sealer.seal(BODY_PURPOSE, message.text),
      html_body: this.#options.sealer.seal(BODY_PURPOSE, message.html),
      created_at: now,
      attempts: 0,
      next_attempt_at: now,
      locked_until: null,
      sent_at: null,
      failed_at: null,
      last_error: null,
    });
    this.#wake(0);
  }

  /** Messages given up on after every retry, newest first (`signet mail failed`). */
  async failed(limit = 100): Promise<FailedMail[]> {
    const rows = await listFailedMail(this.#options.db, limit);
    return rows.map((m) => ({
      id: m.id,
      template: m.template,
      recipient: m.recipient,
      createdAt: new Date(m.created_at),
      attempts: m.attempts,
      failedAt: new Date(m.failed_at!),
      lastError: m.last_error,
    }));
  }

  /** Starts the background sender (polls every second for due retries). */
  start(): void {
    this.#wake(0);
  }

  /** Sends everything due now; resolves when done. Tests call it after moving the clock. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
    this.#running = this.#sendDue().finally(() => (this.#running = undefined));
    await this.#running;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    while (this.#running) await this.#running;
    this.#delivery.close();
  }

  #wake(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (this.#running) return this.#wake(200);
      this.flush()
        .catch((error: unknown) => this.#options.onEvent('mail.queue_error', { error: error instanceof Error ? error.message : String(error) }))
        .finally(() => this.#wake(1000));
    }, delayMs);
    this.#timer.unref();
  }

  #body(stored: string | null): string {
    return stored === null ? '' : this.#options.sealer.openOrThrow(BODY_PURPOSE, stored, 'a queued mail').value;
  }

  async #sendDue(): Promise<void> {
    const { db, clock, from, onEvent } = this.#options;
    for (;;) {
      const due = await dueMail(db, clock.now(), 20);
      if (due.length === 0) return;
      for (const mail of due) {
        if (this.#closed) return;
        const now = clock.now();
        if (!(await claimMail(db, mail.id, now, LOCK_MS))) continue;
        try {
          const location = await this.#delivery.send({
            from,
            to: mail.recipient,
            subject: mail.subject,
            text: this.#body(mail.text_body),
            html: this.#body(mail.html_body),
          });
          await markMailSent(db, mail.id, clock.now());
          onEvent('mail.sent', { id: mail.id, template: mail.template, ...(location ? { path: location } : {}) });
        } catch (error) {
          const attempts = mail.attempts + 1;
          const reason = error instanceof Error ? error.message.slice(0, 500) : 'send failed';
          // SMTP replies can quote the recipient: the full text stays in the outbox row for the
          // operator (`signet mail failed`); the log line gets the reply code only.
          const smtpCode = (error as { responseCode?: unknown; code?: unknown }).responseCode ?? (error as { code?: unknown }).code ?? 'unknown';
          if (attempts >= MAIL_MAX_ATTEMPTS) {
            await markMailFailed(db, mail.id, attempts, clock.now(), reason);
            onEvent('mail.failed', { id: mail.id, template: mail.template, attempts, smtpCode });
          } else {
            const backoff = Math.min(2 ** (attempts - 1) * 1000, 5 * 60_000);
            await markMailRetry(db, mail.id, attempts, clock.now() + backoff, reason);
            onEvent('mail.retry', { id: mail.id, template: mail.template, attempts, retryInMs: backoff, smtpCode });
          }
        }
      }
      if (due.length < 20) return;
    }
  }
}

/** nodemailer loads with the first message, not at start (~80 ms and ~15 MB a start need not pay). */
const require = createRequire(import.meta.url);
const loadNodemailer = () => require('nodemailer') as typeof nodemailer;

function smtpDelivery(url: string): Delivery {
  let transporter: Transporter | undefined;
  return {
    send: async (message) => {
      await (transporter ??= loadNodemailer().createTransport(url)).sendMail(message);
      return undefined;
    },
    close: () => transporter?.close(),
  };
}

/** Development transport: each message as an .eml file under the data dir, readable without a mail server. */
function outboxDelivery(dir: string): Delivery {
  let transporter: Transporter | undefined;
  return {
    send: async (message) => {
      transporter ??= loadNodemailer().createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
      const info = await transporter.sendMail(message);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const base = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${uuidv7().slice(-12)}`);
      writeFileSync(`${base}.eml`, info.message as Buffer, { mode: 0o600 });
      // The .eml is quoted-printable; a plain-text twin lets a developer read or grep the link.
      writeFileSync(`${base}.txt`, `To: ${message.to}\nSubject: ${message.subject}\n\n${message.text}`, { mode: 0o600 });
      return `${base}.eml`;
    },
    close: () => transporter?.close(),
  };
}
