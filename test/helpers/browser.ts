/**
 * A headless Chromium for the dashboard's tests (Debian's `chromium`, which
 * `make system-deps` installs), closed when the test ends, and screenshots
 * kept under `.tmp/test-artifacts/<name>/` for a person to look at.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A browser for the test `t`; closed at its end. */
export async function launchBrowser(t: ExecutionContext): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH}: make system-deps installs it`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A page whose uncaught errors are collected in `errors`. */
export async function watchedPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return { page, errors };
}

/**
 * Saves full-page screenshots as `.tmp/test-artifacts/<name>/<step>.png`
 * (relative to the repository) and logs each path.
 */
export async function screenshots(
  t: ExecutionContext,
  name: string,
): Promise<(page: Page, step: string) => Promise<void>> {
  const dir = join(REPO_ROOT, '.tmp', 'test-artifacts', name);
  await mkdir(dir, { recursive: true });
  return async (page, step) => {
    const path = join(dir, `${step}.png`);
    await page.screenshot({ path, fullPage: true });
    t.log(`screenshot: ${path}`);
  };
}
