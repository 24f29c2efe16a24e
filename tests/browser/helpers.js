'use strict';
/* What the browser tests share: Debian's headless Chromium, a browser
 * context that reaches nothing but the page's own origin, polling for a
 * condition, and reading the page's clocks. */

const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  });
}

/* The page must never reach anything but its own origin (no CDNs). */
async function ownOriginOnly(context, url) {
  const host = new URL(url).host;
  await context.route('**/*', (route) => (new URL(route.request().url()).host === host ? route.continue() : route.abort()));
}

/* Poll until fn() is truthy; fail with `what` after timeout ms. */
async function until(fn, what, timeout, interval = 50) {
  const t0 = Date.now();
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() - t0 > timeout) throw new Error('timed out: ' + what + (last instanceof Error ? ' (' + last.message + ')' : ''));
    await new Promise((r) => setTimeout(r, interval));
  }
}

/* "1:05" -> 65 */
function secondsOf(timerText) {
  return timerText.split(':').map(Number).reduce((a, b) => a * 60 + b, 0);
}

module.exports = { CHROMIUM, launch, ownOriginOnly, until, secondsOf };
