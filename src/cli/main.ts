#!/usr/bin/env node
import { ConfigError, describeOptions, loadConfig } from '../config.js';
import { join } from 'node:path';
import { KEY_FILE } from '../core/secrets.js';
import { startServer } from '../server.js';
import { auditCommand } from './audit.js';
import { createLogger, createServices } from '../services.js';

const USAGE = `Usage: signet <command>

Commands:
  serve          Start the server (runs migrations, creates keys on first start)
  migrate        Apply database migrations and exit
  keys list      Show signing keys and their states
  keys rotate    Publish a new signing key; it signs after KEY_ROTATION_OVERLAP seconds
  mail failed    Messages given up on after every retry (recipient, template, last error)
  audit verify   Check the audit log's keyed hash chain; exit 1 at the first broken entry
  audit head     Print the chain's head (seq:hash) to record outside the database
  audit reanchor Re-key an audit log written by Signet 0.1 (once, after upgrading)
  audit list --user <id> [--limit N]
                 A user's security events, newest first
  help           This text

Settings (environment variables, or a JSON file named by SIGNET_CONFIG):
${describeOptions()}
`;

async function main(args: string[]): Promise<number> {
  const [command = 'serve', sub] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve': {
      const running = await startServer({ config });
      const { logger } = running.signet.services;
      if (config.dev) logger.warn('SIGNET_DEV is on: development mode, never use it in production');
      if (!config.rateLimits) logger.warn('RATE_LIMITS=off: no rate limits or brute-force throttling; only for test rigs');
      if (!config.masterSecret) {
        logger.warn(
          `SIGNET_SECRET is not set: secrets at rest are sealed with ${join(config.dataDir, KEY_FILE)}; back it up apart from the database, and set SIGNET_SECRET when several instances share one`,
        );
      }
      logger.info(
        { url: running.url, storage: running.signet.services.db.dialect, alg: running.signet.services.keyring.algorithm },
        `Signet listening on ${running.url}`,
      );
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down');
        running.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      return -1;
    }
    case 'migrate':
    case 'keys': {
      if (command === 'keys' && sub !== 'list' && sub !== 'rotate') {
        process.stderr.write(`Unknown keys command "${sub ?? ''}": use keys list or keys rotate.\n`);
        return 2;
      }
      const services = await createServices(config, { logger: createLogger({ logLevel: 'warn' }) });
      try {
        if (command === 'keys' && sub === 'rotate') {
          const key = await services.keyring.rotate();
          process.stdout.write(`New key ${key.kid} (${key.alg}) published; it signs from ${new Date(key.activatesAt).toISOString()}\n`);
        }
        if (command === 'keys') {
          for (const key of services.keyring.list())
            process.stdout.write(`${key.kid}  ${key.alg}  ${key.state.padEnd(8)}  activates ${new Date(key.activatesAt).toISOString()}\n`);
        } else {
          process.stdout.write(`Database is at the latest migration (${services.db.dialect}).\n`);
        }
      } finally {
        await services.close();
      }
      return 0;
    }
    case 'mail': {
      if (sub !== 'failed') {
        process.stderr.write('Unknown mail command: use mail failed.\n');
        return 2;
      }
      const services = await createServices(config, { logger: createLogger({ logLevel: 'warn' }) });
      try {
        const failed = await services.mailer.failed();
        if (failed.length === 0) process.stdout.write('No failed mail.\n');
        for (const m of failed) {
          process.stdout.write(`${m.failedAt.toISOString()}  ${m.template.padEnd(16)}  ${m.recipient}  after ${m.attempts} attempts: ${m.lastError ?? ''}\n`);
        }
      } finally {
        await services.close();
      }
      return 0;
    }
    case 'audit': {
      const services = await createServices(config, { logger: createLogger({ logLevel: 'warn' }) });
      try {
        return await auditCommand(services, args.slice(1));
      } finally {
        await services.close();
      }
    }
    default:
      process.stderr.write(`Unknown command "${command}".\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`Configuration error: ${error.message}\n`);
    else process.stderr.write(`signet: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
