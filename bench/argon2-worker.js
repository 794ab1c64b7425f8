// One thread of the raw Argon2id measurement: verifySync in a tight loop, the
// same call src/core/hash-worker.js makes, until the deadline the main thread
// sends with 'go'. Reports how many verifications finished and over how long.
import { parentPort, workerData } from 'node:worker_threads';
import argon2 from '@node-rs/argon2';

const { hash, password } = workerData;

// Warm-up, outside the measurement; also proves the hash verifies.
const warm = argon2.verifySync(hash, password);
parentPort.postMessage({ type: 'ready', ok: warm === true });

parentPort.once('message', ({ durationMs }) => {
  const start = performance.now();
  const deadline = start + durationMs;
  let count = 0;
  let failures = 0;
  while (performance.now() < deadline) {
    if (argon2.verifySync(hash, password) !== true) failures++;
    count++;
  }
  parentPort.postMessage({ type: 'done', count, failures, elapsedMs: performance.now() - start });
});
