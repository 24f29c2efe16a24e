'use strict';
/* A tiny stand-in for callbus-gateway, for the operator page test only.
 *
 * Serves gateway/www as static files at / and speaks callbus.v1 at /ws
 * (docs/gateway-protocol.md): welcome, snapshot, numbered events with
 * resume by (epoch, pos), command_ack and callbus.result events. Its model
 * is deliberately simple (one site, calls offered on demand by the test)
 * and written independently of the page, so the page is tested against the
 * protocol, not against a copy of its own logic. Tokens are JWT-shaped but
 * not verified: the payload's sub, role and site are taken as they are.
 *
 * Standalone:  node fake_gateway.js [port]   prints a sign-in URL and takes
 * POST /fake/offer?caller=5551001 and POST /fake/drop for manual trials. */

const http = require('http');
const fs = require('fs');
const path = require('path');
const { WebSocketServer } = require('ws');

const WWW = path.resolve(__dirname, '..', '..', 'gateway', 'www');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml', '.ico': 'image/x-icon' };

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

/* Remove queue names for an operator's eyes (view.c strip_for_operator). */
function strip(j) {
  if (Array.isArray(j)) return j.map(strip);
  if (j && typeof j === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(j)) if (k !== 'queue' && k !== 'queues' && k !== 'offered_to') o[k] = strip(v);
    return o;
  }
  return j;
}

class FakeGateway {
  constructor(opts = {}) {
    this.site = opts.site || 'riga';
    this.epoch = opts.epoch || 'fake-' + Date.now().toString(36);
    this.streams = new Map();      /* operator id | '*site*' -> {pos, history[]} */
    this.ops = new Map();          /* operator id -> state */
    this.calls = new Map();        /* call id -> {call_id, caller, state, operator_id, queue, ...} */
    this.clients = new Set();
    this.received = [];            /* every client message, with the operator */
    this.replies = [];             /* first reply after auth: snapshot | resume */
    this.accepting = true;
    this.seq = 0;
    this.callSeq = 0;
    this.waiters = [];
    this.delayMs = opts.delayMs == null ? 40 : opts.delayMs;
    for (const id of opts.operators || ['op101', 'op102']) this.op(id);
  }

  op(id) {
    if (!this.ops.has(id)) {
      this.ops.set(id, { operator_id: id, member_name: 'Operator ' + id, logged_in: true, queues: [{ queue: 'support', paused: false }],
        paused: false, pause_reason: null, device: 'ready', offered: null, call: null, recent: [] });
    }
    return this.ops.get(id);
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
        this.op(p.sub);
        this.sendTo(client, { type: 'welcome', protocol: 'callbus.v1', operator_id: p.sub, role: p.role || 'operator', site: this.site, expires: p.exp || null, kafka: this.kafkaDown ? 'down' : 'up' });
        const first = m.resume ? this.resume(client, m.resume) : this.snapshot(client);
        this.replies.push({ operator: p.sub, type: first.type, recovered: first.recovered, resume: m.resume || null });
        this.sendTo(client, first);
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
    if (client.ws.readyState === 1) client.ws.send(JSON.stringify(obj));
  }

  opState(id, sup) {
    const s = JSON.parse(JSON.stringify(this.op(id)));
    return sup ? s : strip(s);
  }

  snapshot(client, extra = {}) {
    const sup = this.isSup(client), me = client.who.sub;
    const calls = [...this.calls.values()].filter((c) => sup || c.owners.includes(me)).map((c) => {
      const { owners, ...info } = c;
      return sup ? { ...info, offered_to: owners } : strip(info);
    });
    const snap = { type: 'snapshot', epoch: this.epoch, pos: this.stream(this.streamKey(client)).pos, role: sup ? 'supervisor' : 'operator', operator: this.opState(me, sup), calls };
    if (sup) snap.operators = [...this.ops.keys()].map((id) => this.opState(id, true));
    return { ...snap, ...extra };
  }

  resume(client, r) {
    const s = this.stream(this.streamKey(client));
    if (!r || r.epoch !== this.epoch) return this.snapshot(client, { recovered: false, reason: 'epoch changed' });
    if (r.pos > s.pos) return this.snapshot(client, { recovered: false, reason: 'unknown position' });
    const events = s.history.filter((m) => m.pos > r.pos);
    if (s.pos - r.pos > events.length) return this.snapshot(client, { recovered: false, reason: 'too old' });
    return { type: 'resume', epoch: this.epoch, pos: s.pos, recovered: true, events };
  }

  /* Number an event on each stream it concerns and push it to live clients. */
  emit(type, data, to) {
    const ev = { type, id: `${this.site}:fake:1:${++this.seq}`, time: new Date().toISOString(), subject: data.call_id || data.operator_id || data.command_id || null, data };
    const deliver = (key, body) => {
      const s = this.stream(key);
      const msg = { type: 'event', pos: ++s.pos, epoch: this.epoch, event: body };
      s.history.push(msg);
      if (s.history.length > 200) s.history.shift();
      for (const c of this.clients) if (c.who && this.streamKey(c) === key) this.sendTo(c, msg);
    };
    for (const id of new Set(to)) deliver(id, strip(ev));
    deliver('*site*', ev);
    return ev;
  }

  later(fn) { return new Promise((r) => setTimeout(() => { fn(); r(); }, this.delayMs)); }

  /* ---------- what the test drives ---------- */

  offerCall({ operator = 'op101', caller = '5551001', name = 'Alice Customer', queue = 'support' } = {}) {
    const id = `17956${70000 + ++this.callSeq}.${this.callSeq}`;
    const c = { call_id: id, caller: { number: caller, name }, direction: 'inbound', queue, state: 'offered', operator_id: operator, held: false, started_at: new Date().toISOString(), owners: [operator] };
    this.calls.set(id, c);
    const op = this.op(operator);
    this.emit('callbus.call.started', { call_id: id, caller: c.caller, direction: 'inbound', channel: 'PJSIP/trunk-0001', context: 'from-pstn', exten: '100' }, []);
    this.emit('callbus.call.queued', { call_id: id, caller: c.caller, queue, position: 1 }, []);
    op.offered = { call_id: id, caller: c.caller, queue, since: new Date().toISOString() };
    op.device = 'ringing';
    this.emit('callbus.call.offered', { call_id: id, caller: c.caller, queue, operator_id: operator, interface: 'PJSIP/' + operator, member_name: op.member_name }, [operator]);
    this.emit('callbus.operator.ringing', { operator_id: operator, interface: 'PJSIP/' + operator, member_name: op.member_name }, [operator]);
    return c;
  }

  hold(callId, held = true) {
    const c = this.calls.get(callId);
    c.held = held;
    for (const id of c.owners) { const op = this.op(id); if (op.call && op.call.call_id === callId) op.call.held = held; }
    this.emit(held ? 'callbus.call.held' : 'callbus.call.unheld', { call_id: callId, channel: 'PJSIP/trunk-0001' }, c.owners);
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
    this.emit('callbus.result', { command_id: commandId, command_type: cmd, status, sender: 'gateway:' + client.who.sub, ...extra }, [client.who.sub]);
  }

  async onCommand(client, m) {
    const me = client.who.sub, d = m.data || {}, op = this.op(me);
    const commandId = `gw-${me}-${++this.seq}`;
    const reject = (code, message) => this.sendTo(client, { type: 'error', code, message, id: m.id });
    const known = ['originate', 'answer', 'hangup', 'transfer', 'pause', 'unpause', 'listen', 'whisper'];
    if (!known.includes(m.command)) return reject('invalid', 'unknown command');
    if ((m.command === 'listen' || m.command === 'whisper') && !this.isSup(client)) return reject('forbidden', 'supervisors only');
    const c = d.call_id ? this.calls.get(d.call_id) : null;
    if (['answer', 'hangup', 'transfer'].includes(m.command) && (!c || !c.owners.includes(me))) return reject('forbidden', 'not your call');
    this.sendTo(client, { type: 'command_ack', id: m.id, command: m.command, command_id: commandId });
    if (this.kafkaDown) {   /* as callbus-gateway does once the command's TTL has passed */
      await this.later(() => this.sendTo(client, { type: 'error', code: 'not_delivered', id: m.id, command_id: commandId, command: m.command,
        message: 'Local: Message timed out: the command never reached Kafka and will not run' }));
      return;
    }
    await this.later(() => this.result(client, m.command, commandId, 'accepted'));
    const mi = { operator_id: me, interface: 'PJSIP/' + me, member_name: op.member_name };
    switch (m.command) {
      case 'answer':
        await this.later(() => {
          c.state = 'answered'; c.answered_at = new Date().toISOString(); c.operator_id = me;
          op.offered = null; op.device = 'busy';
          op.call = { call_id: c.call_id, caller: c.caller, direction: c.direction, queue: c.queue, answered_at: c.answered_at, held: false };
          this.emit('callbus.call.answered', { call_id: c.call_id, caller: c.caller, queue: c.queue, operator_id: me, wait_s: 3.2, ring_s: 1.1 }, c.owners);
          this.emit('callbus.operator.busy', mi, [me]);
          this.result(client, 'answer', commandId, 'succeeded');
        });
        break;
      case 'hangup':
        await this.later(() => {
          const started = Date.parse(c.started_at), answered = Date.parse(c.answered_at || c.started_at), now = Date.now();
          const entry = { call_id: c.call_id, caller: c.direction === 'outbound' ? { number: c.party } : c.caller, direction: c.direction, queue: c.queue,
            disposition: c.answered_at ? 'answered' : 'no_answer', duration_s: +((now - started) / 1000).toFixed(3), talk_s: c.answered_at ? +((now - answered) / 1000).toFixed(3) : 0, ended_at: new Date(now).toISOString() };
          for (const id of c.owners) {
            const o = this.op(id);
            o.recent.unshift(entry); o.recent.length = Math.min(o.recent.length, 10);
            if (o.call && o.call.call_id === c.call_id) o.call = null;
            if (o.offered && o.offered.call_id === c.call_id) o.offered = null;
          }
          this.calls.delete(c.call_id);
          op.device = 'ready';
          this.emit('callbus.call.ended', { call_id: c.call_id, caller: c.caller, queue: c.queue, operator_id: me, disposition: entry.disposition, hangup_cause: 16, hangup_cause_text: 'Normal Clearing',
            duration_s: entry.duration_s, talk_s: entry.talk_s, answered_by: c.answered_at ? me : undefined, operators: [me], started_at: c.started_at, answered_at: c.answered_at, ended_at: entry.ended_at, reason: 'normal' }, c.owners);
          this.emit('callbus.operator.ready', mi, [me]);
          this.result(client, 'hangup', commandId, 'succeeded');
        });
        break;
      case 'transfer':
        await this.later(() => {
          if (op.call && op.call.call_id === c.call_id) op.call = null;
          op.device = 'ready';
          this.emit('callbus.call.transferred', { call_id: c.call_id, kind: 'blind', from_operator_id: me, to: String(d.to) }, c.owners);
          this.emit('callbus.operator.ready', mi, [me]);
          this.result(client, 'transfer', commandId, 'succeeded');
        });
        break;
      case 'pause':
        await this.later(() => {
          op.paused = true; op.pause_reason = d.reason || null;
          this.emit('callbus.operator.paused', { ...mi, reason: d.reason || '' }, [me]);
          this.result(client, 'pause', commandId, 'succeeded');
        });
        break;
      case 'unpause':
        await this.later(() => {
          op.paused = false; op.pause_reason = null; op.device = 'ready';
          this.emit('callbus.operator.ready', mi, [me]);
          this.result(client, 'unpause', commandId, 'succeeded');
        });
        break;
      case 'originate': {
        if (!/^[0-9*#+]+$/.test(String(d.number || ''))) { await this.later(() => this.result(client, 'originate', commandId, 'failed', { reason: 'bad number' })); break; }
        const id = `17957${70000 + ++this.callSeq}.${this.callSeq}`;
        const call = { call_id: id, direction: 'outbound', exten: d.number, party: d.number, caller: { number: me }, state: 'started', operator_id: me, held: false, started_at: new Date().toISOString(), owners: [me] };
        await this.later(() => {
          this.calls.set(id, call);
          op.call = { call_id: id, caller: { number: d.number }, direction: 'outbound', queue: null, answered_at: null, held: false };
          this.emit('callbus.call.started', { call_id: id, operator_id: me, direction: 'outbound', caller: call.caller, channel: 'PJSIP/' + me + '-0002', context: 'phones', exten: d.number }, [me]);
          this.result(client, 'originate', commandId, 'succeeded', { call_id: id });
        });
        await this.later(() => {
          call.state = 'answered'; call.answered_at = new Date().toISOString();
          op.call = { ...op.call, answered_at: call.answered_at };
          op.device = 'busy';
          this.emit('callbus.call.answered', { call_id: id, party: d.number, ring_s: 2.0 }, [me]);
          this.emit('callbus.operator.busy', mi, [me]);
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

module.exports = { FakeGateway, makeToken, parseToken };

if (require.main === module) {
  const gw = new FakeGateway();
  gw.start(Number(process.argv[2] || 8089)).then((url) => {
    console.log('fake gateway on ' + url);
    console.log('operator:   ' + url + '#token=' + makeToken('op101'));
    console.log('supervisor: ' + url + '#token=' + makeToken('sup1', 'supervisor'));
    console.log('offer a call: curl -X POST "' + url + 'fake/offer?caller=5551001&operator=op101"');
    console.log('drop sockets: curl -X POST ' + url + 'fake/drop');
  });
}
