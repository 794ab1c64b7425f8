import SQLite from 'better-sqlite3';
import pg from 'pg';
import { newAccount } from '../helpers.js';

/** The emails of these accounts that the database holds. */
export async function storedEmails(database: { sqliteFile?: string; postgresUrl?: string }, emails: string[]): Promise<Set<string>> {
  const keys = emails.map((e) => e.toLowerCase());
  if (database.sqliteFile) {
    const db = new SQLite(database.sqliteFile, { readonly: true });
    try {
      const rows = db.prepare(`select email_key from users`).all() as { email_key: string }[];
      const wanted = new Set(keys);
      return new Set(rows.map((r) => r.email_key).filter((e) => wanted.has(e)));
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: database.postgresUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ email_key: string }>('select email_key from users where email_key = any($1)', [keys]);
    return new Set(rows.map((r) => r.email_key));
  } finally {
    await client.end();
  }
}

export interface Outcome {
  email: string;
  status: number | 'error';
  startedAt: number;
  endedAt: number;
}

/**
 * `clients` loops sending sign-ups until `stopped()`; each loop ends at its
 * first connection error once `stopping()` (the server no longer accepts).
 */
export function signUpLoad(url: string | (() => string), clients: number, stopping: () => boolean): { outcomes: Outcome[]; done: Promise<void> } {
  const outcomes: Outcome[] = [];
  const loop = async () => {
    for (;;) {
      const account = newAccount();
      const startedAt = performance.now();
      try {
        const response = await fetch(`${typeof url === 'string' ? url : url()}/auth/signup`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(account),
        });
        await response.arrayBuffer();
        outcomes.push({ email: account.email, status: response.status, startedAt, endedAt: performance.now() });
      } catch {
        outcomes.push({ email: account.email, status: 'error', startedAt, endedAt: performance.now() });
        if (stopping()) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  return { outcomes, done: Promise.all(Array.from({ length: clients }, loop)).then(() => undefined) };
}
