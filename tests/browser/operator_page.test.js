'use strict';
/* The operator page (gateway/www) in real headless Chromium against the fake
 * gateway. Run: tests/browser/run.sh (or `node --test` here). Screenshots go
 * to $BROWSER_OUT or tests/browser/out/. */

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const helpers = require('./helpers');
const { FakeGateway, makeToken, parseToken } = require('./fake_gateway');

const { CHROMIUM } = helpers;
const OUT = path.resolve(process.env.BROWSER_OUT || path.join(__dirname, 'out'));
const T = 8000;   /* per-expectation timeout, ms */

let gw, browser, context, page, url;
const consoleErrors = [];

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: true });
}

async function textOf(sel) { return (await page.locator(sel).textContent()).trim(); }

const until = (fn, what, timeout = T) => helpers.until(fn, what, timeout);
const { secondsOf } = helpers;

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM + ' is missing: apt-get install -y chromium');
  gw = new FakeGateway({ operators: ['op101', 'op102'] });
  url = await gw.start();
  browser = await helpers.launch();
  context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await helpers.ownOriginOnly(context, url);
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
  if (gw) await gw.close();
});

let offered;

test('signs in from the #token= link and shows the operator id', async () => {
  await page.goto(url + '#token=' + makeToken('op101'));
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  assert.equal(await textOf('#op-id'), 'op101');
  assert.equal(await textOf('#op-role'), 'operator');
  assert.equal(await textOf('#status'), 'Ready');
  assert.equal(new URL(page.url()).hash, '', 'the token is removed from the address bar');
  const auth = gw.received.find((r) => r.msg.type === 'auth');
  assert.ok(auth && !auth.msg.resume, 'first sign-in sends auth without resume');
  await shot('01-signed-in');
});

test('shows an offered call with the caller number', async () => {
  offered = gw.offerCall({ operator: 'op101', caller: '5551001', name: 'Alice Customer' });
  await page.locator('#offered-card').waitFor({ state: 'visible', timeout: T });
  assert.equal(await textOf('#offered-number'), '5551001');
  assert.equal(await textOf('#status'), 'Ringing');
  await shot('02-offered');
});

test('Accept sends answer and shows the connected call with a running timer', async () => {
  const from = gw.received.length;
  await page.getByRole('button', { name: 'Accept' }).click();
  const cmd = await gw.waitForCommand('answer', from);
  assert.equal(cmd.msg.data.call_id, offered.call_id);
  assert.ok(cmd.msg.id, 'a command carries the client id');
  await page.locator('#call-card').waitFor({ state: 'visible', timeout: T });
  await until(async () => (await page.locator('#offered-card').isHidden()), 'offer card gone');
  assert.equal(await textOf('#call-number'), '5551001');
  assert.equal(await textOf('#status'), 'On a call');
  const t1 = secondsOf(await textOf('#call-timer'));
  await until(async () => secondsOf(await textOf('#call-timer')) >= t1 + 1, 'the call timer runs', 4000);
  await until(async () => (await page.locator('#log li[data-status="succeeded"]').count()) >= 1, 'answer result logged');
  assert.match(await textOf('#log li:first-child'), /answer.*accepted → succeeded/);
  await shot('03-in-call');
});

test('a page reload keeps the state through resume', async () => {
  const before = secondsOf(await textOf('#call-timer'));
  const from = gw.replies.length;
  await page.reload();
  /* The kept state shows at once, before the gateway answers. */
  assert.equal(await textOf('#call-number'), '5551001');
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  const reply = gw.replies.slice(from).find((r) => r.operator === 'op101');
  assert.ok(reply, 'reconnected after reload');
  assert.ok(reply.resume && reply.resume.epoch === gw.epoch && reply.resume.pos > 0, 'auth carried resume {epoch,pos}');
  assert.equal(reply.type, 'resume');
  assert.equal(reply.recovered, true);
  assert.equal(await textOf('#op-id'), 'op101');
  assert.equal(await textOf('#call-number'), '5551001');
  assert.ok(secondsOf(await textOf('#call-timer')) >= before, 'timer continues from the call start');
  assert.ok((await page.locator('#log li').count()) >= 1, 'command log kept');
});

test('the connection indicator shows lost and restored, and the missed events arrive', async () => {
  gw.setAccepting(false);
  gw.dropConnections();
  await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: T });
  assert.match(await textOf('#conn'), /reconnecting/i);
  assert.ok(await page.getByRole('button', { name: 'Hang up' }).isDisabled(), 'commands disabled while offline');
  await shot('04-reconnecting');
  gw.hold(offered.call_id, true);   /* happens while the page is away */
  const from = gw.replies.length;
  gw.setAccepting(true);
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: 20000 });
  const reply = gw.replies.slice(from).find((r) => r.operator === 'op101');
  assert.equal(reply.type, 'resume');
  await page.locator('#call-held').waitFor({ state: 'visible', timeout: T });
  assert.equal(await textOf('#conn'), 'Connected');
  gw.hold(offered.call_id, false);
  await page.locator('#call-held').waitFor({ state: 'hidden', timeout: T });
});

test('Hang up ends the call and it appears in recent calls', async () => {
  const from = gw.received.length;
  await page.getByRole('button', { name: 'Hang up' }).click();
  const cmd = await gw.waitForCommand('hangup', from);
  assert.equal(cmd.msg.data.call_id, offered.call_id);
  await page.locator('#call-card').waitFor({ state: 'hidden', timeout: T });
  const row = page.locator(`#recent tr[data-call-id="${offered.call_id}"]`);
  await row.waitFor({ timeout: T });
  const text = await row.textContent();
  assert.match(text, /5551001/);
  assert.match(text, /answered/);
  assert.match(text, /\d+:\d\d/);
  assert.equal(await textOf('#status'), 'Ready');
  await shot('05-after-call');
});

test('Pause with a reason, then Ready', async () => {
  await page.getByLabel('Pause reason').selectOption('Lunch');
  let from = gw.received.length;
  await page.getByRole('button', { name: 'Pause', exact: true }).click();
  const cmd = await gw.waitForCommand('pause', from);
  assert.equal(cmd.msg.data.reason, 'Lunch');
  await until(async () => (await textOf('#status')) === 'Paused: Lunch', 'paused with reason');
  await shot('06-paused');
  from = gw.received.length;
  await page.getByRole('button', { name: 'Ready' }).click();
  await gw.waitForCommand('unpause', from);
  await until(async () => (await textOf('#status')) === 'Ready', 'ready again');
});

test('click-to-call originates and shows the outbound call; transfer sends the extension', async () => {
  let from = gw.received.length;
  await page.getByLabel('Number to call').fill('5552002');
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  const cmd = await gw.waitForCommand('originate', from);
  assert.equal(cmd.msg.data.number, '5552002');
  await page.locator('#call-card').waitFor({ state: 'visible', timeout: T });
  assert.equal(await textOf('#call-number'), '5552002');
  await until(async () => (await textOf('#call-dir')) === 'outbound call', 'outbound call answered');
  from = gw.received.length;
  await page.getByLabel('Transfer to extension').fill('205');
  await page.getByRole('button', { name: 'Transfer' }).click();
  const tr = await gw.waitForCommand('transfer', from);
  assert.equal(tr.msg.data.to, '205');
  assert.equal(tr.msg.data.kind, 'blind');
  await page.locator('#call-card').waitFor({ state: 'hidden', timeout: T });
});

test('a rejected command shows the error in the log', async () => {
  await page.evaluate(() => { document.getElementById('dial-number').removeAttribute('pattern'); });
  await page.getByLabel('Number to call').fill('abc');
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  await until(async () => /failed/.test(await textOf('#log li:first-child')), 'failed result logged');
  assert.match(await textOf('#log li:first-child'), /bad number/);
  await shot('07-log');
});

test('a command Kafka never took is shown as not delivered, and the page says updates are delayed', async () => {
  gw.kafkaStatus(true);
  try {
    await page.locator('#conn[data-kafka="down"]').waitFor({ timeout: T });
    assert.match(await textOf('#conn'), /live updates delayed/i);
    assert.match(await textOf('#log li:first-child'), /cannot reach/);
    await shot('08-kafka-down');
    await page.getByLabel('Number to call').fill('5551234');
    await page.getByRole('button', { name: 'Call', exact: true }).click();
    await until(async () => /never reached Kafka/.test(await textOf('#log li:first-child')), 'not_delivered logged');
    assert.match(await textOf('#log li:first-child'), /5551234|originate|call/i);
  } finally {
    gw.kafkaStatus(false);
  }
  await page.locator('#conn[data-kafka="up"]').waitFor({ timeout: T });
  assert.equal(await textOf('#conn'), 'Connected');
  assert.match(await textOf('#log li:first-child'), /restored/);
});

test('supervisor signs in with the form and sees the wallboard; Listen sends listen', async () => {
  const sctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const sp = await sctx.newPage();
  sp.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await sp.goto(url);
    await sp.getByLabel('Access token').waitFor({ timeout: T });
    await sp.screenshot({ path: path.join(OUT, '00-sign-in.png'), fullPage: true });
    const live = gw.offerCall({ operator: 'op102', caller: '5553003', name: 'Bob Buyer' });
    await sp.getByLabel('Access token').fill(makeToken('sup1', 'supervisor'));
    await sp.getByRole('button', { name: 'Sign in' }).click();
    await sp.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
    assert.equal((await sp.locator('#op-role').textContent()).trim(), 'supervisor');
    await sp.locator('#operators tr[data-operator-id="op101"]').waitFor({ timeout: T });
    assert.match(await sp.locator('#operators tr[data-operator-id="op102"]').textContent(), /Ringing.*ringing: 5553003/);
    assert.match(await sp.locator(`#active-calls tr[data-call-id="${live.call_id}"]`).textContent(), /5553003.*ringing.*support.*op102/);
    assert.match(await sp.locator('.tile[data-queue="support"]').textContent(), /support/);
    assert.equal(await sp.locator('#status-card').isVisible(), false, 'the wallboard replaces the operator cards');
    const from = gw.received.length;
    await sp.getByRole('button', { name: 'Listen to op102' }).click();
    const cmd = await gw.waitForCommand('listen', from);
    assert.equal(cmd.msg.data.operator_id, 'op102');
    await sp.locator('#log li[data-status="succeeded"]').waitFor({ timeout: T });
    await sp.screenshot({ path: path.join(OUT, '08-supervisor.png'), fullPage: true });
    /* The operator page never saw op102's call. */
    assert.equal(await page.locator('#offered-card').isHidden(), true);
  } finally {
    await sctx.close();
  }
});

test('an expired token returns to the sign-in form with a message', async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  try {
    await p.goto(url + '#token=' + makeToken('op101', 'operator', 'riga', -10));
    await p.locator('#signin-error').waitFor({ state: 'visible', timeout: T });
    assert.match(await p.locator('#signin-error').textContent(), /expired/);
  } finally {
    await ctx.close();
  }
});

test('embedded in a CRM, it asks for a new token before expiry, renews, and reconnects with it', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const crm = await ctx.newPage();
  crm.on('pageerror', (e) => consoleErrors.push(String(e)));
  const first = makeToken('op102', 'operator', 'riga', 6);
  const fresh = makeToken('op102', 'operator', 'riga', 3600);
  const mine = (type) => gw.received.filter((r) => r.msg.type === type &&
    (r.operator === 'op102' || (r.msg.token && (parseToken(r.msg.token) || {}).sub === 'op102')));
  try {
    /* The CRM: answers the page's token requests with postMessage. */
    await crm.setContent(`<script>
      window.requests = [];
      addEventListener('message', (e) => {
        if (!e.data || e.data.type !== 'callbus.token_request') return;
        window.requests.push(e.data);
        e.source.postMessage({ type: 'callbus.token', token: ${JSON.stringify(fresh)} }, '*');
      });
    </script><iframe id="op" src="${url}#token=${first}" width="1000" height="700"></iframe>`);
    const frame = crm.frameLocator('#op');
    await frame.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
    const renew = await until(() => mine('renew')[0], 'the page sends renew', 10000);
    assert.equal(renew.msg.token, fresh);
    const asked = await crm.evaluate(() => window.requests);
    assert.equal(asked[0].operator_id, 'op102');
    assert.ok(asked[0].expires * 1000 > Date.now() - 10000, 'the request says when the token expires');
    /* Past the first token's expiry the fake gateway would close with 4002:
     * still connected, on the same socket. */
    await new Promise((r) => setTimeout(r, Math.max(0, parseToken(first).exp * 1000 + 1500 - Date.now())));
    assert.equal(await frame.locator('#conn').getAttribute('data-state'), 'connected');
    assert.equal(mine('auth').length, 1, 'no reconnect was needed');
    await crm.screenshot({ path: path.join(OUT, '09-embedded-renewed.png'), fullPage: true });
    /* A later reconnect authenticates with the renewed token. */
    gw.dropConnections();
    await until(() => mine('auth').length === 2, 'the page reconnects');
    assert.equal(mine('auth')[1].msg.token, fresh);
    await frame.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  } finally {
    await ctx.close();
  }
});

test('no script errors on the page', () => {
  assert.deepEqual(consoleErrors.filter((e) => !/WebSocket/.test(e)), []);
});
