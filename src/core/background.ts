/**
 * Work a request starts but does not wait for (hash upgrades, forgot/resend).
 * Failures go to `onError`, never to the request; `settle()` lets shutdown and
 * tests wait until all of it has finished.
 */
export class BackgroundWork {
  readonly #running = new Set<Promise<void>>();
  readonly #onError: (error: unknown) => void;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  run(work: () => Promise<void>): void {
    const tracked = work().catch(this.#onError);
    this.#running.add(tracked);
    void tracked.finally(() => this.#running.delete(tracked));
  }

  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
