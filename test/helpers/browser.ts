import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { ROOT } from "./processes.js";

/** Debian's Chromium (apt-get install chromium); playwright-core drives it, nothing is downloaded. */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** Where tests save screenshots (gitignored). */
export const TEST_OUTPUT_DIR = join(ROOT, "test-output");

/** A headless Chromium with a fresh profile; `await using` closes it and deletes the profile. */
export interface HeadlessBrowser extends AsyncDisposable {
  newPage(): Promise<Page>;
  /** Saves a screenshot of the page under test-output/ and returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
}

/** Launches headless Chromium with a fresh user-data directory and no background networking. */
export async function launchBrowser(): Promise<HeadlessBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "orderly-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  return {
    newPage: () => context.newPage(),
    async screenshot(page, name) {
      mkdirSync(TEST_OUTPUT_DIR, { recursive: true });
      const path = join(TEST_OUTPUT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async [Symbol.asyncDispose]() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
