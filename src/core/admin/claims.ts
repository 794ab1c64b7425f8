import { SignetError } from '../../errors.js';

/**
 * Roles and app data: what an operator (never the user) grants an account, and
 * apps authorise on. Both ride in every access token, so both are bounded: a
 * token must stay under TOKEN_SIZE_BUDGET (core/tokens.ts) whatever is stored.
 */

// `roles` (RFC 9068 §2.2.3.1 names it among the SCIM attributes) and the app claim, a collision-resistant
// name (RFC 7519 §4.2): defined with the verifier, which reads them.
export { APP_CLAIM, ROLES_CLAIM } from '../../verify/jwt.js';

export const MAX_ROLES = 10;
export const ROLE_NAME = /^[a-z][a-z0-9_.:-]{0,31}$/;
/** Bytes of the app data serialized as JSON. */
export const MAX_APP_METADATA_BYTES = 1024;
const MAX_DEPTH = 4;

/** Sorted, de-duplicated role names, or `validation_failed` naming the field. */
export function validateRoles(roles: readonly unknown[], field = 'roles'): string[] {
  const bad = roles.find((r) => typeof r !== 'string' || !ROLE_NAME.test(r));
  if (bad !== undefined) throw invalid(field, `a role is 1 to 32 of a-z 0-9 _ . : - starting with a letter (got ${JSON.stringify(bad)})`);
  const unique = [...new Set(roles as string[])].sort();
  if (unique.length > MAX_ROLES) throw invalid(field, `at most ${MAX_ROLES} roles`);
  return unique;
}

/** A JSON object of at most MAX_APP_METADATA_BYTES and MAX_DEPTH levels, or `validation_failed`. */
export function validateAppMetadata(value: unknown, field = 'appMetadata'): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(field, 'must be a JSON object');
  if (depth(value) > MAX_DEPTH) throw invalid(field, `at most ${MAX_DEPTH} levels deep`);
  const size = Buffer.byteLength(JSON.stringify(value));
  if (size > MAX_APP_METADATA_BYTES) throw invalid(field, `at most ${MAX_APP_METADATA_BYTES} bytes as JSON (got ${size})`);
  return value as Record<string, unknown>;
}

/** The largest roles and app data a user can hold: sizes the worst-case token at start. */
export function largestClaims(): { roles: string[]; appMetadata: Record<string, unknown> } {
  const roles = Array.from({ length: MAX_ROLES }, (_, i) => `r${i}${'x'.repeat(29)}`);
  // `"k":"…"` inside `{}`: the string fills the byte budget, and JSON escapes of `"` would not fit it anyway.
  return { roles, appMetadata: { k: 'v'.repeat(MAX_APP_METADATA_BYTES - 8) } };
}

function depth(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let deepest = 0;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depth(child));
  return deepest + 1;
}

function invalid(field: string, message: string): SignetError {
  return new SignetError('validation_failed', { details: [{ field, message }] });
}
