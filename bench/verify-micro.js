// In-process verification rates of one real Signet access token (RS256):
// signet/verify's verify() with its verified-token cache, the same without
// the cache (every call checks the signature with node:crypto), and jose's
// jwtVerify on a local JWKS (WebCrypto) for comparison, awaited one at a time
// and, for jose, also many at once (its WebCrypto work runs on libuv's pool).
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createVerifier } from '../dist/verify/index.js';

/**
 * The cases to time. `jwks` is the JSON Signet served at jwksUri (jose's local
 * key set is built from it, so no case touches the network while timed).
 */
export async function verificationCases({ issuer, audience, jwksUri, jwks, token }) {
  const options = { issuer, audience, algorithms: ['RS256'], jwksUri };
  const cached = createVerifier(options);
  const uncached = createVerifier({ ...options, cacheSize: 0 });
  await Promise.all([cached.refresh(), uncached.refresh()]);
  const localJwks = createLocalJWKSet(jwks);
  // The checks signet/verify makes, asked of jose explicitly (it requires exp only when told to).
  const joseOptions = { issuer, audience, algorithms: ['RS256'], typ: 'at+jwt', requiredClaims: ['exp', 'iat', 'sub', 'sid'] };
  const jose = async () => (await jwtVerify(token, localJwks, joseOptions)).payload;
  const cases = [
    { name: 'signet/verify verify(), cache on', run: () => cached.verify(token), inFlight: 1 },
    { name: 'signet/verify verify(), cacheSize 0', run: () => uncached.verify(token), inFlight: 1 },
    { name: 'jose jwtVerify, createLocalJWKSet', run: jose, inFlight: 1 },
    { name: 'jose jwtVerify, 32 in flight', run: jose, inFlight: 32 },
  ];
  // Each case must accept the token before it is timed.
  for (const c of cases) {
    const claims = await c.run();
    if (typeof claims?.sub !== 'string') throw new Error(`${c.name}: the token did not verify`);
  }
  return {
    cases,
    close() {
      cached.close();
      uncached.close();
    },
  };
}

/**
 * Calls `run` in `inFlight` sequential loops (each awaits its call before the
 * next) for `seconds` after `warmupSeconds`; resolves to calls/s and the mean
 * time per call of one loop, in microseconds.
 */
export async function verificationRate({ run, inFlight }, seconds, warmupSeconds) {
  const BATCH = 64;
  const loop = async (deadline) => {
    let count = 0;
    while (performance.now() < deadline) {
      for (let i = 0; i < BATCH; i++) await run();
      count += BATCH;
    }
    return count;
  };
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  await Promise.all(Array.from({ length: inFlight }, () => loop(warmupEnd)));
  const start = performance.now();
  const counts = await Promise.all(Array.from({ length: inFlight }, () => loop(start + seconds * 1000)));
  const elapsedSeconds = (performance.now() - start) / 1000;
  const count = counts.reduce((a, b) => a + b, 0);
  return { count, elapsedSeconds, rate: count / elapsedSeconds, meanMicros: (1e6 * elapsedSeconds * inFlight) / count };
}
