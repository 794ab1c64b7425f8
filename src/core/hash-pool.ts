import { Worker } from 'node:worker_threads';
import { SignetError } from '../errors.js';

/** `kind` groups tasks that cost the same (`argon2`, `bcrypt-10`, …) for the per-kind durations in `medianMs`. */
export type HashTask = { kind?: string } & (
  | { op: 'hash'; password: string; options: { memoryCost: number; timeCost: number; parallelism: number } }
  | { op: 'verify-argon2'; password: string; hash: string }
  | { op: 'verify-bcrypt'; password: string; hash: string }
  | { op: 'hash-bcrypt'; password: string; cost: number }
);

export type Priority = 'high' | 'normal';

/**
 * The pool is shutting down: the hash was not computed. Mapped to `503
 * unavailable` (retry elsewhere), never to a wrong password.
 */
export class HashPoolClosedError extends SignetError {
  constructor() {
    super('unavailable', { message: 'The server is shutting down; retry shortly', retryAfter: 1, cause: new Error('hash pool is closed') });
  }
}

export class HashAbortedError extends Error {
  override readonly name = 'HashAbortedError';
  constructor() {
    super('hash abandoned: the client went away');
  }
}

interface Job {
  task: HashTask;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  startedAt: number;
}

export interface HashPoolStats {
  size: number;
  busy: number;
  queued: number;
  /** Typical duration of one hash, ms: the median of the latest 32, whatever their kind. */
  medianMs: number;
  completed: number;
}

/**
 * A fixed set of worker threads, one hash at a time each (as many as cores:
 * Argon2id runs ~20 % faster with two threads than four on two cores), with a
 * FIFO queue per priority in front. The queue length and the median duration
 * give the expected wait that admission control decides on.
 */
export class HashPool {
  readonly #slots: Slot[] = [];
  readonly #queues: Record<Priority, Job[]> = { high: [], normal: [] };
  /** Durations of the latest hashes: their median is what one hash costs now (a cold first hash does not skew it). */
  readonly #recent: number[] = [];
  /** The same per task kind (see HashTask). */
  readonly #recentByKind = new Map<string, number[]>();
  #completed = 0;
  #closed = false;
  #nextId = 0;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.#slots.push(this.#spawn());
  }

  /**
   * Queues a hash. An aborted `signal` (the client went away) takes the job out
   * of the queue if it has not started: nobody computes a hash nobody awaits.
   */
  run(task: HashTask, priority: Priority = 'normal', signal?: AbortSignal): Promise<unknown> {
    if (this.#closed) return Promise.reject(new HashPoolClosedError());
    if (signal?.aborted) return Promise.reject(new HashAbortedError());
    return new Promise((resolve, reject) => {
      const job: Job = { task, resolve, reject };
      const queue = this.#queues[priority];
      const onAbort = () => {
        const index = queue.indexOf(job);
        if (index >= 0) {
          queue.splice(index, 1);
          reject(new HashAbortedError());
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      job.resolve = (value) => (signal?.removeEventListener('abort', onAbort), resolve(value));
      job.reject = (error) => (signal?.removeEventListener('abort', onAbort), reject(error));
      queue.push(job);
      this.#drain();
    });
  }

  /** Expected wait before a hash queued now at `priority` starts, ms (high-priority jobs wait only for each other). */
  expectedWaitMs(priority: Priority = 'normal'): number {
    const ahead = this.#queues.high.length + (priority === 'normal' ? this.#queues.normal.length : 0);
    const busy = this.#slots.every((s) => s.job) ? 1 : 0;
    return (Math.floor(ahead / this.#slots.length) + busy) * this.#typicalMs();
  }

  stats(): HashPoolStats {
    return {
      size: this.#slots.length,
      busy: this.#slots.filter((s) => s.job).length,
      queued: this.#queues.high.length + this.#queues.normal.length,
      medianMs: median(this.#recent),
      completed: this.#completed,
    };
  }

  #typicalMs(): number {
    return median(this.#recent);
  }

  /** The `p`-th percentile (0–1) of the run times of the latest tasks of each kind seen so far, ms. */
  percentileMs(p: number): Map<string, number> {
    return new Map([...this.#recentByKind].map(([kind, durations]) => [kind, percentile(durations, p)]));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const running = this.#slots.flatMap((s) => (s.job ? [s.job] : []));
    for (const slot of this.#slots) slot.job = undefined;
    for (const job of [...running, ...this.#queues.high.splice(0), ...this.#queues.normal.splice(0)]) job.reject(new HashPoolClosedError());
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  #spawn(): Slot {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    const slot: Slot = { worker, job: undefined, startedAt: 0 };
    worker.on('message', (message: { ok: boolean; result?: unknown; message?: string }) => {
      const job = slot.job;
      slot.job = undefined;
      if (job) {
        const took = performance.now() - slot.startedAt;
        remember(this.#recent, took);
        if (job.task.kind !== undefined) {
          let durations = this.#recentByKind.get(job.task.kind);
          if (!durations) this.#recentByKind.set(job.task.kind, (durations = []));
          remember(durations, took);
        }
        this.#completed++;
        if (message.ok) job.resolve(message.result);
        else job.reject(new Error(message.message ?? 'hash failed'));
      }
      this.#drain();
    });
    worker.on('error', (error) => {
      slot.job?.reject(error);
      slot.job = undefined;
    });
    worker.on('exit', () => {
      if (this.#closed) return;
      // A crashed worker is replaced so the pool never shrinks.
      slot.job?.reject(new Error('hash worker exited'));
      const index = this.#slots.indexOf(slot);
      if (index >= 0) this.#slots[index] = this.#spawn();
      this.#drain();
    });
    return slot;
  }

  #drain(): void {
    for (const slot of this.#slots) {
      if (slot.job) continue;
      const job = this.#queues.high.shift() ?? this.#queues.normal.shift();
      if (!job) return;
      slot.job = job;
      slot.startedAt = performance.now();
      slot.worker.postMessage({ ...job.task, id: this.#nextId++ });
    }
  }
}

const RECENT = 32;

function remember(durations: number[], took: number): void {
  durations.push(took);
  if (durations.length > RECENT) durations.shift();
}

function median(durations: readonly number[]): number {
  return percentile(durations, 0.5);
}

function percentile(durations: readonly number[], p: number): number {
  if (durations.length === 0) return 0;
  const sorted = [...durations].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}
