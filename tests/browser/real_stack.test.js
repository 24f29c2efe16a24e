'use strict';
/* The operator page in real headless Chromium against the REAL stack:
 * callbus-gateway + callbus-agent + amisim, started by
 * tests/integration/test_browser_real.py, which runs this file with:
 *   GATEWAY_URL  base URL of callbus-gateway ("http://127.0.0.1:PORT")
 *   OP_TOKEN     an HS256 token for op101
 *   SUP_TOKEN    an HS256 token for the supervisor sup1 (the wallboard step)
 *   AMI_PORT     amisim's AMI port: the test injects the inbound call itself
 *   JWT_SECRET, SITE_ID  the gateway's HS256 secret and site, to mint the
 *                short-lived and the renewed token of the renewal step
 *   BROWSER_OUT  where the screenshots go
 *   CHROMIUM     (optional) the Chromium binary, default /usr/bin/chromium
 * Steps run in order (node:test runs the tests of a file sequentially). */

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const net = require('net');
const path = require('path');
const crypto = require('crypto');
const helpers = require('./helpers');

const OUT = path.resolve(process.env.BROWSER_OUT || path.join(__dirname, 'out', 'real'));
const URL_ = process.env.GATEWAY_URL;
const TOKEN = process.env.OP_TOKEN;
const AMI_PORT = Number(process.env.AMI_PORT);
const CALLER = '5551009';
/* Run alone (no stack), every step is skipped rather than failed. */
const SKIP = (URL_ && TOKEN && AMI_PORT) ? false
  : 'needs GATEWAY_URL, OP_TOKEN and AMI_PORT: run via tests/integration/test_browser_real.py';
const T = 15000;   /* per-expectation timeout, ms: real Kafka round trips */

let browser, context, page, callId;

/* An HS256 token for op101 valid ttlS seconds, as the CRM would sign it. */
function mint(ttlS) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' +
    b64({ sub: 'op101', site: process.env.SITE_ID, role: 'operator', iat: now, exp: now + ttlS });
  return body + '.' + crypto.createHmac('sha256', process.env.JWT_SECRET).update(body).digest('base64url');
}
const consoleErrors = [];

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: true });
}

async function textOf(sel) { return (await page.locator(sel).textContent()).trim(); }

const until = (fn, what, timeout = T) => helpers.until(fn, what, timeout, 100);
const { secondsOf } = helpers;

/* An inbound call from the trunk, as test_gateway.py's inbound_call does:
 * log in to amisim's AMI and originate Local/800@from-trunk. */
function injectInboundCall(patience = 60) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ host: '127.0.0.1', port: AMI_PORT }, () => {
      s.write('Action: Login\r\nUsername: callbus\r\nSecret: callbus\r\nEvents: off\r\n\r\n' +
              'Action: Originate\r\nChannel: Local/800@from-trunk\r\nApplication: Wait\r\n' +
              `Data: ${patience}\r\nCallerID: "Carol" <${CALLER}>\r\nAsync: true\r\n\r\n`);
    });
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      got += d;
      /* Login's and Originate's responses: two "Response:" blocks. */
      if ((got.match(/Response: /g) || []).length >= 2) { s.end(); }
    });
    s.on('close', () => {
      if (/Response: Error/.test(got)) reject(new Error('AMI refused: ' + got));
      else resolve(got);
    });
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('AMI timeout; got: ' + got)); });
  });
}

before(async () => {
  if (SKIP) return;
  fs.mkdirSync(OUT, { recursive: true });
  browser = await helpers.launch();
  context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await helpers.ownOriginOnly(context, URL_);
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
});

test('signs in from the #token= link at the real gateway', { skip: SKIP }, async () => {
  await page.goto(URL_ + '/#token=' + TOKEN);
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  assert.equal(await textOf('#conn'), 'Connected');
  assert.equal(await textOf('#op-id'), 'op101');
  assert.equal(await textOf('#op-role'), 'operator');
  await until(async () => (await textOf('#status')) === 'Ready', 'op101 Ready');
  assert.equal(new URL(page.url()).hash, '', 'the token is removed from the address bar');
  await shot('01-signed-in');
});

test('an inbound call through amisim is offered with the caller number', { skip: SKIP }, async () => {
  await injectInboundCall();
  await page.locator('#offered-card').waitFor({ state: 'visible', timeout: T });
  assert.equal(await textOf('#offered-number'), CALLER);
  assert.equal(await textOf('#status'), 'Ringing');
  await shot('02-offered');
});

test('Accept connects the call and the timer runs', { skip: SKIP }, async () => {
  await page.getByRole('button', { name: 'Accept' }).click();
  await page.locator('#call-card').waitFor({ state: 'visible', timeout: T });
  await until(async () => (await page.locator('#offered-card').isHidden()), 'offer card gone');
  assert.equal(await textOf('#call-number'), CALLER);
  await until(async () => (await textOf('#status')) === 'On a call', 'status On a call');
  const t1 = secondsOf(await textOf('#call-timer'));
  await until(async () => secondsOf(await textOf('#call-timer')) >= t1 + 1, 'the call timer runs', 4000);
  await until(async () => (await page.locator('#log li[data-status="succeeded"]').count()) >= 1, 'answer result logged');
  assert.match(await textOf('#log li:first-child'), /answer.*succeeded/);
  await shot('03-in-call');
});

test('the supervisor wallboard shows op101 on the call and the queue', { skip: SKIP }, async () => {
  const sctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const sp = await sctx.newPage();
  sp.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await sp.goto(URL_ + '/#token=' + process.env.SUP_TOKEN);
    const row = sp.locator('#operators tr[data-operator-id="op101"]');
    await row.waitFor({ timeout: T });
    await helpers.until(async () => /On a call/.test(await row.textContent()) && (await row.textContent()).includes(CALLER),
      'op101 on the call', T, 100);
    assert.match(await sp.locator('#operators tr[data-operator-id="op102"]').textContent(), /Paused/);
    assert.match(await sp.locator('.tile[data-queue="support"]').textContent(), /answered/);
    await sp.screenshot({ path: path.join(OUT, '03b-wallboard.png'), fullPage: true });
  } finally {
    await sctx.close();
  }
});

test('a page reload keeps the call in progress', { skip: SKIP }, async () => {
  const before = secondsOf(await textOf('#call-timer'));
  await page.reload();
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
  assert.equal(await textOf('#op-id'), 'op101');
  await page.locator('#call-card').waitFor({ state: 'visible', timeout: T });
  assert.equal(await textOf('#call-number'), CALLER);
  assert.equal(await textOf('#status'), 'On a call');
  assert.ok(secondsOf(await textOf('#call-timer')) >= before, 'timer continues from the call start');
  const t1 = secondsOf(await textOf('#call-timer'));
  await until(async () => secondsOf(await textOf('#call-timer')) >= t1 + 1, 'the call timer still runs', 4000);
  assert.ok((await page.locator('#log li').count()) >= 1, 'command log kept');
  /* Still connected a moment later: the gateway accepted the resume. */
  assert.equal(await textOf('#conn'), 'Connected');
  await shot('04-after-reload');
});

test('Hang up ends the call and it appears in recent calls', { skip: SKIP }, async () => {
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.locator('#call-card').waitFor({ state: 'hidden', timeout: T });
  const row = page.locator('#recent tr[data-call-id]', { hasText: CALLER }).first();
  await row.waitFor({ timeout: T });
  callId = await row.getAttribute('data-call-id');
  assert.ok(callId, 'the recent row names the call');
  const text = await row.textContent();
  assert.match(text, /answered/);
  assert.match(text, /\d+:\d\d/);
  await until(async () => (await textOf('#status')) === 'Ready', 'Ready after the call');
  await until(async () => /hangup.*succeeded/.test(await textOf('#log li:first-child')), 'hangup result logged');
  await shot('05-after-call');
});

test('embedded in a CRM, it gets a new token by postMessage and renews it at the gateway', { skip: SKIP }, async () => {
  const short = mint(8), fresh = mint(900);
  const crm = await context.newPage();
  crm.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await crm.setContent(`<script>
      addEventListener('message', (e) => {
        if (e.data && e.data.type === 'callbus.token_request')
          e.source.postMessage({ type: 'callbus.token', token: ${JSON.stringify(fresh)} }, '*');
      });
    </script><iframe id="op" src="${URL_}/#token=${short}" width="1000" height="700"></iframe>`);
    const frame = crm.frameLocator('#op');
    await frame.locator('#conn[data-state="connected"]').waitFor({ timeout: T });
    const inner = crm.frames().find((f) => f !== crm.mainFrame());
    const exp = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url')).exp;
    assert.equal(await inner.evaluate(() => window.callbus.state().expires), exp(short));
    /* Only the gateway's "renewed" moves the expiry to the new token's. */
    await until(async () => (await inner.evaluate(() => window.callbus.state().expires)) === exp(fresh),
      'renewed by the gateway');
    assert.equal(await frame.locator('#conn').getAttribute('data-state'), 'connected');
  } finally {
    await crm.close();
  }
});

test('no script errors on the page', { skip: SKIP }, () => {
  assert.deepEqual(consoleErrors.filter((e) => !/WebSocket/.test(e)), []);
});
