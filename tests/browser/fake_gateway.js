'use strict';
/* A tiny stand-in for callbus-gateway, for the browser tests only.
 *
 * Serves gateway/www as static files at / and speaks callbus.v1 at /ws
 * (docs/gateway-protocol.md): welcome, a snapshot of state records (an
 * operator's own record; a supervisor's site in parts of at most 200
 * operators and calls), numbered `update`s of operator, call and queue
 * records and `event`s for command results, resume by (epoch, pos),
 * command_ack. It keeps the records the agent would publish
 * (docs/messages.md, "State topics") and changes them as the test drives it
 * (a call offered, answered, held, ended; a pause); the gateway's
 * projection is applied here as the gateway applies it (an operator gets
 * their own record without queue names, supervisors other operators'
 * records without recent). Written independently of the page, so the page
 * is tested against the protocol, not against a copy of its own logic.
 * Tokens are JWT-shaped but not verified: the payload's sub, role and site
 * are taken as they are.
 *
 * Standalone:  node fake_gateway.js [port] [operators]   prints sign-in URLs
 * and takes POST /fake/offer?caller=5551001&operator=op101 and POST
 * /fake/drop for manual trials. */

const http = require('http');
const fs = require('fs');
const path = require('path');
const { WebSocketServer } = require('ws');

const WWW = path.resolve(__dirname, '..', '..', 'gateway', 'www');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml', '.ico': 'image/x-icon' };
const CHUNK = 200;
const RECENT_MAX = 10;

function b64url(s) { return Buffer.from(s).toString('base64url'); }

function makeToken(sub, role = 'operator', site = 'riga', ttlS = 3600) {
  const now = Math.floor(Date.now() / 1000);
  return [b64url(JSON.stringify({ alg: 'none', typ: 'JWT' })),
    b64url(JSON.stringify({ sub, role, site, iat: now, exp: now + ttlS })), 'fake'].join('.');
}

function parseToken(t) {
  try {
    const p = JSON.parse(Buffer.from(String(t).split('.')[1], 'base64url').toString());
    if (typeof p.sub !== 'string' || !p.sub) return null;
    return p;
  } catch (e) { return null; }
}

const iso = (ms = Date.now()) => new Date(ms).toISOString();
const clone = (j) => JSON.parse(JSON.stringify(j));

/* Remove queue names for an operator's eyes (the gateway's projection). */
function strip(j) {
  if (Array.isArray(j)) return j.map(strip);
  if (j && typeof j === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(j)) if (k !== 'queue' && k !== 'queues' && k !== 'offered_to') o[k] = strip(v);
    return o;
  }
  return j;
}

function forSite(rec) {
  if (!rec) return null;
  const { recent, ...rest } = rec;   // eslint-disable-line no-unused-vars
  return clone(rest);
}

/* The agent's state precedence (docs/messages.md). */
function stateOf(o) {
  if (!o.queues.length && !o.call) return 'logged_out';
  if (o.device === 'unavailable') return 'unavailable';
  if (o.call || o.device === 'busy') return 'on_call';
  if (o.offered || o.device === 'ringing') return 'ringing';
  if (o.paused) return 'paused';
  return 'ready';
}

class FakeGateway {
  constructor(opts = {}) {
    this.site = opts.site || 'riga';
    this.epoch = opts.epoch || 'fake-' + Date.now().toString(36);
    this.streams = new Map();      /* operator id | '*site*' -> {pos, history[]} */
    this.ops = new Map();          /* operator id -> callbus.state.operator data */
    this.calls = new Map();        /* call id -> callbus.state.call data */
    this.queues = new Map();       /* queue -> callbus.queue.stats data */
    this.clients = new Set();
    this.received = [];            /* every client message, with the operator */
    this.replies = [];             /* first reply after auth: snapshot | resume */
    this.sent = [];                /* every message sent to a client: {operator, msg} (when recordSent) */
    this.recordSent = !!opts.recordSent;
    this.accepting = true;
    this.seq = 0;
    this.callSeq = 0;
    this.waiters = [];
    this.delayMs = opts.delayMs == null ? 40 : opts.delayMs;
    for (const q of opts.queues || ['support']) this.queue(q);
    for (const id of opts.operators || ['op101', 'op102']) this.op(id);
  }

  op(id, queue = 'support') {
    if (!this.ops.has(id)) {
      this.ops.set(id, { operator_id: id, member_name: 'Operator ' + id, interface: 'PJSIP/' + id, logged_in: true,
        queues: [{ queue, paused: false, reason: null }], state: 'ready', state_since: iso(), paused: false, pause_reason: null,
        device: 'ready', offered: null, call: null, recent: [], today: { date: iso().slice(0, 10), handled: 0, talk_s: 0, missed: 0 } });
    }
    return this.ops.get(id);
  }

  queue(name) {
    if (!this.queues.has(name)) {
      this.queues.set(name, { queue: name, date: iso().slice(0, 10), timezone: 'UTC', waiting: 0, oldest_waiting_since: null,
        longest_wait_s: 0, offered: 0, answered: 0, abandoned: 0, timed_out: 0, answered_within_sl: 0, sl_threshold_s: 20,
        service_level: null, avg_wait_s: null, avg_talk_s: null, wait_s_total: 0, talk_s_total: 0, talked: 0,
        operators: { logged_in: 0, ready: 0, paused: 0, ringing: 0, on_call: 0, unavailable: 0 } });
    }
    return this.queues.get(name);
  }

  stream(key) {
    if (!this.streams.has(key)) this.streams.set(key, { pos: 0, history: [] });
    return this.streams.get(key);
  }

  /* ---------- HTTP + WebSocket ---------- */

  start(port = 0) {
    this.http = http.createServer((req, res) => this.serve(req, res));
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (protos) => (protos.has('callbus.v1') ? 'callbus.v1' : false) });
    this.http.on('upgrade', (req, sock, head) => {
      if (new URL(req.url, 'http://x').pathname !== '/ws' || !this.accepting) {
        sock.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, sock, head, (ws) => this.onConnection(ws));
    });
    return new Promise((resolve) => this.http.listen(port, '127.0.0.1', () => {
      this.port = this.http.address().port;
      this.url = `http://127.0.0.1:${this.port}/`;
      resolve(this.url);
    }));
  }

  serve(req, res) {
    const u = new URL(req.url, 'http://x');
    if (req.method === 'POST' && u.pathname === '/fake/offer') {
      const c = this.offerCall({ operator: u.searchParams.get('operator') || 'op101', caller: u.searchParams.get('caller') || '5551001' });
      res.end(JSON.stringify(c));
      return;
    }
    if (req.method === 'POST' && u.pathname === '/fake/drop') { this.dropConnections(); res.end('ok'); return; }
    let p = decodeURIComponent(u.pathname);
    if (p.endsWith('/')) p += 'index.html';
    const file = path.resolve(WWW, '.' + p);
    if (!file.startsWith(WWW + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  }

  onConnection(ws) {
    const client = { ws, who: null };
    this.clients.add(client);
    const authTimer = setTimeout(() => ws.close(4000, 'auth timeout'), 5000);
    ws.on('close', () => { clearTimeout(authTimer); clearTimeout(client.expTimer); this.clients.delete(client); });
    /* As the real gateway: the connection lasts as long as its token. */
    const expireAt = (p) => {
      clearTimeout(client.expTimer);
      if (p.exp) client.expTimer = setTimeout(() => ws.close(4002, 'token expired'), Math.max(0, p.exp * 1000 - Date.now()));
    };
    ws.on('message', (buf) => {
      let m;
      try { m = JSON.parse(String(buf)); } catch (e) { this.sendTo(client, { type: 'error', code: 'bad_json', message: 'not JSON' }); return; }
      this.received.push({ operator: client.who && client.who.sub, msg: m });
      this.wake();
      if (!client.who) {
        clearTimeout(authTimer);
        if (m.type !== 'auth') { ws.close(4000, 'first message must be auth'); return; }
        const p = parseToken(m.token);
        if (!p) { ws.close(4001, 'token invalid'); return; }
        if (p.exp && p.exp * 1000 < Date.now()) { ws.close(4002, 'token expired'); return; }
        if (p.site && p.site !== this.site) { ws.close(4003, 'wrong site'); return; }
        client.who = p;
        expireAt(p);
        this.sendTo(client, { type: 'welcome', protocol: 'callbus.v1', operator_id: p.sub, role: p.role || 'operator', site: this.site, expires: p.exp || null, kafka: this.kafkaDown ? 'down' : 'up' });
        const first = m.resume ? this.resume(client, m.resume) : this.snapshot(client);
        this.replies.push({ operator: p.sub, type: first[0].type, recovered: first[0].recovered, resume: m.resume || null, parts: first.length });
        for (const msg of first) this.sendTo(client, msg);
        this.wake();
        return;
      }
      if (m.type === 'ping') this.sendTo(client, { type: 'pong' });
      else if (m.type === 'command') this.onCommand(client, m);
      else if (m.type === 'renew') {
        const p = parseToken(m.token);
        if (!p || p.sub !== client.who.sub) { ws.close(4001, 'renewal for another operator'); return; }
        if (p.exp && p.exp * 1000 < Date.now()) { ws.close(4002, 'token expired'); return; }
        client.who = p;
        expireAt(p);
        this.sendTo(client, { type: 'renewed', operator_id: p.sub, role: p.role || 'operator', expires: p.exp || null });
      }
      else this.sendTo(client, { type: 'error', code: 'unknown_type', message: 'unknown type ' + m.type });
    });
  }

  isSup(client) { return client.who && client.who.role === 'supervisor'; }
  streamKey(client) { return this.isSup(client) ? '*site*' : client.who.sub; }

  sendTo(client, obj) {
    if (client.ws.readyState !== 1) return;
    client.ws.send(JSON.stringify(obj));
    if (this.recordSent) this.sent.push({ operator: client.who && client.who.sub, msg: obj });
  }

  blank(id) {
    return { operator_id: id, member_name: null, interface: null, logged_in: false, queues: [], state: 'logged_out', state_since: null,
      paused: false, pause_reason: null, device: 'unknown', offered: null, call: null, recent: [], today: null };
  }

  /* The messages after auth: an operator's own record, or the site in parts. */
  snapshot(client, extra = {}) {
    const sup = this.isSup(client), me = client.who.sub;
    const pos = this.stream(this.streamKey(client)).pos;
    const own = clone(this.ops.get(me) || this.blank(me));
    if (!sup) return [{ type: 'snapshot', epoch: this.epoch, pos, role: 'operator', operator: strip(own), ...extra }];
    const ops = [...this.ops.values()].map(forSite), calls = [...this.calls.values()].map(clone);
    const n = Math.max(1, Math.ceil(ops.length / CHUNK), Math.ceil(calls.length / CHUNK));
    const parts = [];
    for (let k = 0; k < n; k++) {
      const part = { type: 'snapshot', epoch: this.epoch, pos, role: 'supervisor', part: k + 1, parts: n, ...extra };
      if (k === 0) { part.operator = own; part.queues = [...this.queues.values()].map(clone); }
      part.operators = ops.slice(k * CHUNK, (k + 1) * CHUNK);
      part.calls = calls.slice(k * CHUNK, (k + 1) * CHUNK);
      parts.push(part);
    }
    return parts;
  }

  resume(client, r) {
    const s = this.stream(this.streamKey(client));
    if (!r || r.epoch !== this.epoch) return this.snapshot(client, { recovered: false, reason: 'epoch changed' });
    if (r.pos > s.pos) return this.snapshot(client, { recovered: false, reason: 'unknown position' });
    const events = s.history.filter((m) => m.pos > r.pos);
    if (s.pos - r.pos > events.length) return this.snapshot(client, { recovered: false, reason: 'too old' });
    return [{ type: 'resume', epoch: this.epoch, pos: s.pos, recovered: true, events }];
  }

  /* Number a message on a stream and push it to that stream's live clients. */
  deliver(key, body) {
    const s = this.stream(key);
    const msg = { type: body.type, epoch: this.epoch, pos: ++s.pos, ...body };
    s.history.push(msg);
    if (s.history.length > 500) s.history.shift();
    for (const c of this.clients) if (c.who && this.streamKey(c) === key) this.sendTo(c, msg);
  }

  /* ---------- the agent's records changing ---------- */

  /* An operator's record changed: their stream and the site's. */
  touchOp(id) {
    const o = this.op(id);
    const st = stateOf(o);
    if (st !== o.state) { o.state = st; o.state_since = iso(); }
    o.logged_in = o.queues.length > 0;
    const time = iso();
    this.deliver(id, { type: 'update', kind: 'operator', id, time, state: strip(clone(o)) });
    this.deliver('*site*', { type: 'update', kind: 'operator', id, time, state: forSite(o) });
  }

  touchCall(id) {
    const c = this.calls.get(id);
    this.deliver('*site*', { type: 'update', kind: 'call', id, time: iso(), state: c ? clone(c) : null });
  }

  touchQueue(name) {
    const q = this.queue(name);
    const waiting = [...this.calls.values()].filter((c) => c.queue === name && c.state === 'queued');
    q.waiting = waiting.length;
    q.oldest_waiting_since = waiting.length ? waiting.map((c) => c.queued_at).sort()[0] : null;
    const counts = { logged_in: 0, ready: 0, paused: 0, ringing: 0, on_call: 0, unavailable: 0 };
    for (const o of this.ops.values()) {
      if (!o.queues.some((x) => x.queue === name)) continue;
      counts.logged_in++;
      if (counts[o.state] != null) counts[o.state]++;
    }
    q.operators = counts;
    q.service_level = q.answered + q.abandoned + q.timed_out ? +(q.answered_within_sl / (q.answered + q.abandoned + q.timed_out)).toFixed(3) : null;
    q.avg_wait_s = q.answered ? +(q.wait_s_total / q.answered).toFixed(1) : null;
    q.avg_talk_s = q.talked ? +(q.talk_s_total / q.talked).toFixed(1) : null;
    this.deliver('*site*', { type: 'update', kind: 'queue', id: name, time: iso(), state: clone(q) });
  }

  later(fn) { return new Promise((r) => setTimeout(() => { fn(); r(); }, this.delayMs)); }

  /* ---------- what the test drives ---------- */

  offerCall({ operator = 'op101', caller = '5551001', name = 'Alice Customer', queue = 'support' } = {}) {
    const id = `17956${70000 + ++this.callSeq}.${this.callSeq}`;
    const now = iso();
    const c = { call_id: id, state: 'ringing', direction: 'inbound', caller: { number: caller, name }, party: null, queue, position: null,
      operator_id: null, offered_to: [operator], operators: [], started_at: now, queued_at: now, answered_at: null };
    this.calls.set(id, c);
    const q = this.queue(queue);
    q.offered++;
    this.touchCall(id);
    const op = this.op(operator);
    op.offered = { call_id: id, caller: c.caller, queue, since: now };
    op.device = 'ringing';
    this.touchOp(operator);
    this.touchQueue(queue);
    return c;
  }

  queueCall({ caller = '5559000', queue = 'support', waitedS = 0 } = {}) {
    const id = `17958${70000 + ++this.callSeq}.${this.callSeq}`;
    const at = iso(Date.now() - waitedS * 1000);
    this.calls.set(id, { call_id: id, state: 'queued', direction: 'inbound', caller: { number: caller, name: null }, party: null, queue,
      position: 1, operator_id: null, offered_to: [], operators: [], started_at: at, queued_at: at, answered_at: null });
    this.queue(queue).offered++;
    this.touchCall(id);
    this.touchQueue(queue);
    return id;
  }

  hold(callId, held = true) {
    const c = this.calls.get(callId);
    c.state = held ? 'held' : 'connected';
    const op = this.op(c.operator_id);
    op.call.held = held;
    this.touchCall(callId);
    this.touchOp(c.operator_id);
  }

  pause(id, reason) {
    const o = this.op(id);
    o.paused = true; o.pause_reason = reason || null;
    o.queues.forEach((q) => { q.paused = true; q.reason = reason || null; });
    this.touchOp(id);
  }

  setState(id, fields) {
    Object.assign(this.op(id), fields);
    this.touchOp(id);
  }

  /* A site of n operators op0000.. in the given queues, some busy, and
   * calls waiting; records only (the snapshot carries them). */
  populate(n, { queues = ['support', 'sales', 'billing'], waiting = 40, busy = 0.4 } = {}) {
    const reasons = ['Lunch', 'Break', 'Training', null];
    for (let i = 0; i < n; i++) {
      const id = 'op' + String(i).padStart(4, '0');
      const q = queues[i % queues.length];
      const o = this.op(id, q);
      o.member_name = 'Agent ' + String(i).padStart(4, '0');
      o.state_since = iso(Date.now() - (i % 600) * 1000);
      o.today.handled = (i * 7) % 53;
      o.recent = Array.from({ length: RECENT_MAX }, (_, k) => ({ call_id: `1795000${i}.${k}`, caller: { number: '555' + (1000 + k), name: null },
        direction: 'inbound', queue: q, disposition: 'answered', duration_s: 80, talk_s: 75, ended_at: iso(Date.now() - k * 60000) }));
      const r = i % 10;
      if (r < busy * 10) {
        const cid = `1795900${i}.${i}`;
        const at = iso(Date.now() - (i % 300) * 1000);
        this.calls.set(cid, { call_id: cid, state: 'connected', direction: 'inbound', caller: { number: '555' + (2000 + i), name: null }, party: null,
          queue: q, position: null, operator_id: id, offered_to: [], operators: [id], started_at: at, queued_at: at, answered_at: at });
        o.call = { call_id: cid, caller: { number: '555' + (2000 + i), name: null }, direction: 'inbound', queue: q, answered_at: at, held: false };
        o.device = 'busy';
      } else if (r === 9 && i % 3 === 0) {
        o.offered = { call_id: `1795901${i}.${i}`, caller: { number: '555' + (4000 + i), name: null }, queue: q, since: iso() };
        o.device = 'ringing';
      } else if (r === 7) { o.paused = true; o.pause_reason = reasons[i % reasons.length]; o.queues[0].paused = true; o.queues[0].reason = o.pause_reason; }
      else if (r === 8 && i % 3 === 0) o.device = 'unavailable';
      o.state = stateOf(o);
    }
    for (let k = 0; k < waiting; k++) {
      const q = queues[k % queues.length];
      const id = `1795800${k}.${k}`;
      const at = iso(Date.now() - (k * 7 % 90) * 1000);
      this.calls.set(id, { call_id: id, state: 'queued', direction: 'inbound', caller: { number: '555' + (3000 + k), name: null }, party: null, queue: q,
        position: Math.floor(k / queues.length) + 1, operator_id: null, offered_to: [], operators: [], started_at: at, queued_at: at, answered_at: null });
    }
    for (const q of queues) {
      const s = this.queue(q);
      Object.assign(s, { offered: 812, answered: 760, abandoned: 31, timed_out: 12, answered_within_sl: 702, wait_s_total: 6992, talk_s_total: 53000.3, talked: 715 });
      const waitingHere = [...this.calls.values()].filter((c) => c.queue === q && c.state === 'queued');
      s.waiting = waitingHere.length;
      s.oldest_waiting_since = waitingHere.map((c) => c.queued_at).sort()[0] || null;
      s.longest_wait_s = s.oldest_waiting_since ? Math.round((Date.now() - Date.parse(s.oldest_waiting_since)) / 1000) : 0;
      const counts = { logged_in: 0, ready: 0, paused: 0, ringing: 0, on_call: 0, unavailable: 0 };
      for (const o of this.ops.values()) if (o.queues.some((x) => x.queue === q)) { counts.logged_in++; if (counts[o.state] != null) counts[o.state]++; }
      s.operators = counts;
      s.service_level = +(s.answered_within_sl / (s.answered + s.abandoned + s.timed_out)).toFixed(3);
      s.avg_wait_s = +(s.wait_s_total / s.answered).toFixed(1);
      s.avg_talk_s = +(s.talk_s_total / s.talked).toFixed(1);
    }
  }

  /* Abrupt loss of every connection (no close frame). */
  dropConnections() { for (const c of this.clients) c.ws.terminate(); }
  setAccepting(on) { this.accepting = on; }
  setKafkaDown(on) { this.kafkaDown = on; }
  /* As callbus-gateway does when its consumer loses or regains the site's Kafka. */
  kafkaStatus(down) {
    this.kafkaDown = down;
    const m = down ? { type: 'status', kafka: 'down', since: Date.now() / 1000 } : { type: 'status', kafka: 'up' };
    for (const c of this.clients) if (c.who) this.sendTo(c, m);
  }

  result(client, cmd, commandId, status, extra = {}) {
    const sender = 'gateway:' + client.who.sub;
    const ev = { type: 'callbus.result', id: `${this.site}:fake:results:1:${++this.seq}`, time: iso(), subject: commandId,
      data: { command_id: commandId, command_type: cmd, status, sender, ...extra } };
    this.deliver(client.who.sub, { type: 'event', event: strip(ev) });
    this.deliver('*site*', { type: 'event', event: ev });
  }

  endCall(c, byOp) {
    const now = Date.now();
    const started = Date.parse(c.started_at), answered = c.answered_at ? Date.parse(c.answered_at) : null;
    const entry = { call_id: c.call_id, caller: c.direction === 'outbound' ? { number: c.party } : c.caller, direction: c.direction, queue: c.queue,
      disposition: answered ? 'answered' : 'no_answer', duration_s: +((now - started) / 1000).toFixed(3),
      talk_s: answered ? +((now - answered) / 1000).toFixed(3) : 0, ended_at: iso(now) };
    this.calls.delete(c.call_id);
    this.touchCall(c.call_id);
    const o = this.op(byOp);
    o.recent.unshift(entry);
    o.recent.length = Math.min(o.recent.length, RECENT_MAX);
    o.call = null;
    o.device = 'ready';
    if (answered) { o.today.handled++; o.today.talk_s += entry.talk_s; }
    this.touchOp(byOp);
    if (c.queue) {
      const q = this.queue(c.queue);
      if (answered) { q.talked++; q.talk_s_total += entry.talk_s; }
      this.touchQueue(c.queue);
    }
  }

  async onCommand(client, m) {
    const me = client.who.sub, d = m.data || {}, op = this.op(me);
    const commandId = `gw-${me}-${++this.seq}`;
    const reject = (code, message) => this.sendTo(client, { type: 'error', code, message, id: m.id });
    const known = ['originate', 'answer', 'hangup', 'transfer', 'pause', 'unpause', 'listen', 'whisper'];
    if (!known.includes(m.command)) return reject('invalid', 'unknown command');
    if ((m.command === 'listen' || m.command === 'whisper') && !this.isSup(client)) return reject('forbidden', 'supervisors only');
    const c = d.call_id ? this.calls.get(d.call_id) : null;
    /* As the gateway: checked against the operator's own record. */
    if (m.command === 'answer' && !(op.offered && op.offered.call_id === d.call_id)) return reject('forbidden', 'that call is not offered to you');
    if (['hangup', 'transfer'].includes(m.command) && !(op.call && op.call.call_id === d.call_id)) return reject('forbidden', 'that call is not yours');
    this.sendTo(client, { type: 'command_ack', id: m.id, command: m.command, command_id: commandId });
    if (this.kafkaDown) {   /* as callbus-gateway does once the command's TTL has passed */
      await this.later(() => this.sendTo(client, { type: 'error', code: 'not_delivered', id: m.id, command_id: commandId, command: m.command,
        message: 'Local: Message timed out: the command never reached Kafka and will not run' }));
      return;
    }
    await this.later(() => this.result(client, m.command, commandId, 'accepted'));
    switch (m.command) {
      case 'answer':
        await this.later(() => {
          const now = iso();
          Object.assign(c, { state: 'connected', answered_at: now, operator_id: me, offered_to: [], operators: [me] });
          op.offered = null; op.device = 'busy';
          op.call = { call_id: c.call_id, caller: c.caller, direction: c.direction, queue: c.queue, answered_at: now, held: false };
          const q = this.queue(c.queue);
          q.answered++; q.answered_within_sl++; q.wait_s_total += 3;
          this.touchCall(c.call_id);
          this.touchOp(me);
          this.touchQueue(c.queue);
          this.result(client, 'answer', commandId, 'succeeded');
        });
        break;
      case 'hangup':
        await this.later(() => {
          this.endCall(c, me);
          this.result(client, 'hangup', commandId, 'succeeded');
        });
        break;
      case 'transfer':
        await this.later(() => {
          c.operator_id = null;
          op.call = null; op.device = 'ready';
          this.touchCall(c.call_id);
          this.touchOp(me);
          this.result(client, 'transfer', commandId, 'succeeded');
        });
        break;
      case 'pause':
        await this.later(() => {
          const who = d.operator_id && this.isSup(client) ? d.operator_id : me;
          this.pause(who, d.reason);
          this.result(client, 'pause', commandId, 'succeeded');
        });
        break;
      case 'unpause':
        await this.later(() => {
          const who = d.operator_id && this.isSup(client) ? d.operator_id : me;
          const o = this.op(who);
          o.paused = false; o.pause_reason = null; o.device = 'ready';
          o.queues.forEach((q) => { q.paused = false; q.reason = null; });
          this.touchOp(who);
          this.result(client, 'unpause', commandId, 'succeeded');
        });
        break;
      case 'originate': {
        if (!/^[0-9*#+]+$/.test(String(d.number || ''))) { await this.later(() => this.result(client, 'originate', commandId, 'failed', { reason: 'bad number' })); break; }
        const id = `17957${70000 + ++this.callSeq}.${this.callSeq}`;
        const call = { call_id: id, state: 'started', direction: 'outbound', caller: { number: me, name: null }, party: d.number, queue: null, position: null,
          operator_id: me, offered_to: [], operators: [me], started_at: iso(), queued_at: null, answered_at: null };
        await this.later(() => {
          this.calls.set(id, call);
          op.call = { call_id: id, caller: { number: d.number }, direction: 'outbound', queue: null, answered_at: null, held: false };
          this.touchCall(id);
          this.touchOp(me);
          this.result(client, 'originate', commandId, 'succeeded', { call_id: id });
        });
        await this.later(() => {
          call.state = 'connected'; call.answered_at = iso();
          op.call = { ...op.call, answered_at: call.answered_at };
          op.device = 'busy';
          this.touchCall(id);
          this.touchOp(me);
        });
        break;
      }
      case 'listen':
      case 'whisper':
        await this.later(() => this.result(client, m.command, commandId, 'succeeded', { call_id: 'spy-' + commandId }));
        break;
    }
    this.wake();
  }

  /* ---------- waiting, for tests ---------- */

  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }

  /* Resolves with the first client message matching pred (already received or future). */
  waitFor(pred, timeoutMs = 5000, from = 0) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const check = () => {
        const hit = this.received.slice(from).find(pred);
        if (hit) return resolve(hit);
        if (Date.now() - t0 > timeoutMs) return reject(new Error('timed out waiting for a client message'));
        this.waiters.push(check);
        setTimeout(() => { const i = this.waiters.indexOf(check); if (i >= 0) { this.waiters.splice(i, 1); check(); } }, 100);
      };
      check();
    });
  }

  waitForCommand(name, from = this.received.length, timeoutMs = 5000) {
    return this.waitFor((r) => r.msg.type === 'command' && r.msg.command === name, timeoutMs, from);
  }

  close() {
    for (const c of this.clients) c.ws.terminate();
    return new Promise((r) => { this.wss.close(); this.http.close(() => r()); });
  }
}

module.exports = { FakeGateway, makeToken, parseToken, stateOf };

if (require.main === module) {
  const gw = new FakeGateway();
  const n = Number(process.argv[3] || 0);
  if (n) gw.populate(n);
  gw.start(Number(process.argv[2] || 8089)).then((url) => {
    console.log('fake gateway on ' + url);
    console.log('operator:   ' + url + '#token=' + makeToken('op101'));
    console.log('supervisor: ' + url + '#token=' + makeToken('sup1', 'supervisor'));
    console.log('offer a call: curl -X POST "' + url + 'fake/offer?caller=5551001&operator=op101"');
    console.log('drop sockets: curl -X POST ' + url + 'fake/drop');
  });
}
