/* callbus supervisor wallboard: plain JS, no build step.
 *
 * Renders the site's state records as app.js hands them over (put(kind, id,
 * record); a null record removes the key): queue tiles from the agent's
 * callbus.queue.stats records, operators counted by state, the operator
 * list (sortable, filtered by state, queue and name; time in state, pause
 * reason, calls handled today, Listen/Whisper) and the active calls. It
 * computes nothing the agent publishes: every figure is a record's field,
 * except the clocks that tick from a record's time (longest wait from
 * oldest_waiting_since, time in state from state_since).
 *
 * Built for 1,000 operators: a put only marks its key; at most four times a
 * second the marked rows are updated in place (text that did not change is
 * not written), the list is re-sorted only when a sort key changed and at
 * most twice a second, and the clocks tick once a second for the rows on
 * show; the table has fixed column widths, so laying it out does not
 * measure every cell. Buttons are handled by one listener on the table. */
(function () {
  'use strict';

  var STATES = ['ringing', 'on_call', 'ready', 'paused', 'unavailable', 'logged_out'];
  var STATE_TEXT = { ringing: 'Ringing', on_call: 'On a call', ready: 'Ready', paused: 'Paused', unavailable: 'Unavailable', logged_out: 'Logged out' };
  var CALL_TEXT = { started: 'dialling', queued: 'waiting', ringing: 'ringing', connected: 'talking', held: 'on hold' };
  var RESORT_MS = 500;
  var FLUSH_MS = 250;       /* a wallboard need not repaint 60 times a second */

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }

  var fmtDuration = window.CallbusFormat.duration;
  var secondsSince = window.CallbusFormat.secondsSince;

  function number(p) { return (p && (p.number || p.name)) || 'unknown'; }
  function pct(x) { return x == null ? '–' : Math.round(x * 1000) / 10 + '%'; }
  function secs(x) { return x == null ? '–' : fmtDuration(x); }
  function queuesOf(o) { return (o && Array.isArray(o.queues) ? o.queues : []).map(function (q) { return q.queue; }); }
  function nameOf(o) { return (o.member_name || o.operator_id || '').toLowerCase(); }

  function create(opts) {
    var root = opts.root;
    var tiles = root.querySelector('#queue-tiles');
    var counts = root.querySelector('#state-counts');
    var tbody = root.querySelector('#operators tbody');
    var callBody = root.querySelector('#active-calls tbody');
    var fName = root.querySelector('#op-filter-name');
    var fState = root.querySelector('#op-filter-state');
    var fQueue = root.querySelector('#op-filter-queue');
    var shown = root.querySelector('#op-shown');

    var ops = new Map();      /* id -> {rec, tr, cells, visible} */
    var calls = new Map();    /* id -> {rec, tr, cells} */
    var queues = new Map();   /* name -> {rec, tile, f} */
    var byState = {};
    var queueNames = new Set();
    var dirtyOps = new Set(), dirtyCalls = new Set(), dirtyQueues = new Set();
    var orderDirty = false, frame = 0, lastSort = 0, sortTimer = 0, painted = false, lastFlush = 0, flushTimer = 0;
    var sort = { key: 'state', dir: 1 };
    var live = false;
    STATES.forEach(function (s) { byState[s] = 0; });

    /* ---------- records in ---------- */

    function put(kind, id, rec) {
      if (kind === 'operator') {
        var o = ops.get(id);
        if (o && o.rec) byState[o.rec.state] = (byState[o.rec.state] || 0) - 1;
        if (rec) byState[rec.state] = (byState[rec.state] || 0) + 1;
        if (!o) { if (!rec) return; o = { rec: null, tr: null }; ops.set(id, o); orderDirty = true; }
        if (rec && o.rec && sortKey(o.rec) !== sortKey(rec)) orderDirty = true;
        o.rec = rec;
        if (rec) queuesOf(rec).forEach(addQueueName);
        dirtyOps.add(id);
      } else if (kind === 'call') {
        if (!rec && !calls.has(id)) return;
        if (!calls.has(id)) calls.set(id, { rec: null, tr: null });
        calls.get(id).rec = rec;
        if (rec && rec.queue) addQueueName(rec.queue);
        dirtyCalls.add(id);
      } else if (kind === 'queue') {
        if (!queues.has(id)) queues.set(id, { rec: null, tile: null });
        queues.get(id).rec = rec;
        if (rec) addQueueName(id);
        dirtyQueues.add(id);
      }
      schedule();
    }

    function reset() {
      ops.forEach(function (o) { if (o.tr) o.tr.remove(); });
      calls.forEach(function (c) { if (c.tr) c.tr.remove(); });
      queues.forEach(function (q) { if (q.tile) q.tile.remove(); });
      ops.clear(); calls.clear(); queues.clear();
      dirtyOps.clear(); dirtyCalls.clear(); dirtyQueues.clear();
      STATES.forEach(function (s) { byState[s] = 0; });
      painted = false;
      schedule();
    }

    function addQueueName(q) {
      if (!q || queueNames.has(q)) return;
      queueNames.add(q);
      var names = Array.from(queueNames).sort();
      var opt = el('option', null, q);
      opt.value = q;
      var before = names[names.indexOf(q) + 1];
      var ref = before ? fQueue.querySelector('option[value="' + CSS.escape(before) + '"]') : null;
      fQueue.insertBefore(opt, ref);
    }

    /* The first paint at the next frame; then at most every FLUSH_MS: each
     * flush lays the table out again, whatever it changed. */
    function schedule() {
      if (frame || flushTimer) return;
      var wait = painted ? FLUSH_MS - (Date.now() - lastFlush) : 0;
      if (wait <= 0) frame = requestAnimationFrame(flush);
      else flushTimer = setTimeout(function () { flushTimer = 0; frame = requestAnimationFrame(flush); }, wait);
    }

    /* ---------- the operator list ---------- */

    function sortKey(r) {
      if (sort.key === 'name') return nameOf(r);
      if (sort.key === 'handled') return (r.today && r.today.handled) || 0;
      if (sort.key === 'since') return r.state_since || '';
      return r.state + '|' + (r.state_since || '');
    }

    function compare(a, b) {
      var x = a.rec, y = b.rec, d = 0;
      if (sort.key === 'state') {
        d = STATES.indexOf(x.state) - STATES.indexOf(y.state);
        if (!d) d = (x.state_since || '') < (y.state_since || '') ? -1 : (x.state_since || '') > (y.state_since || '') ? 1 : 0;
      } else if (sort.key === 'since') {
        d = (x.state_since || '') < (y.state_since || '') ? -1 : (x.state_since || '') > (y.state_since || '') ? 1 : 0;
      } else if (sort.key === 'handled') {
        d = ((y.today && y.today.handled) || 0) - ((x.today && x.today.handled) || 0);
      }
      if (!d) d = nameOf(x) < nameOf(y) ? -1 : nameOf(x) > nameOf(y) ? 1 : 0;
      return d * sort.dir;
    }

    function newRow(id) {
      var tr = el('tr');
      tr.dataset.operatorId = id;
      var c = {
        name: el('th'), state: el('td'), since: el('td', 'timer small'), call: el('td'),
        queues: el('td', 'muted'), handled: el('td', 'num'), actions: el('td', 'actions')
      };
      c.name.scope = 'row';
      c.id = c.name.appendChild(el('span', 'op-id', id));
      c.member = c.name.appendChild(el('span', 'muted'));
      c.badge = c.state.appendChild(el('span', 'badge'));
      if (id !== opts.me()) {
        [['listen', 'Listen'], ['whisper', 'Whisper']].forEach(function (a) {
          var b = el('button', null, a[1]);
          b.type = 'button';
          b.dataset.action = a[0];
          b.setAttribute('aria-label', a[1] + ' to ' + id);
          b.disabled = !live;
          c.actions.appendChild(b);
        });
      }
      ['name', 'state', 'since', 'call', 'queues', 'handled', 'actions'].forEach(function (k) { tr.appendChild(c[k]); });
      return { tr: tr, cells: c };
    }

    function matches(r) {
      if (fState.value && r.state !== fState.value) return false;
      if (fQueue.value && queuesOf(r).indexOf(fQueue.value) < 0) return false;
      var q = fName.value.trim().toLowerCase();
      return !q || r.operator_id.toLowerCase().indexOf(q) >= 0 || (r.member_name || '').toLowerCase().indexOf(q) >= 0;
    }

    function renderOp(id) {
      var o = ops.get(id);
      if (!o) return;
      if (!o.rec) {
        if (o.tr) o.tr.remove();
        ops.delete(id);
        return;
      }
      if (!o.tr) { var row = newRow(id); o.tr = row.tr; o.cells = row.cells; }
      var r = o.rec, c = o.cells;
      setText(c.member, r.member_name && r.member_name !== id ? ' ' + r.member_name : '');
      var text = STATE_TEXT[r.state] || r.state;
      if (r.state === 'paused' && r.pause_reason) text += ': ' + r.pause_reason;
      else if (r.paused && r.state !== 'paused') text += ' (paused' + (r.pause_reason ? ': ' + r.pause_reason : '') + ')';
      setText(c.badge, text);
      if (c.badge.dataset.state !== r.state) c.badge.dataset.state = r.state;
      var call = r.call ? number(r.call.caller) + (r.call.held ? ' (hold)' : '') : r.offered ? 'ringing: ' + number(r.offered.caller) : '';
      setText(c.call, call);
      setText(c.queues, (r.queues || []).map(function (q) { return q.queue + (q.paused ? ' (paused)' : ''); }).join(', '));
      setText(c.handled, String((r.today && r.today.handled) || 0));
      o.visible = matches(r);
      if (o.tr.hidden === o.visible) o.tr.hidden = !o.visible;
      tickOp(o, Date.now());
    }

    function tickOp(o, now) {
      setText(o.cells.since, fmtDuration(secondsSince(o.rec.state_since, now)));
    }

    function reorder() {
      lastSort = Date.now();
      orderDirty = false;
      var list = Array.from(ops.values()).filter(function (o) { return o.tr; }).sort(compare);
      var kids = tbody.children, i = 0;
      while (i < list.length && kids[i] === list[i].tr) i++;
      if (i === list.length) return;
      var frag = document.createDocumentFragment();
      for (var k = i; k < list.length; k++) frag.appendChild(list[k].tr);
      tbody.appendChild(frag);
    }

    function refilter() {
      ops.forEach(function (o) {
        if (!o.tr) return;
        o.visible = matches(o.rec);
        if (o.tr.hidden === o.visible) o.tr.hidden = !o.visible;
      });
      calls.forEach(function (c) { if (c.tr) c.tr.hidden = !callMatches(c.rec); });
      renderShown();
      tick();
    }

    function renderShown() {
      var n = 0;
      ops.forEach(function (o) { if (o.tr && o.visible) n++; });
      setText(shown, n === ops.size ? ops.size + ' operators' : n + ' of ' + ops.size + ' operators');
    }

    /* ---------- counts, tiles, calls ---------- */

    function renderCounts() {
      if (!counts.firstChild) {
        STATES.forEach(function (s) {
          var chip = el('button', 'chip');
          chip.type = 'button';
          chip.dataset.state = s;
          chip.appendChild(el('span', 'n', '0'));
          chip.appendChild(document.createTextNode(' ' + STATE_TEXT[s]));
          chip.setAttribute('aria-label', STATE_TEXT[s] + ': show only these');
          counts.appendChild(chip);
        });
      }
      STATES.forEach(function (s) {
        var chip = counts.querySelector('[data-state="' + s + '"]');
        setText(chip.firstChild, String(byState[s] || 0));
        chip.setAttribute('aria-pressed', fState.value === s ? 'true' : 'false');
      });
    }

    function stat(tile, label, cls) {
      var d = el('div', 'stat ' + (cls || ''));
      var v = el('span', 'v');
      d.appendChild(v);
      d.appendChild(el('span', 'k', label));
      tile.appendChild(d);
      return v;
    }

    function renderQueue(name) {
      var q = queues.get(name);
      if (!q) return;
      if (!q.rec) {
        if (q.tile) q.tile.remove();
        queues.delete(name);
        return;
      }
      if (!q.tile) {
        var t = el('section', 'tile');
        t.dataset.queue = name;
        t.setAttribute('aria-label', 'Queue ' + name);
        t.appendChild(el('h3', null, name));
        q.f = {
          waiting: stat(t, 'waiting', 'big'), longest: stat(t, 'longest wait', 'big'), sl: stat(t, 'service level', 'big'),
          answered: stat(t, 'answered'), abandoned: stat(t, 'abandoned'), timedOut: stat(t, 'timed out'),
          avgWait: stat(t, 'avg wait'), avgTalk: stat(t, 'avg talk'), agents: el('p', 'muted agents')
        };
        t.appendChild(q.f.agents);
        q.tile = t;
        var after = Array.from(tiles.children).find(function (x) { return x.dataset.queue > name; });
        tiles.insertBefore(t, after || null);
      }
      var r = q.rec, f = q.f;
      setText(f.waiting, String(r.waiting || 0));
      q.tile.dataset.waiting = r.waiting ? 'yes' : 'no';
      setText(f.sl, pct(r.service_level));
      f.sl.title = (r.answered_within_sl || 0) + ' answered within ' + (r.sl_threshold_s || '?') + ' s';
      setText(f.answered, String(r.answered || 0));
      setText(f.abandoned, String(r.abandoned || 0));
      setText(f.timedOut, String(r.timed_out || 0));
      setText(f.avgWait, secs(r.avg_wait_s));
      setText(f.avgTalk, secs(r.avg_talk_s));
      var a = r.operators || {};
      setText(f.agents, (a.logged_in || 0) + ' logged in: ' + (a.ready || 0) + ' ready, ' + (a.on_call || 0) + ' on a call, ' +
        (a.ringing || 0) + ' ringing, ' + (a.paused || 0) + ' paused, ' + (a.unavailable || 0) + ' unavailable');
      tickQueue(q, Date.now());
    }

    function tickQueue(q, now) {
      var s = q.rec.oldest_waiting_since ? secondsSince(q.rec.oldest_waiting_since, now) : null;
      setText(q.f.longest, s == null ? '–' : fmtDuration(s));
    }

    function callMatches(r) { return !fQueue.value || r.queue === fQueue.value; }

    function renderCall(id) {
      var c = calls.get(id);
      if (!c) return;
      if (!c.rec) {
        if (c.tr) c.tr.remove();
        calls.delete(id);
        return;
      }
      if (!c.tr) {
        c.tr = el('tr');
        c.tr.dataset.callId = id;
        c.cells = { caller: el('td', 'num'), state: el('td'), queue: el('td'), op: el('td'), since: el('td', 'timer small') };
        ['caller', 'state', 'queue', 'op', 'since'].forEach(function (k) { c.tr.appendChild(c.cells[k]); });
        callBody.appendChild(c.tr);
      }
      var r = c.rec, x = c.cells;
      setText(x.caller, r.direction === 'outbound' && r.party ? r.party : number(r.caller));
      setText(x.state, (CALL_TEXT[r.state] || r.state) + (r.state === 'queued' && r.position ? ' #' + r.position : ''));
      setText(x.queue, r.queue || '');
      setText(x.op, r.operator_id || (r.offered_to || []).join(', '));
      c.tr.hidden = !callMatches(r);
      tickCall(c, Date.now());
    }

    function tickCall(c, now) {
      var r = c.rec;
      setText(c.cells.since, fmtDuration(secondsSince(r.answered_at || r.queued_at || r.started_at, now)));
    }

    /* ---------- the frame ---------- */

    function flush() {
      frame = 0;
      lastFlush = Date.now();
      dirtyQueues.forEach(renderQueue);
      dirtyQueues.clear();
      dirtyOps.forEach(renderOp);
      dirtyOps.clear();
      if (orderDirty) {
        var wait = RESORT_MS - (Date.now() - lastSort);
        if (wait <= 0 || !painted) reorder();
        else if (!sortTimer) sortTimer = setTimeout(function () { sortTimer = 0; orderDirty = true; schedule(); }, wait);
      }
      dirtyCalls.forEach(renderCall);
      dirtyCalls.clear();
      renderCounts();
      renderShown();
      root.querySelector('#calls-empty').hidden = calls.size > 0;
      root.querySelector('#active-calls').hidden = calls.size === 0;
      if (!painted && ops.size) {
        painted = true;
        if (opts.onPaint) opts.onPaint(ops.size);
      }
    }

    /* The clocks, once a second: what is on show only. */
    function tick() {
      var now = Date.now();
      ops.forEach(function (o) { if (o.tr && o.visible) tickOp(o, now); });
      calls.forEach(function (c) { if (c.tr && !c.tr.hidden) tickCall(c, now); });
      queues.forEach(function (q) { if (q.tile) tickQueue(q, now); });
    }

    function setLive(on) {
      if (on === live) return;
      live = on;
      /* Rows waiting for their place in the list are not in the table yet. */
      ops.forEach(function (o) {
        if (o.tr) o.tr.querySelectorAll('button').forEach(function (b) { b.disabled = !live; });
      });
    }

    function setSort(key) {
      sort = { key: key, dir: sort.key === key ? -sort.dir : 1 };
      root.querySelectorAll('#operators thead [data-sort]').forEach(function (b) {
        var th = b.closest('th');
        if (b.dataset.sort === key) th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      });
      reorder();
    }

    /* ---------- wiring ---------- */

    tbody.addEventListener('click', function (e) {
      var b = e.target.closest('button[data-action]');
      if (!b || b.disabled) return;
      var id = b.closest('tr').dataset.operatorId;
      opts.command(b.dataset.action, { operator_id: id }, id);
    });
    root.querySelectorAll('#operators thead [data-sort]').forEach(function (b) {
      b.addEventListener('click', function () { setSort(b.dataset.sort); });
    });
    counts.addEventListener('click', function (e) {
      var chip = e.target.closest('.chip');
      if (!chip) return;
      fState.value = fState.value === chip.dataset.state ? '' : chip.dataset.state;
      refilter();
      renderCounts();
    });
    [fName, fState, fQueue].forEach(function (f) {
      f.addEventListener('input', function () { refilter(); renderCounts(); });
    });

    return { put: put, reset: reset, tick: tick, setLive: setLive, setSort: setSort, flush: flush };
  }

  window.CallbusWallboard = { create: create };
})();
