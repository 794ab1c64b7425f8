import type { AuditAnchor, AuditLog } from '../core/audit.js';

export const AUDIT_USAGE = `Usage: signet audit verify [--anchor <seq>:<hash>]
       signet audit head
       signet audit reanchor
       signet audit list --user <id> [--limit N]

  verify    Walk the keyed hash chain; exit 1 and name the first broken entry if it was altered.
            --anchor checks the log against a head recorded outside the database earlier
  head      Print the newest entry's seq and hash: record it somewhere the database's writers cannot reach
  reanchor  Once, after upgrading from Signet 0.1: re-key a log written with unkeyed SHA-256
            (refused if the chain is broken)
  list      A user's security events, newest first (default 50, at most 10000)
`;

const MAX_LIMIT = 10_000;

/**
 * `signet audit …`; `args` are the words after `audit`. Returns the exit code:
 * 0 done, 1 chain broken, 2 usage error.
 */
export async function auditCommand(services: { audit: AuditLog }, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify') {
    const anchor = rest.length === 0 ? undefined : rest[0] === '--anchor' && rest.length === 2 ? parseAnchor(rest[1]) : null;
    if (anchor === null) return usage('verify takes only --anchor <seq>:<hash>');
    const result = await services.audit.verify(anchor ? { anchor } : {});
    if (result.ok) {
      process.stdout.write(
        `OK: audit log intact, ${result.entries} entr${result.entries === 1 ? 'y' : 'ies'}${anchor ? `, entry ${anchor.seq} matches the anchor` : ''}\n`,
      );
      return 0;
    }
    process.stdout.write(`BROKEN at entry ${result.brokenAt}: ${result.reason}\n`);
    return 1;
  }
  if (sub === 'head' && rest.length === 0) {
    const head = await services.audit.head();
    process.stdout.write(`${head.seq}:${head.hash}\n`);
    return 0;
  }
  if (sub === 'reanchor' && rest.length === 0) {
    try {
      const { entries, rekeyed } = await services.audit.reanchor();
      process.stdout.write(`Re-keyed ${rekeyed} of ${entries} entries; \`signet audit verify\` now checks them under the key.\n`);
      return 0;
    } catch (error) {
      process.stdout.write(`REFUSED: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
  }
  if (sub === 'list') {
    const options = listOptions(rest);
    if (typeof options === 'string') return usage(options);
    for (const e of await services.audit.forUser(options.user, { limit: options.limit })) {
      process.stdout.write(
        `${e.seq}  ${new Date(e.at).toISOString()}  ${e.event}  ip=${e.ip ?? '-'}  session=${e.sessionId ?? '-'}  ${JSON.stringify(e.details)}\n`,
      );
    }
    return 0;
  }
  return usage(sub === undefined ? 'missing audit command' : `unknown audit command "${[sub, ...rest].join(' ')}"`);
}

/** `<seq>:<hash>` as `signet audit head` prints it, or undefined. */
function parseAnchor(text: string | undefined): AuditAnchor | null {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text ?? '');
  return match ? { seq: Number(match[1]), hash: match[2] } : null;
}

/** `--user <id> [--limit N]`, or the problem as a string. */
function listOptions(args: string[]): { user: string; limit: number } | string {
  let user: string | undefined;
  let limit = 50;
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (value === undefined) return `${flag} needs a value`;
    if (flag === '--user') user = value;
    else if (flag === '--limit') {
      limit = /^[0-9]+$/.test(value) ? Number(value) : NaN;
      if (!(limit >= 1 && limit <= MAX_LIMIT)) return `--limit must be an integer from 1 to ${MAX_LIMIT}`;
    } else return `unknown option ${flag}`;
  }
  return user === undefined ? '--user <id> is required' : { user, limit };
}

function usage(problem: string): number {
  process.stderr.write(`${problem}\n\n${AUDIT_USAGE}`);
  return 2;
}
