/* callbus operator page and supervisor wallboard: plain JS, no build step,
 * no external resources.
 *
 * Speaks the gateway protocol callbus.v1 (docs/gateway-protocol.md) on
 * ws(s)://<this host>/ws. It renders the agent's state records as the
 * gateway projects them and reduces nothing itself: a snapshot replaces
 * what it holds (a supervisor's comes in parts, painted as they arrive), an
 * update replaces one record (null removes it), a resume replays the missed
 * updates in order; the results of commands arrive as events. An operator
 * sees their own record: status, offered call, call in progress, recent
 * calls. A supervisor sees the wallboard (wallboard.js). An operator's
 * state, the stream position (epoch, pos) and the token are kept in
 * sessionStorage, so a reload or a reconnect resumes where it was instead of
 * starting from nothing; a supervisor's site is not kept (a reload gets a
 * fresh snapshot, a reconnect resumes from memory).
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
  var LOG_MAX = 30;
  var PING_EVERY_MS = 25000;
  var PONG_WAIT_MS = 10000;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var RENEW_LEAD_MS = 60000;    /* ask for a new token this long before expiry (at most half the time left) */
  var RENEW_RETRY_MS = 10000;
  var SAVE_EVERY_MS = 1000;
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
      epoch: null, pos: 0, synced: false, /* synced: holds a whole snapshot's records */
      part: 0,                  /* snapshot parts received so far */
      me: null, role: null, site: null, expires: null,
      own: null,                /* my callbus.state.operator record */
      ops: {}, calls: {}, queues: {},   /* supervisors: the site's records */
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
  var renewTimer = null, pendingToken = null, saveTimer = null;
  var cmdSeq = 0;
  var wallboard = null;

  /* A supervisor's site is hundreds of records: not worth storing on every
   * update; a reload gets it afresh. */
  function saveNow() {
    clearTimeout(saveTimer);
    saveTimer = null;
    var keep = S;
    if (S.role === 'supervisor') {
      keep = Object.assign({}, S, { ops: {}, calls: {}, queues: {}, synced: false, epoch: null, pos: 0 });
    }
    try { sessionStorage.setItem(K_STATE, JSON.stringify(keep)); } catch (e) { /* full or disabled */ }
  }

  function save() {
    if (!saveTimer) saveTimer = setTimeout(saveNow, S.role === 'supervisor' ? SAVE_EVERY_MS : 0);
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
    if (wallboard) wallboard.reset();
    try { sessionStorage.removeItem(K_STATE); } catch (e) { /* ignore */ }
  }

  /* ---------- what the gateway sends ---------- */

  var TABLES = { operator: 'ops', call: 'calls', queue: 'queues' };

  function putRecord(kind, id, rec) {
    var table = S[TABLES[kind]];
    if (!table || typeof id !== 'string') return;
    if (rec) table[id] = rec;
    else delete table[id];
    if (wallboard && S.role === 'supervisor') wallboard.put(kind, id, rec || null);
  }

  function putAll(kind, list, key) {
    (list || []).forEach(function (r) { if (r && typeof r[key] === 'string') putRecord(kind, r[key], r); });
  }

  /* Part 1 (or an operator's only part) replaces everything; parts 2..N
   * follow at the same position. Returns false when a part is missing. */
  function applySnapshot(m) {
    var part = m.part || 1;
    if (part === 1) {
      var keep = { log: S.log, cmdIds: S.cmdIds, me: S.me, site: S.site, expires: S.expires, role: m.role || S.role };
      S = Object.assign(emptyState(), keep);
      if (wallboard) wallboard.reset();
      S.epoch = m.epoch; S.pos = m.pos || 0;
      S.own = m.operator || null;
      if (!S.me && S.own) S.me = S.own.operator_id;
      putAll('queue', m.queues, 'queue');
    } else if (part !== S.part + 1 || m.epoch !== S.epoch || m.pos !== S.pos) {
      return false;
    }
    S.part = part;
    putAll('operator', m.operators, 'operator_id');
    putAll('call', m.calls, 'call_id');
    S.synced = part >= (m.parts || 1);
    if (part === 1) performance.mark('callbus:snapshot-part1');
    if (S.synced) performance.mark('callbus:snapshot-complete');
    return true;
  }

  function applyUpdate(m) {
    var rec = m.state && typeof m.state === 'object' ? m.state : null;
    if (m.kind === 'operator' && m.id === S.me) {
      /* A supervisor's own record comes without recent calls: keep the snapshot's. */
      S.own = rec && S.own && !rec.recent ? Object.assign({}, rec, { recent: S.own.recent }) : rec;
    }
    if (S.role === 'supervisor') putRecord(m.kind, m.id, rec);
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

  /* One numbered message of my stream. Returns false on a gap. */
  function applyNumbered(m) {
    if (m.epoch !== S.epoch) return false;
    if (m.pos <= S.pos) return true;           /* already applied (duplicate) */
    if (m.pos !== S.pos + 1) return false;     /* missed something */
    if (m.type === 'update') applyUpdate(m);
    else if (m.type === 'event' && m.event && m.event.type === 'callbus.result') onResult(m.event);
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
        if (!applySnapshot(m)) { resetKeepIdentity(); reconnectNow(); return; }
        if (m.recovered === false && (m.part || 1) === 1) note('State reloaded from the gateway (' + (m.reason || 'resume not possible') + ')', 'info');
        if (S.synced) synced();
        break;
      case 'resume': {
        var ok = true;
        (m.events || []).forEach(function (x) { if (ok) ok = applyNumbered(x); });
        if (!ok) { resetKeepIdentity(); reconnectNow(); return; }
        S.pos = Math.max(S.pos, m.pos || 0);
        synced();
        break;
      }
      case 'update':
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
    /* A supervisor's updates are the wallboard's to paint (wallboard.js). */
    if (S.role === 'supervisor' && m.type === 'update') return;
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

  var fmtDuration = window.CallbusFormat.duration;

  function fmtTime(iso) {
    var d = iso ? new Date(iso) : null;
    if (!d || isNaN(d)) return '';
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function since(iso) { return window.CallbusFormat.secondsSince(iso, Date.now()); }

  /* The agent's state (docs/messages.md) as the badge shows it. */
  var STATUS = {
    ringing: ['ringing', 'Ringing'], on_call: ['busy', 'On a call'], paused: ['paused', 'Paused'],
    unavailable: ['unavailable', 'Phone unavailable'], ready: ['ready', 'Ready'], logged_out: ['unknown', 'Not logged in']
  };

  function statusOf(op) {
    var s = op && STATUS[op.state];
    if (!s) return { state: 'unknown', text: 'Unknown' };
    var text = s[1];
    if (op.state === 'paused' && op.pause_reason) text += ': ' + op.pause_reason;
    return { state: s[0], text: text };
  }

  function render() {
    var signedIn = !!token;
    var sup = S.role === 'supervisor';
    $('signin').hidden = signedIn;
    $('app').hidden = !signedIn || !S.me;
    $('app').dataset.role = sup ? 'supervisor' : 'operator';
    $('waiting').hidden = !signedIn || !!S.me;
    $('signout').hidden = !signedIn;
    $('who').hidden = !signedIn || !S.me;
    $('wallboard').hidden = !sup;
    if (!signedIn) return;
    $('op-id').textContent = S.me || '';
    $('op-role').textContent = S.role || '';
    $('op-site').textContent = S.site ? 'site ' + S.site : '';
    if (!sup) renderOperator();
    renderLog();
    renderControls();
  }

  function renderOperator() {
    var op = S.own;
    var st = statusOf(op);
    var badge = $('status');
    badge.textContent = st.text;
    badge.dataset.state = st.state;
    $('status-extra').textContent = op && op.paused && op.state !== 'paused'
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
      $('call-timer').dataset.since = call.answered_at || '';
      tickTimers();
    }
    renderRecent(op);
  }

  function renderControls() {
    var op = S.own;
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
    if (wallboard) wallboard.setLive(live);
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
    var today = op && op.today;
    $('today').textContent = today ? today.handled + ' handled today' + (today.missed ? ', ' + today.missed + ' missed' : '') : '';
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

  function tickTimers() {
    var main = $('call-timer');
    if (!$('call-card').hidden) {
      var s = since(main.dataset.since);
      main.textContent = s == null ? '0:00' : fmtDuration(s);
      main.dataset.running = s == null ? 'false' : 'true';
    }
    if (wallboard && S.role === 'supervisor') wallboard.tick();
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
      var op = S.own;
      if (op && op.offered) command('answer', { call_id: op.offered.call_id }, number(op.offered.caller));
    });
    $('hangup-btn').addEventListener('click', function () {
      var op = S.own;
      if (op && op.call) command('hangup', { call_id: op.call.call_id }, number(op.call.caller));
    });
    $('transfer-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var op = S.own, to = $('transfer-to').value.trim();
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
    wallboard = window.CallbusWallboard.create({
      root: $('wallboard'), command: command, me: function () { return S.me; },
      /* The next frame's callback runs once this one is on screen. */
      onPaint: function (n) {
        timings.firstPaintOperators = n;
        requestAnimationFrame(function () { performance.mark('callbus:wallboard-painted'); });
      }
    });
    setInterval(tickTimers, 1000);
    window.addEventListener('message', onParentMessage);
    window.addEventListener('online', function () { if (token && connState === 'reconnecting') { attempt = 0; connect(); } });
    window.addEventListener('pagehide', function () { if (saveTimer) saveNow(); });
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

  /* For tests and debugging only: read-only peek at the state, and when the
   * wallboard first showed operators (performance marks). */
  var timings = {};
  window.callbus = {
    state: function () { return JSON.parse(JSON.stringify(S)); },
    position: function () { return { epoch: S.epoch, pos: S.pos, synced: S.synced }; },
    connection: function () { return connState; },
    timings: function () {
      var mark = function (n) { var e = performance.getEntriesByName(n); return e.length ? e[e.length - 1].startTime : null; };
      return { snapshotPart1: mark('callbus:snapshot-part1'), snapshotComplete: mark('callbus:snapshot-complete'),
        wallboardPainted: mark('callbus:wallboard-painted'), operators: timings.firstPaintOperators || 0 };
    }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
