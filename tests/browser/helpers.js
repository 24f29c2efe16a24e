'use strict';
/* What the browser tests share: polling for a condition, and reading the
 * page's call timer. */

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

module.exports = { until, secondsOf };
