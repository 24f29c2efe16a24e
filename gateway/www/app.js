/* callbus operator page: plain JS, no build step, no external resources.
 *
 * Speaks the gateway protocol callbus.v1 (docs/gateway-protocol.md) on
 * ws(s)://<this host>/ws. The state it shows is the gateway's view
 * (gateway/view.h): a snapshot replaces it, events update it the way
 * gateway/view.c does, a resume replays the missed events in order. The
 * state, the stream position (epoch, pos) and the token are kept in
 * sessionStorage, so a reload or a reconnect resumes where it was instead
 * of starting from nothing.
 *
 * Token renewal, for a CRM that embeds the page in an iframe: before the
 * token expires the page posts {type: "callbus.token_request", operator_id,
 * expires} to its parent window; the CRM answers with {type:
 * "callbus.token", token} (window.postMessage; it may also send one
 * unasked). A token for the same operator is sent to the gateway as
 * "renew" and used for later reconnects once the gateway says "renewed";
 * a token for another operator signs that operator in afresh. Only the
 * parent window is listened to. */
(function () {
  'use strict';

  var PROTOCOL = 'callbus.v1';
  var RECENT_MAX = 10;          /* VIEW_RECENT_CALLS */
  var LOG_MAX = 30;
  var PING_EVERY_MS = 25000;
  var PONG_WAIT_MS = 10000;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var RENEW_LEAD_MS = 60000;    /* ask for a new token this long before expiry (at most half the time left) */
  var RENEW_RETRY_MS = 10000;
  var K_TOKEN = 'callbus.token';
  var K_STATE = 'callbus.state';

  /* Close codes after which reconnecting with the same token is pointless. */
  var FATAL_CLOSE = {
    4001: 'The token was refused. Sign in again with a valid token.',
    4002: 'Your session has expired. Sign in again with a new token.',
    4003: 'This token is for another site.',
    4009: 'This page\'s address is not allowed to connect to the gateway.'
  };

  /* ---------- state ---------- */

  function emptyState() {
    return {
      epoch: null, pos: 0, synced: false, /* synced: holds a snapshot's state */
      me: null, role: null, site: null, expires: null,
      ops: {},      /* operator id -> state as in the snapshot */
      calls: {},    /* call id -> active call info (+ owners) */
      log: [],      /* commands sent and their results, newest first */
      cmdIds: {}    /* Kafka command id -> client command id */
    };
  }

  var S = emptyState();
  var token = null;
  var ws = null;
  var connState = 'offline';   /* offline | connecting | connected | reconnecting */
  var kafkaDown = false;       /* the gateway said it lost the site's Kafka: what we show may be stale */
  var attempt = 0;
  var reconnectTimer = null, reconnectTick = null, pingTimer = null, pongTimer = null;
  var renewTimer = null, pendingToken = null;
  var cmdSeq = 0;

  function save() {
    try { sessionStorage.setItem(K_STATE, JSON.stringify(S)); } catch (e) { /* full or disabled */ }
  }

  function load() {
    try {
      var s = JSON.parse(sessionStorage.getItem(K_STATE) || 'null');
      if (s && typeof s === 'object' && s.ops && s.calls) {
        var base = emptyState();
        for (var k in base) if (!(k in s)) s[k] = base[k];
        return s;
      }
    } catch (e) { /* ignore a damaged copy */ }
    return emptyState();
  }

  function resetState() {
    S = emptyState();
    try { sessionStorage.removeItem(K_STATE); } catch (e) { /* ignore */ }
  }

  function normOp(o) {
    return {
      operator_id: o.operator_id,
      member_name: o.member_name || null,
      logged_in: !!o.logged_in,
      queues: Array.isArray(o.queues) ? o.queues : [],
      paused: !!o.paused,
      pause_reason: o.pause_reason || null,
      device: o.device || 'unknown',
      offered: o.offered || null,
      call: o.call || null,
      recent: Array.isArray(o.recent) ? o.recent : []
    };
  }

  function findOp(id) { return id && Object.prototype.hasOwnProperty.call(S.ops, id) ? S.ops[id] : null; }

  /* An operator sees only their own state; a supervisor sees everyone's. */
  function getOp(id) {
    if (!id) return null;
    var op = findOp(id);
    if (op) return op;
    if (S.role !== 'supervisor' && id !== S.me) return null;
    op = S.ops[id] = normOp({ operator_id: id });
    return op;
  }

  function addUnique(arr, v) { if (v && arr.indexOf(v) < 0) arr.push(v); }

  function namedOps(d) {
    var out = [];
    ['operator_id', 'answered_by', 'from_operator_id', 'to_operator_id'].forEach(function (k) {
      if (typeof d[k] === 'string') addUnique(out, d[k]);
    });
    if (Array.isArray(d.operators)) d.operators.forEach(function (x) { if (typeof x === 'string') addUnique(out, x); });
    return out;
  }

  /* The other end: the caller of an inbound call, the dialled number of an
   * outbound one (view.c call_party). */
  function party(info) {
    if (info.direction === 'outbound' && (info.party || info.exten)) return { number: info.party || info.exten };
    return info.caller || null;
  }

  function inProgress(c, answeredAt) {
    return {
      call_id: c.call_id, caller: party(c), direction: c.direction || null,
      answered_at: answeredAt || null, held: !!c.held, started_at: c.started_at || null
    };
  }

  function eachOwnerOp(c, fn) {
    (c.owners || []).forEach(function (id) { var op = findOp(id); if (op) fn(op); });
  }

  function release(callId, ids, onlyOffers) {
    ids.forEach(function (id) {
      var op = findOp(id);
      if (!op) return;
      if (op.offered && op.offered.call_id === callId) op.offered = null;
      if (!onlyOffers && op.call && op.call.call_id === callId) op.call = null;
    });
  }

  function applySnapshot(m) {
    var keepLog = S.log, keepIds = S.cmdIds;
    var me = S.me, role = S.role, site = S.site, expires = S.expires;
    S = emptyState();
    S.log = keepLog; S.cmdIds = keepIds;
    S.me = me; S.role = m.role || role; S.site = site; S.expires = expires;
    S.epoch = m.epoch; S.pos = m.pos || 0; S.synced = true;
    (m.operators || []).forEach(function (o) { if (o && o.operator_id) S.ops[o.operator_id] = normOp(o); });
    if (m.operator && m.operator.operator_id) {
      S.ops[m.operator.operator_id] = normOp(m.operator);
      if (!S.me) S.me = m.operator.operator_id;
    }
    (m.calls || []).forEach(function (c) {
      if (!c || !c.call_id) return;
      var info = Object.assign({}, c);
      info.owners = namedOps(c);
      (c.offered_to || []).forEach(function (x) { addUnique(info.owners, x); });
      Object.keys(S.ops).forEach(function (id) {
        var op = S.ops[id];
        if ((op.call && op.call.call_id === c.call_id) || (op.offered && op.offered.call_id === c.call_id)) addUnique(info.owners, id);
      });
      if (S.role !== 'supervisor') addUnique(info.owners, S.me);
      S.calls[c.call_id] = info;
    });
  }

  function onOperatorEvent(t, d) {
    var op = getOp(d.operator_id);
    if (!op) return;
    if (typeof d.member_name === 'string') op.member_name = d.member_name;
    var q = typeof d.queue === 'string' ? d.queue : null;   /* supervisors only: operators never see queue names */
    var qe = q ? op.queues.filter(function (x) { return x.queue === q; })[0] : null;
    if (t === 'logged_in') {
      op.logged_in = true;
      if (q && !qe) op.queues.push({ queue: q, paused: false });
    } else if (t === 'logged_out') {
      if (q) op.queues = op.queues.filter(function (x) { return x.queue !== q; });
      else op.queues = [];
      op.logged_in = op.queues.length > 0;
    } else if (t === 'paused') {
      if (q) {
        if (!qe) op.queues.push(qe = { queue: q });
        qe.paused = true; qe.reason = d.reason || undefined;
        op.paused = op.queues.every(function (x) { return x.paused; });
      } else {
        op.paused = true;
      }
      op.pause_reason = d.reason || null;
    } else if (t === 'ready') {
      if (qe) { qe.paused = false; delete qe.reason; }
      op.paused = false; op.pause_reason = null; op.device = 'ready';
    } else if (t === 'ringing' || t === 'busy' || t === 'unavailable') {
      op.device = t;
    }
  }

  function onCallEvent(t, d, time) {
    var id = d.call_id;
    if (typeof id !== 'string' || !id) return;
    var c = S.calls[id];
    var named = namedOps(d);
    if (S.role !== 'supervisor' && S.me) addUnique(named, S.me);  /* it reached my stream: it is mine */
    if (t === 'ended') { onEnded(id, c, d, named); return; }
    if (!c) c = S.calls[id] = { call_id: id, state: 'started', held: false, owners: [] };
    named.forEach(function (x) { addUnique(c.owners, x); });
    ['caller', 'direction', 'queue', 'position', 'party', 'exten', 'operator_id'].forEach(function (k) {
      if (d[k] !== undefined) c[k] = d[k];
    });
    if (t === 'started') {
      c.started_at = time || null;
      var op = findOp(d.operator_id);
      if (op && !op.call) op.call = inProgress(c, null);
    } else if (t === 'queued') {
      c.state = 'queued';
    } else if (t === 'offered') {
      var to = getOp(d.operator_id);
      if (!d.operator_id) return;
      c.state = 'offered';
      if (to) to.offered = { call_id: id, caller: party(c), since: time || null };
    } else if (t === 'answered') {
      c.state = 'answered'; c.answered_at = time || null;
      release(id, c.owners, true);
      var who = findOp(d.operator_id);
      if (who) { who.call = inProgress(c, time); who.offered = null; return; }
      eachOwnerOp(c, function (o) { if (o.call && o.call.call_id === id) o.call = inProgress(c, time); });
    } else if (t === 'held' || t === 'unheld') {
      c.held = t === 'held';
      eachOwnerOp(c, function (o) { if (o.call && o.call.call_id === id) o.call.held = c.held; });
    } else if (t === 'transferred') {
      var from = findOp(d.from_operator_id);
      if (from && from.call && from.call.call_id === id) from.call = null;
      if (d.to_operator_id) c.operator_id = d.to_operator_id;
      c.transferred_to = d.to || d.to_operator_id || null;
    } else if (t === 'abandoned') {
      c.state = 'abandoned';
      release(id, c.owners, false);
    }
  }

  function onEnded(id, c, d, named) {
    var info = Object.assign({}, c || {}, d);
    var owners = (c ? c.owners.slice() : []);
    named.forEach(function (x) { addUnique(owners, x); });
    var entry = {
      call_id: id, caller: party(info), direction: info.direction || null,
      disposition: info.disposition || null, duration_s: info.duration_s == null ? null : info.duration_s,
      talk_s: info.talk_s == null ? null : info.talk_s, ended_at: info.ended_at || null
    };
    owners.forEach(function (x) {
      var op = getOp(x);
      if (!op) return;
      op.recent.unshift(Object.assign({}, entry));
      if (op.recent.length > RECENT_MAX) op.recent.length = RECENT_MAX;
    });
    release(id, owners, false);
    delete S.calls[id];
  }

  function onResult(ev) {
    var d = ev.data || {};
    var cid = S.cmdIds[d.command_id];
    var row = null;
    for (var i = 0; i < S.log.length; i++) {
      if ((cid && S.log[i].id === cid) || S.log[i].command_id === d.command_id) { row = S.log[i]; break; }
    }
    if (!row) {
      row = { id: null, command_id: d.command_id, command: d.command_type || 'command', label: '', history: [] };
      addLog(row);
    }
    row.status = d.status || 'unknown';
    row.reason = d.reason || null;
    row.at = ev.time || new Date().toISOString();
    row.history.push(row.status);
  }

  function applyEvent(ev) {
    if (!ev || typeof ev.type !== 'string') return;
    var t = ev.type, d = ev.data || {};
    if (t === 'callbus.result') onResult(ev);
    else if (t.indexOf('callbus.operator.') === 0) onOperatorEvent(t.slice(17), d);
    else if (t.indexOf('callbus.call.') === 0) onCallEvent(t.slice(13), d, ev.time);
  }

  /* One numbered message of my stream. Returns false on a gap. */
  function applyNumbered(m) {
    if (m.epoch !== S.epoch) return false;
    if (m.pos <= S.pos) return true;           /* already applied (duplicate) */
    if (m.pos !== S.pos + 1) return false;     /* missed something */
    applyEvent(m.event);
    S.pos = m.pos;
    return true;
  }

  /* ---------- log of commands ---------- */

  function addLog(row) {
    S.log.unshift(row);
    if (S.log.length > LOG_MAX) S.log.length = LOG_MAX;
  }

  function note(text, kind) {
    addLog({ id: null, command: 'note', label: text, status: kind || 'info', history: [], at: new Date().toISOString() });
  }

  /* ---------- connection ---------- */

  function wsUrl() {
    return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws';
  }

  function setConn(state, text) {
    connState = state;
    var el = $('conn');
    el.dataset.state = state;
    el.dataset.kafka = kafkaDown && state === 'connected' ? 'down' : 'up';
    $('conn-text').textContent = state === 'connected' && kafkaDown ? 'Connected — live updates delayed' : text;
    renderControls();
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTick);
    reconnectTimer = reconnectTick = null;
    if (!token) return;
    if (ws) { var old = ws; ws = null; try { old.close(); } catch (e) { /* ignore */ } }
    setConn(attempt ? 'reconnecting' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    var sock;
    try { sock = new WebSocket(wsUrl(), PROTOCOL); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = function () {
      if (sock !== ws) return;
      var auth = { type: 'auth', token: token };
      if (S.synced && S.epoch != null) auth.resume = { epoch: S.epoch, pos: S.pos };
      sock.send(JSON.stringify(auth));
    };
    sock.onmessage = function (e) {
      if (sock !== ws) return;
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m && typeof m === 'object') onMessage(m);
    };
    sock.onclose = function (e) {
      if (sock !== ws) return;
      ws = null;
      stopPing();
      /* A renewal in flight: its token is the one to reconnect with. */
      if (pendingToken) { keepToken(pendingToken); pendingToken = null; }
      if (FATAL_CLOSE[e.code]) {
        signOut(FATAL_CLOSE[e.code]);
        return;
      }
      scheduleReconnect(e.code === 4008 ? 4 : 0);
    };
  }

  function scheduleReconnect(extra) {
    if (!token) return;
    attempt++;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.min(attempt - 1 + (extra || 0), 10)));
    var delay = Math.round(base / 2 + Math.random() * base / 2);
    var at = Date.now() + delay;
    var tick = function () {
      var left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setConn('reconnecting', 'Connection lost — reconnecting' + (left > 1 ? ' in ' + left + ' s…' : '…'));
    };
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTick);
    tick();
    reconnectTick = setInterval(tick, 1000);
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (ws) { var s = ws; ws = null; try { s.close(); } catch (e) { /* ignore */ } }
    attempt = 0;
    scheduleReconnect();
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(function () {
      if (!send({ type: 'ping' })) return;
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () { reconnectNow(); }, PONG_WAIT_MS);   /* a dead link */
    }, PING_EVERY_MS);
  }

  function stopPing() {
    clearInterval(pingTimer); clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
  }

  /* The gateway's view is only as live as its Kafka: say when it is not. */
  function setKafka(down) {
    if (down !== kafkaDown) {
      kafkaDown = down;
      note(down ? 'Live updates delayed: the gateway cannot reach the call centre\'s message bus. Calls still ring on your phone; commands may fail.'
                : 'Live updates restored.', down ? 'error' : 'info');
    }
    if (connState === 'connected') setConn('connected', 'Connected');
  }

  function synced() {
    attempt = 0;
    setConn('connected', 'Connected');
    startPing();
  }

  function onMessage(m) {
    clearTimeout(pongTimer);
    switch (m.type) {
      case 'status':
        setKafka(m.kafka === 'down');
        break;
      case 'welcome':
        setKafka(m.kafka === 'down');
        if (S.me && m.operator_id && S.me !== m.operator_id) {
          /* Another operator's token: what we kept is not theirs. */
          resetState();
          S.me = m.operator_id;
          reconnectNow();
          return;
        }
        S.me = m.operator_id || S.me;
        S.role = m.role || S.role;
        S.site = m.site || S.site;
        S.expires = m.expires || null;
        scheduleRenewal();
        break;
      case 'snapshot':
        applySnapshot(m);
        if (m.recovered === false) note('State reloaded from the gateway (' + (m.reason || 'resume not possible') + ')', 'info');
        synced();
        break;
      case 'resume': {
        var ok = true;
        (m.events || []).forEach(function (x) { if (ok) ok = applyNumbered(x); });
        if (!ok) { resetKeepIdentity(); reconnectNow(); return; }
        S.pos = Math.max(S.pos, m.pos || 0);
        synced();
        break;
      }
      case 'event':
        if (!S.synced) return;
        if (!applyNumbered(m)) { save(); reconnectNow(); return; }   /* gap: resume fills it */
        break;
      case 'command_ack':
        if (m.id && m.command_id) {
          S.cmdIds[m.command_id] = m.id;
          S.log.forEach(function (r) { if (r.id === m.id) { r.command_id = m.command_id; if (r.status === 'sent') r.status = 'queued'; } });
        }
        break;
      case 'error':
        S.log.forEach(function (r) { if (m.id && r.id === m.id) { r.status = 'error'; r.reason = m.message || m.code; } });
        if (!m.id) note('Gateway: ' + (m.message || m.code || 'error'), 'error');
        break;
      case 'renewed':
        if (pendingToken) { keepToken(pendingToken); pendingToken = null; }
        S.expires = m.expires || S.expires;
        scheduleRenewal();
        break;
      case 'pong':
        break;
      default:
        return;
    }
    save();
    render();
  }

  function resetKeepIdentity() {
    var me = S.me, role = S.role, site = S.site, log = S.log;
    resetState();
    S.me = me; S.role = role; S.site = site; S.log = log;
  }

  /* ---------- commands ---------- */

  function command(name, data, label) {
    var id = 'c' + Date.now().toString(36) + '-' + (++cmdSeq);
    var row = { id: id, command_id: null, command: name, label: label || '', status: 'sent', reason: null, history: [], at: new Date().toISOString() };
    if (connState !== 'connected' || !send({ type: 'command', id: id, command: name, data: data || {} })) {
      row.status = 'error'; row.reason = 'not connected';
    }
    addLog(row);
    save();
    render();
  }

  /* ---------- token renewal (see the top of this file) ---------- */

  /* The gateway sends seconds since the epoch; ISO strings are taken too. */
  function expiresAt() {
    var e = S.expires;
    if (typeof e === 'number') return e * 1000;
    var t = e ? Date.parse(e) : NaN;
    return isNaN(t) ? null : t;
  }

  function scheduleRenewal() {
    clearTimeout(renewTimer);
    renewTimer = null;
    var at = expiresAt();
    if (!token || !at) return;
    var left = at - Date.now();
    renewTimer = setTimeout(requestToken, Math.max(0, left - Math.min(RENEW_LEAD_MS, left / 2)));
  }

  /* Ask the embedding CRM, and again every few seconds until a token comes
   * or this one expires (then the gateway closes with 4002). */
  function requestToken() {
    renewTimer = null;
    var at = expiresAt();
    if (!token || !at || window.parent === window) return;
    window.parent.postMessage({ type: 'callbus.token_request', operator_id: S.me, expires: S.expires }, '*');
    var left = at - Date.now();
    if (left > 0) renewTimer = setTimeout(requestToken, Math.max(1000, Math.min(RENEW_RETRY_MS, left / 2)));
  }

  function tokenSubject(t) {
    try {
      var b = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(b)).sub || null;
    } catch (e) { return null; }
  }

  function keepToken(t) {
    token = t;
    try { sessionStorage.setItem(K_TOKEN, t); } catch (e) { /* ignore */ }
  }

  function newToken(t) {
    if (!t || t === token) return;
    if (!token || !S.me || tokenSubject(t) !== S.me) { signIn(t); return; }
    clearTimeout(renewTimer);
    renewTimer = null;
    if (connState === 'connected' && send({ type: 'renew', token: t })) { pendingToken = t; return; }
    keepToken(t);   /* not connected: the next auth uses it */
  }

  function onParentMessage(e) {
    if (window.parent === window || e.source !== window.parent) return;
    var d = e.data;
    if (d && d.type === 'callbus.token' && typeof d.token === 'string') newToken(d.token.trim());
  }

  /* ---------- sign-in ---------- */

  function tokenFromFragment() {
    var h = location.hash.replace(/^#/, '');
    if (!h) return null;
    var params = new URLSearchParams(h);
    var t = params.get('token');
    if (!t) return null;
    /* Keep the token out of the address bar, history and bookmarks. */
    try { history.replaceState(null, '', location.pathname + location.search); } catch (e) { /* ignore */ }
    return t.trim();
  }

  function signIn(t) {
    if (t !== token) resetState();
    token = t;
    try { sessionStorage.setItem(K_TOKEN, t); } catch (e) { /* ignore */ }
    $('signin-error').hidden = true;
    attempt = 0;
    render();
    connect();
  }

  function signOut(message) {
    token = null;
    pendingToken = null;
    clearTimeout(renewTimer);
    renewTimer = null;
    try { sessionStorage.removeItem(K_TOKEN); } catch (e) { /* ignore */ }
    resetState();
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTick);
    stopPing();
    if (ws) { var s = ws; ws = null; try { s.close(1000); } catch (e) { /* ignore */ } }
    setConn('offline', 'Not connected');
    var err = $('signin-error');
    err.hidden = !message;
    err.textContent = message || '';
    render();
  }

  /* ---------- rendering ---------- */

  function $(id) { return document.getElementById(id); }

  function h(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else if (k.indexOf('data-') === 0 || k.indexOf('aria-') === 0) e.setAttribute(k, attrs[k]);
      else e[k] = attrs[k];
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function number(p) { return (p && (p.number || p.name)) || 'unknown number'; }

  function fmtDuration(s) {
    if (s == null || isNaN(s)) return '–';
    s = Math.max(0, Math.floor(s));
    var hh = Math.floor(s / 3600), mm = Math.floor(s / 60) % 60, ss = s % 60;
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    return hh ? hh + ':' + two(mm) + ':' + two(ss) : mm + ':' + two(ss);
  }

  function fmtTime(iso) {
    var d = iso ? new Date(iso) : null;
    if (!d || isNaN(d)) return '';
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function since(iso) {
    var t = iso ? Date.parse(iso) : NaN;
    return isNaN(t) ? null : (Date.now() - t) / 1000;
  }

  function statusOf(op) {
    if (!op) return { state: 'unknown', text: 'Unknown' };
    if (op.offered || op.device === 'ringing') return { state: 'ringing', text: 'Ringing' };
    if (op.call || op.device === 'busy') return { state: 'busy', text: 'On a call' };
    if (op.paused) return { state: 'paused', text: 'Paused' + (op.pause_reason ? ': ' + op.pause_reason : '') };
    if (op.device === 'unavailable') return { state: 'unavailable', text: 'Phone unavailable' };
    if (op.device === 'ready' || op.logged_in) return { state: 'ready', text: 'Ready' };
    return { state: 'unknown', text: 'Not logged in' };
  }

  function me() { return findOp(S.me); }

  function render() {
    var signedIn = !!token;
    $('signin').hidden = signedIn;
    $('app').hidden = !signedIn || !S.me;
    $('waiting').hidden = !signedIn || !!S.me;
    $('signout').hidden = !signedIn;
    $('who').hidden = !signedIn || !S.me;
    if (!signedIn) return;
    $('op-id').textContent = S.me || '';
    $('op-role').textContent = S.role || '';
    $('op-site').textContent = S.site ? 'site ' + S.site : '';

    var op = me();
    var st = statusOf(op);
    var badge = $('status');
    badge.textContent = st.text;
    badge.dataset.state = st.state;
    $('status-extra').textContent = op && op.paused && st.state !== 'paused'
      ? 'Paused' + (op.pause_reason ? ' (' + op.pause_reason + ')' : '') + ': no new calls will be offered' : '';

    /* offered call */
    var off = op && op.offered;
    $('offered-card').hidden = !off;
    if (off) {
      $('offered-number').textContent = number(off.caller);
      $('offered-name').textContent = (off.caller && off.caller.name) || '';
      $('accept-btn').dataset.callId = off.call_id;
    }

    /* call in progress */
    var call = op && op.call;
    $('call-card').hidden = !call;
    if (call) {
      $('call-number').textContent = number(call.caller);
      $('call-name').textContent = (call.caller && call.caller.name) || '';
      $('call-dir').textContent = call.direction === 'outbound' ? (call.answered_at ? 'outbound call' : 'calling…') : (call.direction === 'inbound' ? 'inbound call' : '');
      $('call-held').hidden = !call.held;
      var timer = $('call-timer');
      timer.dataset.since = call.answered_at || '';
      tickTimers();
    }

    renderRecent(op);
    renderLog();
    renderSupervisor();
    renderControls();
  }

  function renderControls() {
    var op = me();
    var live = connState === 'connected';
    var call = op && op.call;
    $('accept-btn').disabled = !live;
    $('hangup-btn').disabled = !live || !call;
    $('transfer-btn').disabled = !live || !call;
    $('dial-btn').disabled = !live || !!call;
    var paused = !!(op && op.paused);
    /* Show only the button that applies: Pause when ready, Ready when paused. */
    $('pause-btn').hidden = paused;
    $('pause-reason').hidden = paused;
    $('pause-form').querySelector('label[for="pause-reason"]').hidden = paused;
    $('ready-btn').hidden = !paused;
    $('pause-btn').disabled = !live;
    $('pause-reason').disabled = !live;
    $('ready-btn').disabled = !live;
    document.querySelectorAll('#operators button').forEach(function (b) { b.disabled = !live; });
  }

  function renderRecent(op) {
    var tb = $('recent').tBodies[0];
    tb.textContent = '';
    var list = (op && op.recent) || [];
    list.forEach(function (r) {
      var dur = r.talk_s != null && r.talk_s > 0 ? r.talk_s : r.duration_s;
      tb.appendChild(h('tr', { 'data-call-id': r.call_id },
        h('td', null, h('span', { class: 'num', text: number(r.caller) }),
          r.caller && r.caller.name ? h('span', { class: 'muted', text: ' ' + r.caller.name }) : null,
          r.direction === 'outbound' ? h('span', { class: 'muted', text: ' (outbound)' }) : null),
        h('td', null, h('span', { class: 'disp', 'data-disposition': r.disposition || 'unknown', text: (r.disposition || 'unknown').replace('_', ' ') })),
        h('td', { text: fmtDuration(dur) }),
        h('td', { class: 'muted', text: fmtTime(r.ended_at) })));
    });
    $('recent').hidden = list.length === 0;
    $('recent-empty').hidden = list.length > 0;
  }

  function renderLog() {
    var ol = $('log');
    ol.textContent = '';
    S.log.forEach(function (r) {
      var st = r.status || 'sent';
      ol.appendChild(h('li', { 'data-status': st },
        h('time', { class: 'muted', text: fmtTime(r.at) }),
        h('span', { class: 'cmd', text: r.command === 'note' ? '' : r.command }),
        r.label ? h('span', { class: 'label', text: r.label }) : null,
        r.command === 'note' ? null : h('span', { class: 'st', text: r.history && r.history.length > 1 ? r.history.join(' → ') : st }),
        r.reason ? h('span', { class: 'reason', text: r.reason }) : null));
    });
    $('log-empty').hidden = S.log.length > 0;
  }

  function renderSupervisor() {
    var sup = S.role === 'supervisor';
    $('super-card').hidden = !sup;
    if (!sup) return;
    var tb = $('operators').tBodies[0];
    tb.textContent = '';
    Object.keys(S.ops).sort().forEach(function (id) {
      var o = S.ops[id], st = statusOf(o);
      var callCell = h('td');
      if (o.call) {
        callCell.appendChild(h('span', { class: 'num', text: number(o.call.caller) }));
        callCell.appendChild(h('span', { class: 'timer small', 'data-since': o.call.answered_at || '' }));
      } else if (o.offered) {
        callCell.appendChild(h('span', { class: 'muted', text: 'ringing: ' + number(o.offered.caller) }));
      }
      var actions = h('td', { class: 'actions' });
      if (id !== S.me) {
        actions.appendChild(h('button', { type: 'button', text: 'Listen', 'aria-label': 'Listen to ' + id, onclick: function () { command('listen', { operator_id: id }, id); } }));
        actions.appendChild(h('button', { type: 'button', text: 'Whisper', 'aria-label': 'Whisper to ' + id, onclick: function () { command('whisper', { operator_id: id }, id); } }));
      }
      tb.appendChild(h('tr', { 'data-operator-id': id },
        h('th', { scope: 'row' }, h('span', { text: id }), o.member_name && o.member_name !== id ? h('span', { class: 'muted', text: ' ' + o.member_name }) : null),
        h('td', null, h('span', { class: 'badge', 'data-state': st.state, text: st.text })),
        callCell, actions));
    });
    var cb = $('active-calls').tBodies[0];
    cb.textContent = '';
    var ids = Object.keys(S.calls);
    ids.forEach(function (cid) {
      var c = S.calls[cid];
      cb.appendChild(h('tr', { 'data-call-id': cid },
        h('td', { class: 'num', text: number(party(c)) }),
        h('td', { text: c.state || '' }),
        h('td', { text: c.operator_id || '' }),
        h('td', { text: c.queue || '' }),
        h('td', { class: 'timer small', 'data-since': c.answered_at || c.started_at || '' })));
    });
    $('active-calls').hidden = ids.length === 0;
    $('calls-empty').hidden = ids.length > 0;
    tickTimers();
  }

  function tickTimers() {
    var main = $('call-timer');
    if (!$('call-card').hidden) {
      var s = since(main.dataset.since);
      main.textContent = s == null ? '0:00' : fmtDuration(s);
      main.dataset.running = s == null ? 'false' : 'true';
    }
    document.querySelectorAll('#super-card .timer').forEach(function (e) {
      var x = since(e.dataset.since);
      e.textContent = x == null ? '' : ' ' + fmtDuration(x);
    });
  }

  /* ---------- wiring ---------- */

  function wire() {
    $('signin-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var t = $('token-input').value.trim();
      if (!t) return;
      $('token-input').value = '';
      signIn(t);
    });
    $('signout').addEventListener('click', function () { signOut(null); });
    $('pause-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var reason = $('pause-reason').value;
      command('pause', { reason: reason }, reason);
    });
    $('ready-btn').addEventListener('click', function () { command('unpause', {}, ''); });
    $('accept-btn').addEventListener('click', function () {
      var op = me();
      if (op && op.offered) command('answer', { call_id: op.offered.call_id }, number(op.offered.caller));
    });
    $('hangup-btn').addEventListener('click', function () {
      var op = me();
      if (op && op.call) command('hangup', { call_id: op.call.call_id }, number(op.call.caller));
    });
    $('transfer-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var op = me(), to = $('transfer-to').value.trim();
      if (!op || !op.call || !to) return;
      command('transfer', { call_id: op.call.call_id, to: to, kind: 'blind' }, number(op.call.caller) + ' → ' + to);
      $('transfer-to').value = '';
    });
    $('dial-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var n = $('dial-number').value.replace(/[\s()-]/g, '');
      if (!n) return;
      command('originate', { number: n }, n);
      $('dial-number').value = '';
    });
    setInterval(tickTimers, 1000);
    window.addEventListener('message', onParentMessage);
    window.addEventListener('online', function () { if (token && connState === 'reconnecting') { attempt = 0; connect(); } });
  }

  function start() {
    wire();
    var fromUrl = tokenFromFragment();
    var stored = null;
    try { stored = sessionStorage.getItem(K_TOKEN); } catch (e) { /* ignore */ }
    S = load();
    if (fromUrl && fromUrl !== stored) {
      resetState();
      token = null;
      signIn(fromUrl);
      return;
    }
    token = fromUrl || stored;
    render();
    if (token) connect();
    else setConn('offline', 'Not connected');
  }

  /* For tests and debugging only: read-only peek at the state. */
  window.callbus = { state: function () { return JSON.parse(JSON.stringify(S)); }, connection: function () { return connState; } };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
