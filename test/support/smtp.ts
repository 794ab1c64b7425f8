import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import type { AddressObject, ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server for tests: `smtp-server` on a random loopback port, plain
 * text (no STARTTLS), authentication optional. Every accepted message is parsed
 * with mailparser and kept in `messages`; `rejectNext(n)` makes the next `n`
 * DATA commands fail with a transient SMTP error, to simulate an outage.
 */
export interface CapturedMail {
  /** Envelope recipients (RCPT TO), lower-cased. */
  rcptTo: string[];
  /** Envelope sender (MAIL FROM). */
  mailFrom: string | undefined;
  /** The `From` header. */
  from: { address: string | undefined; name: string }[];
  /** The `To` header addresses. */
  to: string[];
  subject: string;
  text: string;
  html: string;
  /** Raw header lines as received (name: value). */
  headerLines: readonly { key: string; line: string }[];
  parsed: ParsedMail;
  raw: string;
}

export interface TestSmtpServer {
  readonly port: number;
  /** `smtp://127.0.0.1:<port>` */
  readonly url: string;
  readonly messages: CapturedMail[];
  /** DATA commands refused so far (by `rejectNext`). */
  readonly rejected: number;
  /** Refuses the next `count` messages with `responseCode` (default 451, "try again later"). */
  rejectNext(count: number, responseCode?: number): void;
  /** Messages whose envelope recipient is `address` (case-insensitive). */
  to(address: string): CapturedMail[];
  /** Resolves with the first message (already received or arriving) that matches, or rejects after `timeoutMs`. */
  waitFor(predicate: (mail: CapturedMail) => boolean, timeoutMs?: number): Promise<CapturedMail>;
  close(): Promise<void>;
}

function addresses(value: AddressObject | AddressObject[] | undefined): { address: string | undefined; name: string }[] {
  if (!value) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((a) => a.value.map((v) => ({ address: v.address, name: v.name })));
}

/** Starts the server on `port` (0: any free port) of 127.0.0.1. */
export async function startSmtpServer(port = 0): Promise<TestSmtpServer> {
  const messages: CapturedMail[] = [];
  const waiters = new Set<{ predicate: (mail: CapturedMail) => boolean; resolve: (mail: CapturedMail) => void }>();
  let rejectRemaining = 0;
  let rejectCode = 451;
  let rejected = 0;

  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    size: 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (error: Error) => callback(error));
      stream.on('end', () => {
        if (rejectRemaining > 0) {
          rejectRemaining--;
          rejected++;
          const error = new Error('Mailbox temporarily unavailable, try again later') as Error & { responseCode: number };
          error.responseCode = rejectCode;
          callback(error);
          return;
        }
        const raw = Buffer.concat(chunks);
        simpleParser(raw)
          .then((parsed) => {
            const mail: CapturedMail = {
              rcptTo: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
              mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
              from: addresses(parsed.from),
              to: addresses(parsed.to).map((a) => a.address ?? ''),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              headerLines: parsed.headerLines,
              parsed,
              raw: raw.toString('utf8'),
            };
            messages.push(mail);
            for (const waiter of waiters) {
              if (waiter.predicate(mail)) {
                waiters.delete(waiter);
                waiter.resolve(mail);
              }
            }
            callback();
          })
          .catch((error: unknown) => callback(error instanceof Error ? error : new Error(String(error))));
      });
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.server.address() as AddressInfo).port;

  return {
    port: bound,
    url: `smtp://127.0.0.1:${bound}`,
    messages,
    get rejected() {
      return rejected;
    },
    rejectNext(count, responseCode = 451) {
      rejectRemaining = count;
      rejectCode = responseCode;
    },
    to(address) {
      const wanted = address.toLowerCase();
      return messages.filter((m) => m.rcptTo.includes(wanted));
    },
    waitFor(predicate, timeoutMs = 5000) {
      const found = messages.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise<CapturedMail>((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (mail: CapturedMail) => {
            clearTimeout(timer);
            resolve(mail);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching mail within ${timeoutMs} ms (${messages.length} received)`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
