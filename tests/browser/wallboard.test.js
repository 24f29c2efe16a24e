'use strict';
/* The supervisor wallboard (gateway/www/wallboard.js) in real headless
 * Chromium against the fake gateway, at 500 operators (and its time to first
 * paint at 1,000): queue tiles, operators counted by state, the operator
 * list sorted and filtered, rows updated in place under a burst of updates,
 * clocks that tick, Listen/Whisper. Run: tests/browser/run.sh. Screenshots
 * go to $BROWSER_OUT or tests/browser/out/. Timings are printed, never
 * asserted (docs: measure in benchmarks). */

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const helpers = require('./helpers');
const { FakeGateway, makeToken } = require('./fake_gateway');

const { CHROMIUM } = helpers;
const OUT = path.resolve(process.env.BROWSER_OUT || path.join(__dirname, 'out'));
const T = 15000;
const N = 500;

let gw, browser, context, page, url, cdp;
const consoleErrors = [];
const until = (fn, what, timeout = T) => helpers.until(fn, what, timeout);

async function shot(name) { await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: false }); }

/* The operators of the fake site by state, as the records say. */
function byState(g) {
  const n = {};
  for (const o of g.ops.values()) n[o.state] = (n[o.state] || 0) + 1;
  return n;
}

const visibleRows = () => page.locator('#operators tbody tr:not([hidden])').count();

/* How long Chromium's main thread worked (Performance.getMetrics, in ms):
 * unlike the wall clock, it does not grow with the load of a shared machine. */
async function mainThread(cdp) {
  const m = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
  return { task: m.TaskDuration * 1000, script: m.ScriptDuration * 1000, layout: m.LayoutDuration * 1000, style: m.RecalcStyleDuration * 1000 };
}

function busy(a, b) {
  const d = (k) => (b[k] - a[k]).toFixed(0);
  return `main thread busy ${d('task')} ms (script ${d('script')}, layout ${d('layout')}, style ${d('style')})`;
}

/* Signs a supervisor in on a fresh page; returns the page's timings and
 * the main thread's work until all of it was on screen. */
async function openWallboard(p, g, n) {
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('Performance.enable');
  const before = await mainThread(cdp);
  await p.goto(g.url + '#token=' + makeToken('sup1', 'supervisor'));
  await p.locator('#operators tbody tr').nth(n - 1).waitFor({ state: 'attached', timeout: T });
  await p.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  await helpers.until(() => p.evaluate(() => window.callbus.timings().wallboardPainted), 'the paint mark', T);
  await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const t = await p.evaluate(() => window.callbus.timings());
  t.busy = busy(before, await mainThread(cdp));
  t.cdp = cdp;
  return t;
}

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM + ' is missing: apt-get install -y chromium');
  gw = new FakeGateway({ operators: [], queues: ['support', 'sales', 'billing'], delayMs: 10 });
  gw.populate(N);
  url = await gw.start();
  browser = await helpers.launch();
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  await helpers.ownOriginOnly(context, url);
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
  if (gw) await gw.close();
});

test(`a supervisor of ${N} operators: the snapshot in parts paints tiles, counts and every operator`, async () => {
  const t = await openWallboard(page, gw, N);
  const reply = gw.replies[gw.replies.length - 1];
  assert.equal(reply.type, 'snapshot');
  assert.equal(reply.parts, 3, '500 operators come in parts of 200');
  assert.equal(await page.locator('#operators tbody tr').count(), N);
  assert.equal(await visibleRows(), N);
  assert.equal((await page.locator('#op-shown').textContent()).trim(), `${N} operators`);
  /* Operators counted by state: the records' states. */
  const want = byState(gw);
  for (const s of ['ready', 'on_call', 'ringing', 'paused', 'unavailable', 'logged_out']) {
    const chip = await page.locator(`#state-counts .chip[data-state="${s}"] .n`).textContent();
    assert.equal(Number(chip), want[s] || 0, 'count of ' + s);
  }
  /* The tiles show the agent's figures as they are. */
  const support = gw.queues.get('support');
  const tile = page.locator('.tile[data-queue="support"]');
  assert.match(await tile.textContent(), new RegExp(`^support${support.waiting}waiting`));
  assert.match(await tile.textContent(), /760answered31abandoned12timed out/);
  assert.match(await tile.textContent(), new RegExp(`${Math.round(support.service_level * 1000) / 10}%service level`));
  assert.match(await tile.textContent(), new RegExp(`${support.operators.logged_in} logged in: ${support.operators.ready} ready`));
  assert.equal(await page.locator('.tile').count(), 3);
  assert.equal(await page.locator('#active-calls tbody tr').count(), gw.calls.size);
  assert.equal(await page.locator('#operators tbody button:disabled').count(), 0, 'Listen/Whisper usable once connected');
  await shot('10-wallboard-500');
  console.log(`wallboard, ${N} operators: time to first paint ${t.wallboardPainted.toFixed(0)} ms after navigation start ` +
    `(snapshot part 1 applied at ${t.snapshotPart1.toFixed(0)} ms, all ${reply.parts} parts at ${t.snapshotComplete.toFixed(0)} ms; ` +
    `${t.operators} operators in the first paint); loading the page and all of the snapshot: ${t.busy}`);
  cdp = t.cdp;
});

test('the list sorts by state, time in state, handled calls and name', async () => {
  /* Default: by state, ringing first, then on a call. */
  const firstState = () => page.locator('#operators tbody tr:not([hidden]) .badge').first().getAttribute('data-state');
  assert.equal(await firstState(), 'ringing');
  await page.getByRole('button', { name: 'Handled today' }).click();
  const maxHandled = Math.max(...[...gw.ops.values()].map((o) => o.today.handled));
  await until(async () => Number(await page.locator('#operators tbody tr:not([hidden]) td.num').first().textContent()) === maxHandled, 'most handled first');
  await page.getByRole('button', { name: 'Handled today' }).click();
  await until(async () => Number(await page.locator('#operators tbody tr:not([hidden]) td.num').first().textContent()) === 0, 'least handled first');
  await page.getByRole('button', { name: 'Operator', exact: true }).click();
  await until(async () => (await page.locator('#operators tbody tr').first().getAttribute('data-operator-id')) === 'op0000', 'by name');
  await page.getByRole('button', { name: 'Time in state' }).click();
  const oldest = [...gw.ops.values()].sort((a, b) => (a.state_since < b.state_since ? -1 : 1))[0];
  await until(async () => (await page.locator('#operators tbody tr').first().getAttribute('data-operator-id')) === oldest.operator_id, 'longest in state first');
  await page.getByRole('button', { name: 'State', exact: true }).click();
  assert.equal(await firstState(), 'ringing');
});

test('filters by state, queue and name; a count chip filters by its state', async () => {
  const ops = [...gw.ops.values()];
  await page.getByLabel('State', { exact: true }).selectOption('paused');
  const paused = ops.filter((o) => o.state === 'paused');
  await until(async () => (await visibleRows()) === paused.length, 'paused only');
  assert.match(await page.locator('#operators tbody tr:not([hidden])').first().textContent(), /Paused/);
  /* With a pause reason when there is one. */
  const withReason = paused.find((o) => o.pause_reason);
  assert.match(await page.locator(`#operators tr[data-operator-id="${withReason.operator_id}"]`).textContent(), new RegExp('Paused: ' + withReason.pause_reason));
  await page.getByLabel('Queue', { exact: true }).selectOption('sales');
  const inSales = (o) => o.queues.some((q) => q.queue === 'sales');
  await until(async () => (await visibleRows()) === paused.filter(inSales).length, 'paused in sales');
  await shot('11-wallboard-filtered');
  await page.getByLabel('State', { exact: true }).selectOption('');
  await until(async () => (await visibleRows()) === ops.filter(inSales).length, 'sales only');
  /* The calls list follows the queue filter. */
  const salesCalls = [...gw.calls.values()].filter((c) => c.queue === 'sales').length;
  assert.equal(await page.locator('#active-calls tbody tr:not([hidden])').count(), salesCalls);
  await page.getByLabel('Queue', { exact: true }).selectOption('');
  await page.getByLabel('Name', { exact: true }).fill('agent 0042');
  await until(async () => (await visibleRows()) === 1, 'one by name');
  assert.equal(await page.locator('#operators tbody tr:not([hidden])').getAttribute('data-operator-id'), 'op0042');
  await page.getByLabel('Name', { exact: true }).fill('');
  await page.locator('#state-counts .chip[data-state="on_call"]').click();
  await until(async () => (await visibleRows()) === byState(gw).on_call, 'on a call, by the chip');
  assert.equal(await page.getByLabel('State', { exact: true }).inputValue(), 'on_call');
  await page.locator('#state-counts .chip[data-state="on_call"]').click();
  await until(async () => (await visibleRows()) === N, 'all again');
});

test('updates change rows in place; a burst of 2,000 updates leaves the wallboard equal to the records', async () => {
  /* The row is the same element after an update: changed in place. */
  await page.evaluate(() => { document.querySelector('#operators tr[data-operator-id="op0005"]').dataset.marked = '1'; });
  assert.equal(gw.ops.get('op0005').state, 'ready');
  gw.pause('op0005', 'Meeting');
  const row = page.locator('#operators tr[data-operator-id="op0005"]');
  await until(async () => /Paused: Meeting/.test(await row.textContent()), 'op0005 paused');
  assert.equal(await row.getAttribute('data-marked'), '1');
  /* Time in state restarts and ticks. */
  const secs = async () => helpers.secondsOf((await row.locator('td').nth(1).textContent()).trim());
  const s0 = await secs();
  assert.ok(s0 <= 2, 'time in state restarts at the change: ' + s0);
  await until(async () => (await secs()) >= s0 + 1, 'time in state ticks', 4000);
  /* A burst: every operator changes state four times, as fast as the fake sends. */
  const states = [{ device: 'busy' }, { device: 'ready' }, { device: 'ringing' }, { device: 'ready' }];
  const ids = [...gw.ops.keys()];
  const t0 = Date.now();
  const work0 = await mainThread(cdp);
  let sent = 0;
  for (const s of states) for (const id of ids) { gw.setState(id, s); sent++; }
  const target = gw.stream('*site*').pos;
  await until(async () => (await page.evaluate(() => window.callbus.position().pos)) === target, 'every update applied', 30000);
  const applied = Date.now() - t0;
  /* The page repaints at most every FLUSH_MS: the last updates may reach
   * the screen one flush after they were applied. */
  const want = byState(gw);
  const shown = async (s) => Number(await page.locator(`#state-counts .chip[data-state="${s}"] .n`).textContent());
  const STATES = ['ready', 'on_call', 'ringing', 'paused', 'unavailable'];
  await until(async () => {
    for (const s of STATES) if ((await shown(s)) !== (want[s] || 0)) return false;
    return true;
  }, 'the counts painted after the burst', 5000).catch(() => {});
  const painted = Date.now() - t0;
  const work = busy(work0, await mainThread(cdp));
  for (const s of STATES) assert.equal(await shown(s), want[s] || 0, 'count of ' + s + ' after the burst');
  for (const id of ['op0000', 'op0123', 'op0499']) {
    const o = gw.ops.get(id);
    assert.equal(await page.locator(`#operators tr[data-operator-id="${id}"] .badge`).getAttribute('data-state'), o.state);
  }
  console.log(`wallboard, ${N} operators: a burst of ${sent} operator updates applied in ${applied} ms, on screen in ${painted} ms; ${work}`);
  await shot('12-wallboard-after-burst');
});

test('the longest wait ticks from the queue record; Listen and Whisper send their commands', async () => {
  const longest = page.locator('.tile[data-queue="support"] .stat').nth(1).locator('.v');
  const first = helpers.secondsOf((await longest.textContent()).trim());
  await until(async () => helpers.secondsOf((await longest.textContent()).trim()) > first, 'longest wait ticks', 4000);
  for (const [name, cmd] of [['Listen to op0010', 'listen'], ['Whisper to op0011', 'whisper']]) {
    const from = gw.received.length;
    await page.getByRole('button', { name }).click();
    const got = await gw.waitForCommand(cmd, from);
    assert.equal(got.msg.data.operator_id, name.split(' ').pop());
  }
});

test('1,000 operators: time to first paint (reported)', async () => {
  const big = new FakeGateway({ operators: [], queues: ['support', 'sales', 'billing', 'vip'], site: 'riga' });
  big.populate(1000, { waiting: 120 });
  await big.start();
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const p = await ctx.newPage();
  p.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    const t = await openWallboard(p, big, 1000);
    assert.equal(await p.locator('#operators tbody tr').count(), 1000);
    const parts = big.replies[big.replies.length - 1].parts;
    await p.screenshot({ path: path.join(OUT, '13-wallboard-1000.png') });
    console.log(`wallboard, 1000 operators: time to first paint ${t.wallboardPainted.toFixed(0)} ms after navigation start ` +
      `(part 1 of ${parts} applied at ${t.snapshotPart1.toFixed(0)} ms, all parts at ${t.snapshotComplete.toFixed(0)} ms); ` +
      `loading the page and all of the snapshot: ${t.busy}`);
  } finally {
    await ctx.close();
    await big.close();
  }
});

test('no script errors on the page', () => {
  assert.deepEqual(consoleErrors.filter((e) => !/WebSocket/.test(e)), []);
});
