import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { inject } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * A real browser for the hosted-page suites: Debian's Chromium driven by
 * playwright-core (never a downloaded browser). `.ci/run` installs it; on a
 * machine without it the suites are skipped loudly (test/global-setup.ts).
 */
export const chromiumPath = inject('chromiumPath');

/** Headless, and quiet: nothing of Chromium's reaches the network beyond the test's own servers. */
export async function launchBrowser(): Promise<Browser> {
  if (!chromiumPath) throw new Error('Chromium is not installed (apt-get install -y chromium)');
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

/**
 * axe-core's serious and critical violations on the page as it is now
 * (WCAG 2.1 A/AA and best practices). Injected through the DevTools protocol,
 * so the page's Content-Security-Policy stays enforced while it runs.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  // The callbacks run in the page (no DOM types in this project's compiler settings).
  if (!(await page.evaluate(() => typeof (globalThis as any).axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
  const results: { violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] } = await page.evaluate(
    (runOnly) => (globalThis as any).axe.run((globalThis as any).document, { runOnly: { type: 'tag', values: runOnly }, resultTypes: ['violations'] }),
    tags,
  );
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
}

/** Where screenshots go: test-artifacts/ is git-ignored. */
export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'screenshots');

/** Screenshots of the page at desktop width and at 360 px, full length. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const size = page.viewportSize() ?? { width: 1280, height: 800 };
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-360.png`), fullPage: true });
  await page.setViewportSize(size);
}

/** Content-Security-Policy violations the page reports, collected from the console. */
export function cspViolations(page: Page): string[] {
  const seen: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(message.text())) seen.push(message.text());
  });
  return seen;
}

export type { Browser, BrowserContext, Page };
