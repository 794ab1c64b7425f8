// Hosted pages: server time and weight of each page (`npm run -s build && node bench/pages.js`).
//
// Starts the built server in a child process (defaults, RATE_LIMITS=off), signs one user
// in through the sign-in page to get its cookies, then GETs every page 200 times one
// after the other and prints the median and p99 time to the last byte on loopback (the
// server's time: no network, no rendering), and the bytes of the HTML, of the stylesheet
// and the script it loads, raw and gzipped.
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 200;
const configModule = await import(join(ROOT, 'dist/config.js'));
const configEnvNames = configModule.OPTIONS.map((o) => o.env);
const server = await startServer({ root: ROOT, configEnvNames, env: { RATE_LIMITS: 'off' } });
const base = server.url;
const jar = new Map();
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const remember = (response) => {
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const [name, ...value] = pair.split('=');
    jar.set(name, value.join('='));
  }
};

try {
  const account = { email: `bench.${Date.now()}@example.com`, password: 'a bench password of some length', username: `bench_${Date.now()}` };
  await fetch(`${base}/auth/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(account) });
  const signInPage = await fetch(`${base}/sign-in`);
  remember(signInPage);
  const csrf = /name="csrf" value="([^"]+)"/.exec(await signInPage.text())[1];
  const signedIn = await fetch(`${base}/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(), origin: new URL(base).origin },
    body: new URLSearchParams({ csrf, identifier: account.email, password: account.password }).toString(),
  });
  remember(signedIn);
  if (signedIn.status !== 303) throw new Error(`sign-in answered ${signedIn.status}`);

  const token = 'A'.repeat(43);
  const pages = [
    ['/sign-in', false],
    ['/sign-up', false],
    ['/forgot-password', false],
    [`/reset-password?token=${token}`, false],
    [`/verify-email?token=${token}`, false],
    ['/account', true],
  ];
  const assets = {};
  console.log(`Hosted pages, ${RUNS} sequential GETs each on ${base} (median / p99 ms to the last byte; bytes raw / gzip)`);
  console.log('page                              median      p99    HTML        CSS        JS');
  for (const [path, signedInOnly] of pages) {
    const times = [];
    let html = '';
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const response = await fetch(`${base}${path}`, { headers: signedInOnly ? { cookie: cookieHeader() } : {} });
      html = await response.text();
      times.push(performance.now() - started);
      if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
    }
    for (const [kind, re] of [
      ['css', /href="([^"]+signet\.css[^"]*)"/],
      ['js', /src="([^"]+signet\.js[^"]*)"/],
    ]) {
      const url = re.exec(html)?.[1];
      if (url && !assets[kind]) assets[kind] = await (await fetch(`${base}${url.replace(/&amp;/g, '&')}`)).text();
    }
    times.sort((a, b) => a - b);
    const size = (text) => `${String(Buffer.byteLength(text)).padStart(5)}/${String(gzipSync(text).length).padStart(4)}`;
    console.log(
      `${path.replace(/=A+$/, '=…').padEnd(32)} ${times[Math.floor(RUNS / 2)].toFixed(2).padStart(7)}  ${times[Math.floor(RUNS * 0.99)].toFixed(2).padStart(7)}  ${size(html)}  ${size(assets.css ?? '')}  ${size(assets.js ?? '')}`,
    );
  }
} finally {
  await server.stop();
}
