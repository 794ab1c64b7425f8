import { SignetError } from '../../errors.js';
import { PASSWORD_MAX_LENGTH, VERIFY_LIMITS, parseHash, passwordLength } from '../passwords.js';

/**
 * Field rules for what an operator writes (CLI, admin API, import): the same
 * rules the public routes apply (http/schemas.ts), in core so every entry
 * point shares them.
 */

/** The WHATWG HTML rule for `<input type=email>`, as http/schemas.ts. */
const WHATWG_EMAIL = /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export function emailProblem(email: string): string | undefined {
  if (email.length > 254) return 'must be at most 254 characters';
  return WHATWG_EMAIL.test(email) ? undefined : 'must be a valid email address';
}

export function usernameProblem(username: string): string | undefined {
  return USERNAME.test(username) ? undefined : 'must be 3 to 32 letters, digits, "_", "." or "-"';
}

export function nameProblem(name: string): string | undefined {
  if (CONTROL.test(name)) return 'must not contain control characters';
  return name.length > 100 ? 'must be at most 100 characters' : undefined;
}

export function passwordProblem(password: string, minLength: number): string | undefined {
  if (CONTROL.test(password)) return 'must not contain control characters';
  const length = passwordLength(password);
  if (length < minLength) return `must be at least ${minLength} characters`;
  return length > PASSWORD_MAX_LENGTH ? `must be at most ${PASSWORD_MAX_LENGTH} characters` : undefined;
}

/** bcrypt below this cost is refused on import: it no longer protects anything. */
export const BCRYPT_MIN_COST = 4;

/**
 * Why an existing hash cannot be imported, or undefined: the format is parsed
 * and the cost bounded, never computed (a million bcrypt checks would take days).
 * Accepted: bcrypt `$2a$`/`$2b$`/`$2y$` at cost 4 to VERIFY_LIMITS.bcryptCost,
 * and Argon2 PHC strings within the verification limits.
 */
export function importedHashProblem(hash: string): { reason: 'unknown_hash_format' | 'hash_cost_out_of_bounds'; message: string } | undefined {
  const parsed = /^\$2x\$/.test(hash) ? undefined : parseHash(hash);
  if (!parsed) return { reason: 'unknown_hash_format', message: 'not a bcrypt ($2a$, $2b$, $2y$) or Argon2 PHC hash' };
  if (parsed.kind === 'bcrypt') {
    if (parsed.cost < BCRYPT_MIN_COST || parsed.cost > VERIFY_LIMITS.bcryptCost) {
      return { reason: 'hash_cost_out_of_bounds', message: `bcrypt cost ${parsed.cost} is outside ${BCRYPT_MIN_COST}–${VERIFY_LIMITS.bcryptCost}` };
    }
    return undefined;
  }
  if (parsed.m > VERIFY_LIMITS.argon2MemoryKiB || parsed.t > VERIFY_LIMITS.argon2TimeCost || parsed.p > VERIFY_LIMITS.argon2Parallelism || parsed.p < 1) {
    return { reason: 'hash_cost_out_of_bounds', message: `argon2 parameters m=${parsed.m},t=${parsed.t},p=${parsed.p} are outside the verification limits` };
  }
  return undefined;
}

/** Throws `validation_failed` listing every problem found, if any. */
export function assertFields(problems: Record<string, string | undefined>): void {
  const details = Object.entries(problems)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([field, message]) => ({ field, message }));
  if (details.length > 0) throw new SignetError('validation_failed', { details });
}
