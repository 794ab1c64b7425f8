// Runs password hashing on a dedicated thread, outside libuv's threadpool, so
// a flood of sign-ins cannot delay file, DNS or crypto work queued there.
// Plain JavaScript so the same file loads from src/ (tests) and dist/.
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import argon2 from '@node-rs/argon2';
// bcrypt verifies hashes imported from other apps (upgraded at the first sign-in). Native, as
// Argon2 is: a pure-JS bcrypt answers measurably slower, which told bcrypt accounts apart.
import bcrypt from '@node-rs/bcrypt';

const ARGON2ID = 2;

// Lower this thread's scheduling priority (on Linux, nice is per thread), so
// that when hashes saturate the cores the event loop still gets one at once:
// token checks and other routes stay fast during a sign-in flood. The hashes
// lose nothing when the event loop is idle.
try {
  setPriority(10);
} catch {
  // Not permitted on this platform: hashing still works at normal priority.
}

function run(task) {
  switch (task.op) {
    case 'hash':
      return argon2.hashSync(task.password, { ...task.options, algorithm: ARGON2ID });
    case 'verify-argon2':
      return argon2.verifySync(task.hash, task.password);
    case 'verify-bcrypt':
      return bcrypt.verifySync(task.password, task.hash);
    case 'hash-bcrypt':
      // Only for timing: a dummy of a cost found in the store (see PasswordHasher.calibrate).
      return bcrypt.hashSync(task.password, task.cost);
    default:
      throw new Error(`unknown op ${task.op}`);
  }
}

parentPort.on('message', (task) => {
  try {
    parentPort.postMessage({ id: task.id, ok: true, result: run(task) });
  } catch (error) {
    // The message never carries the password or the hash.
    parentPort.postMessage({ id: task.id, ok: false, message: error instanceof Error ? error.message : 'hash failed' });
  }
});
