// The three browser engines behind one small driver, for the cross-engine page tests: Debian's
// Chromium (playwright-core), Firefox ESR (puppeteer-core over WebDriver BiDi) and WebKit
// (selenium-webdriver, WebKitWebDriver + MiniBrowser under xvfb-run). Everything a test does
// in a page goes through `run` (a function evaluated in the page), so the three read alike; the
// drivers differ only in how they start, navigate and size the window.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import { Builder } from 'selenium-webdriver';
import { freePort } from './sites.mjs';

export const ENGINES = ['chromium', 'firefox', 'webkit'];
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const WIDTH = 1400;
const HEIGHT = 1000;

/**
 * A browser of `engine` with one page: {engine, goto(url), reload(), run(fn, arg), waitFor(fn,
 * arg, what, timeoutMs), close(), errors}. `errors` collects uncaught page errors where the
 * driver reports them (Chromium and Firefox; classic WebDriver has no such event for WebKit).
 */
export async function launchEngine(engine) {
  const driver = await { chromium: playwright, firefox: firefox, webkit: webkit }[engine]();
  return {
    engine,
    ...driver,
    /**
     * Polls `fn(arg)` in the page until it returns something truthy, which it resolves to. Return
     * plain values: a DOM element or a File does not survive every driver's serialisation.
     */
    async waitFor(fn, arg, what, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const value = await driver.run(fn, arg).catch(() => undefined); // a navigation in between
        if (value) return value;
        if (Date.now() > end) {
          const state = await driver.run(pageState).catch((e) => String(e));
          throw new Error(`${engine}: timed out after ${timeoutMs / 1000} s waiting for ${what}; page state: ${JSON.stringify(state)}`);
        }
        await new Promise((ok) => { setTimeout(ok, 250); });
      }
    },
  };
}

/** The page's status lines and the error messages it shows (for a timeout's message). */
function pageState() {
  return Object.fromEntries(['model-status', 'train-status', 'backend-badge', 'backend-note', 'pool-note', 'model-error', 'task-error', 'train-error', 'shelf-error']
    .map((id) => [id, document.getElementById(id)?.textContent.trim()])
    .filter(([, text]) => text));
}

async function playwright() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return pageDriver(browser, await browser.newPage({ viewport: { width: WIDTH, height: HEIGHT } }));
}

async function firefox() {
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: '/usr/bin/firefox-esr', headless: true, defaultViewport: { width: WIDTH, height: HEIGHT },
  });
  return pageDriver(browser, await browser.newPage());
}

/** Playwright's and Puppeteer's pages answer alike: `run` is their `evaluate`. */
function pageDriver(browser, page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    errors,
    goto: (url) => page.goto(url),
    reload: () => page.reload(),
    run: (fn, arg) => page.evaluate(fn, arg),
    close: () => browser.close(),
  };
}

/** WebKitWebDriver on a virtual display (xvfb-run), driving a fresh MiniBrowser. */
async function webkit() {
  const port = await freePort();
  const server = spawn('xvfb-run', ['-a', '-s', `-screen 0 ${WIDTH + 200}x${HEIGHT + 200}x24`, '/usr/bin/WebKitWebDriver', `--port=${port}`], {
    stdio: 'ignore', detached: true, env: { ...process.env, HOME: mkdtempSync(join(tmpdir(), 'spl-webkit-')) },
  });
  let driver;
  for (let i = 0; !driver; i++) {
    try {
      driver = await new Builder().usingServer(`http://127.0.0.1:${port}`).withCapabilities({
        browserName: 'MiniBrowser', 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
      }).build();
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((ok) => { setTimeout(ok, 200); });
    }
  }
  // The driver, MiniBrowser and Xvfb go with this process even when it ends abruptly.
  const stop = () => { try { process.kill(-server.pid); } catch { /* already gone */ } };
  process.once('exit', stop);
  await driver.manage().setTimeouts({ script: 300_000, pageLoad: 120_000 });
  await driver.manage().window().setRect({ width: WIDTH, height: HEIGHT });
  return {
    errors: [],
    goto: (url) => driver.get(url),
    reload: () => driver.navigate().refresh(),
    async run(fn, arg) {
      // An async script: `fn`'s promise settles it; a throw comes back as a rejection here.
      const out = await driver.executeAsyncScript(`const done = arguments[arguments.length - 1];
        Promise.resolve().then(() => (${fn})(arguments[0]))
          .then((value) => done({ value }), (e) => done({ error: String(e && e.message || e) }));`, arg);
      if (out && 'error' in out) throw new Error(out.error);
      return out?.value;
    },
    async close() {
      await driver.quit().catch(() => {});
      stop();
    },
  };
}
