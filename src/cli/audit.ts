import type { AuditLog } from '../core/audit.js';

export const AUDIT_USAGE = `Usage: signet audit verify
       signet audit list --user <id> [--limit N]

  verify   Walk the hash chain; exit 1 and name the first broken entry if it was altered
  list     A user's security events, newest first (default 50, at most 10000)
`;

const MAX_LIMIT = 10_000;

/**
 * `signet audit …`; `args` are the words after `audit`. Returns the exit code:
 * 0 done, 1 chain broken, 2 usage error.
 */
export async function auditCommand(services: { audit: AuditLog }, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify' && rest.length === 0) {
    const result = await services.audit.verify();
    if (result.ok) {
      process.stdout.write(`OK: audit log intact, ${result.entries} entr${result.entries === 1 ? 'y' : 'ies'}\n`);
      return 0;
    }
    process.stdout.write(`BROKEN at entry ${result.brokenAt}: ${result.reason}\n`);
    return 1;
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
