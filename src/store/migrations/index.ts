import type { Migration, MigrationProvider } from 'kysely';
import * as m001 from './001_initial.js';
import * as m002 from './002_account_lifecycle.js';
import * as m003 from './003_audit_log.js';
import * as m004 from './004_defences.js';
import * as m005 from './005_hardening.js';
import * as m007 from './007_passkeys.js';
import * as m008 from './008_oidc.js';
import * as m009 from './009_federation.js';

/** Versioned migrations, applied in name order; never edit one that has shipped. */
const MIGRATIONS: Record<string, Migration> = {
  '001_initial': m001,
  '002_account_lifecycle': m002,
  '003_audit_log': m003,
  '004_defences': m004,
  '005_hardening': m005,
  '007_passkeys': m007,
  '008_oidc': m008,
  '009_federation': m009,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};
