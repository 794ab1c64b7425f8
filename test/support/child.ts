import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

/**
 * Signet as operators run it: `node dist/cli/main.js serve` in a child process,
 * for the tests that send it signals (SIGTERM, kill -9). The build is made once
 * per source state under node_modules/.cache/ (out of lint's way, where
 * node_modules still resolve) and shared by every test process.
 */
const ROOT = join(import.meta.dirname, '..', '..');

function sourceHash(): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(relative(ROOT, path)).update(readFileSync(path));
    }
  };
  walk(join(ROOT, 'src'));
  return hash.digest('hex').slice(0, 16);
}

let built: Promise<string> | undefined;

/** Compiles src/ (as `npm run build` does) into a directory inside the repository, so node_modules resolve. */
export function buildOnce(): Promise<string> {
  built ??= (async () => {
    const out = join(ROOT, 'node_modules', '.cache', 'signet-test', `dist-${sourceHash()}`);
    if (existsSync(join(out, 'cli', 'main.js'))) return out;
    const tmp = `${out}.tmp-${process.pid}`;
    await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', tmp], {
      cwd: ROOT,
    });
    cpSync(join(ROOT, 'src/http/pages/passkeys.browser.js'), join(tmp, 'http/pages/passkeys.browser.js'));
    try {
      renameSync(tmp, out);
    } catch {
      // Another test process finished the same build first.
      rmSync(tmp, { recursive: true, force: true });
    }
    return out;
  })();
  return built;
}

export interface ChildServer {
  url: string;
  process: ChildProcess;
  /** Every log line so far (pino JSON, parsed). */
  logs: Record<string, unknown>[];
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `signet serve` with these settings (on top of a quiet, loopback, test-speed base) and waits until it listens. */
export async function spawnSignet(env: Record<string, string>): Promise<ChildServer> {
  const dist = await buildOnce();
  const child = spawn(process.execPath, [join(dist, 'cli', 'main.js'), 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      PUBLIC_URL: 'http://signet.test',
      LOG_LEVEL: 'info',
      EMAIL_VERIFICATION: 'off',
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_TIME_COST: '1',
      HASH_CONCURRENCY: '2',
      RATE_LIMITS: 'off',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (typeof entry.url === 'string' && String(entry.msg).startsWith('Signet listening')) resolve(entry.url);
        } catch {
          /* not a log line */
        }
      }
    });
    void exited.then(({ code }) => reject(new Error(`signet serve exited (${code}) before listening: ${stderr}`)));
  });
  return { url, process: child, logs, exited };
}
