"""A site's working day at a real scale through the whole bus: amisim (150
operators, two queues) -> callbus-agent -> Kafka -> callbus-gateway ->
WebSocket clients, held against amisim's ground truth (its stats file).

Fifteen simulated minutes of a day (shifts, breaks, a morning peak, callers
who give up, queue timeouts, phones nobody picks up) at 15x: a minute of
wall time, ~1,400 calls. Through the day a supervisor and three operators
stay connected and keep their view from the snapshot and the updates; half
way the gateway is restarted (an upgrade), must serve again within
RESTART_BOUND_S, and everyone reconnects. When the day has drained:

- the state topics: each queue's today figures (offered, answered,
  abandoned, timed out, within service level) and every operator's
  today.handled are the truth's, no call is left on state.calls;
- a supervisor connecting at the end, to a second gateway whose
  max_queue_kb is below the snapshot's size, gets a snapshot (in parts when
  large) whose queues, operators and calls are the same: the snapshot does
  not count against the bound, so the supervisor is not dropped;
- the supervisor who followed the day live holds the same view, and was
  never dropped as a slow reader;
- each operator saw only their own record, never a queue's name, and every
  call they answered.

The day's figures alone (every event, waits, talk, pauses) are checked in
test_agent_day.py; this test is about the numbers reaching the people
watching them, at a site's scale. make bench's bench_day.py measures the
same path at 500 seats over 8 hours.
"""
import json
import re
import threading
import time

from callbus_harness import (GwClient, messages, metrics, operator_token, start_agent, start_amisim, start_gateway,
                             write_agent_conf, write_gateway_conf)
from conftest import free_port, wait_until
from test_agent_day import truth_when_over
from test_agent_state import StateView
from test_gateway import gw_metrics, names_a_queue

QUEUES = ("support", "sales")
OPERATORS = 150
# 15 simulated minutes at 15x: 60 s of wall time, then the last calls drain
# (a caller can still wait up to the queue's timeout and talk 90 s). A rate
# of 1.6/s against ~110 operators on shift (thirds work all day, the first
# 5/8, the last 5/8), ~65 s per call: ~80 % busy on average, the peak of
# the profile (x1.4) above what the staff can take, so queues build up,
# callers give up and time out, as in a real centre's busy hour.
DAY = ["--simulate", "--day", "0.25", "--speed", "15", "--operators", str(OPERATORS),
       "--queues", ",".join(QUEUES), "--rate", "1.6", "--talk", "30-90", "--abandon", "3",
       "--patience", "40-240", "--queue-timeout", "90", "--rna", "4", "--seed", "11",
       "--start-at", "09:00", "--tz", "Europe/Tallinn", "--linger", "-1"]
TIMEZONE = 'timezone = "Europe/Tallinn";'
WATCHED = ("op101", "op175", "op250")   # one from each third of the shifts
# The second gateway's bound: below what a 150-operator supervisor snapshot
# takes (~52 KB), so a snapshot counted against it would drop the
# supervisor. (The day's gateway keeps the default, 1 MB: at 32 KB a
# supervisor that Python's reader thread left unread for a second on the
# loaded machine, in the restart's catch-up, was dropped.)
MAX_QUEUE_KB = 16
# The gateway serves again (its first supervisor snapshot complete) within
# this many seconds of its start, half way through the day. It reads the
# state topics (a few thousand records here), not the day's events. The
# goal at 500 seats after a full 8-hour day is 2 s (issue 11, measured by
# bench_day.py); 150 seats and a quarter of an hour hold less, and the
# slack over 2 s is for the two cores being shared with amisim and the
# agent at full load and with other test runs. (That it reads the state
# topics and not the event topics is test_gateway.py's
# test_restart_serves_from_the_state_topics_not_the_event_topics.)
RESTART_BOUND_S = 5.0


class Follower:
    """A WebSocket client that stays connected, reading in a thread: keeps
    every message and, from its snapshot and updates, its own copy of the
    view (operators, calls, queues by key)."""

    def __init__(self, url, site, who, role="operator", resume=None):
        self.who, self.role = who, role
        self.client = GwClient(url, operator_token(site, who, role, ttl=3600), resume=resume)
        self.msgs = []
        self.view = {"operator": {}, "call": {}, "queue": {}}
        self.lock = threading.Lock()
        self.closed = None   # close code, or the error that ended the reading
        self.apply(self.client.first)
        self.client.ws.settimeout(None)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import websocket
        while True:
            try:
                op, frame = self.client.ws.recv_data_frame(True)
            except Exception as e:   # the connection went away
                self.closed = repr(e)
                return
            if op == websocket.ABNF.OPCODE_CLOSE:
                self.closed = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005
                return
            if op == websocket.ABNF.OPCODE_TEXT:
                with self.lock:
                    self.apply(json.loads(frame.data))

    def apply(self, m):
        self.msgs.append(m)
        if m["type"] == "snapshot":
            if m.get("part", 1) == 1:
                self.view = {"operator": {}, "call": {}, "queue": {}}
                if self.role == "operator":
                    self.view["operator"][self.who] = m["operator"]
            for kind, key, field in (("operator", "operator_id", "operators"), ("call", "call_id", "calls"),
                                     ("queue", "queue", "queues")):
                for rec in m.get(field, ()):
                    self.view[kind][rec[key]] = rec
        elif m["type"] == "update":
            if m["state"] is None:
                self.view[m["kind"]].pop(m["id"], None)
            else:
                self.view[m["kind"]][m["id"]] = m["state"]

    def position(self):
        with self.lock:
            last = [m for m in self.msgs if "pos" in m][-1]
            return {"epoch": last["epoch"], "pos": last["pos"]}

    def close(self):
        self.client.close()
        self.thread.join(5)


def supervisor_snapshot(url, site, who, timeout=30):
    """A supervisor connecting now: its snapshot's parts, the first included."""
    c = GwClient(url, operator_token(site, who, "supervisor"))
    parts = [c.first]
    while len(parts) < c.first["parts"]:
        parts.append(c.recv(timeout=timeout))
    return c, parts


def view_records(gw):
    """How many records the gateway read to rebuild its view at its last start."""
    return int(re.findall(r"read (\d+) records from \d+ partitions to rebuild the view", gw.output("err"))[-1])


def test_site_day_reaches_supervisors_and_operators(procs, tmp_path, site, kafka_bootstrap):
    stats = tmp_path / "amisim-stats.json"
    _, ami_port = start_amisim(procs, *DAY, "--stats-file", stats, "--stats-interval", "1")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, ami_port, top_extra=TIMEZONE)
    start_agent(procs, conf)
    day_started = time.monotonic()   # amisim's day starts at the agent's login

    # A fixed port, so that clients come back to the same address after the restart.
    gw_port = free_port()
    gw_conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                                 "idle_timeout = 600;")
    gw_conf.write_text(gw_conf.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{gw_port}"'))
    gw, url = start_gateway(procs, gw_conf)
    watcher = Follower(url, site, "sup1", "supervisor")
    ops = {op: Follower(url, site, op) for op in WATCHED}

    # Half way through the day: the gateway restarts (an upgrade) and must
    # serve again within RESTART_BOUND_S; the clients come back.
    time.sleep(max(0.0, 30 - (time.monotonic() - day_started)))
    before = {f.who: f.position() for f in (watcher, *ops.values())}
    gw.stop()
    t0 = time.monotonic()
    gw, url2 = start_gateway(procs, gw_conf, name="gateway-restarted")
    first, parts = supervisor_snapshot(url2, site, "sup2")
    serving = time.monotonic() - t0
    print(f"gateway restarted mid-day: serving {serving:.2f} s after its start, "
          f"{view_records(gw)} state records read, {len(parts[0]['queues'])} queues")
    assert url2 == url
    assert serving <= RESTART_BOUND_S, f"the restarted gateway served after {serving:.2f} s"
    first.close()
    for f in (watcher, *ops.values()):
        wait_until(lambda: f.closed is not None, timeout=10, what=f"{f.who} to see the gateway go")
    # Resuming across a restart: a fresh snapshot, flagged (another epoch).
    watcher = Follower(url, site, "sup1", "supervisor", resume=before["sup1"])
    ops = {op: Follower(url, site, op, resume=before[op]) for op in WATCHED}
    for f in (watcher, *ops.values()):
        assert f.client.first["type"] == "snapshot" and f.client.first["recovered"] is False
        assert f.client.first["reason"] == "epoch changed"

    truth = truth_when_over(stats, timeout=150)
    print(f"amisim's day over after {time.monotonic() - day_started:.0f} s: {truth['arrived']} calls, "
          f"sim lag max {json.loads(stats.read_text())['sim_lag_max_s']} s")
    assert len(truth["days"]) == 1
    day = next(iter(truth["days"].values()))
    assert truth["arrived"] > 1000
    for q in QUEUES:
        t = day["queues"][q]
        assert t["answered"] and t["abandoned"] and t["timed_out"], (q, t)  # the day had it all

    def drained():
        with watcher.lock:
            v = watcher.view
            return not v["call"] and set(v["queue"]) == set(QUEUES) and all(
                v["queue"][q]["offered"] == day["queues"][q]["offered"] and v["queue"][q]["waiting"] == 0
                and v["queue"][q]["talked"] == day["queues"][q]["completed"] for q in QUEUES)
    wait_until(drained, timeout=60, interval=0.5, what="the day's last records at the supervisor")

    # The state topics: today's figures per queue and operator, no call left.
    view = StateView(kafka_bootstrap, site).refresh()
    assert view.calls() == {}
    assert metrics(http)["callbus_agent_active_calls"] == 0
    figures = ("offered", "answered", "abandoned", "timed_out", "answered_within_sl")
    for q in QUEUES:
        rec, t = view.queue(q), day["queues"][q]
        assert rec["date"] == next(iter(truth["days"]))
        assert {k: rec[k] for k in figures} == {k: t[k] for k in figures}, q
    assert len(view.latest["state.operators"]) == OPERATORS
    handled = {op: r["today"]["handled"] for op, r in view.latest["state.operators"].items()}
    assert handled == {op: t["answered"] for op, t in day["operators"].items()}

    # A supervisor connecting now to a second gateway of the site with a
    # tight max_queue_kb: the same figures, its snapshot not held against it.
    tight_conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, f"max_queue_kb = {MAX_QUEUE_KB};",
                                    name="gateway-tight")
    tight, tight_url = start_gateway(procs, tight_conf, name="gateway-tight")
    late, parts = supervisor_snapshot(tight_url, site, "sup3")
    sent = re.findall(r"sup3: snapshot in (\d+) message\(s\), (\d+) bytes", tight.output("err"))
    assert sent and int(sent[-1][0]) == len(parts)
    size = int(sent[-1][1])
    print(f"supervisor snapshot at the end of the day: {size} bytes in {len(parts)} part(s)")
    assert size > MAX_QUEUE_KB * 1024
    snap_ops = {o["operator_id"]: o for p in parts for o in p["operators"]}
    assert [c for p in parts for c in p["calls"]] == []
    assert {op: o["today"]["handled"] for op, o in snap_ops.items()} == handled
    snap_queues = {q["queue"]: q for q in parts[0]["queues"]}
    for q in QUEUES:
        assert {k: snap_queues[q][k] for k in figures} == {k: day["queues"][q][k] for k in figures}, q
    assert sum(o["today"]["handled"] for o in snap_ops.values()) == sum(day["queues"][q]["answered"] for q in QUEUES)
    late.send({"type": "ping"})
    late.recv_until(lambda m: m["type"] == "pong", what="pong", seen=False)
    assert gw_metrics(tight_url)["callbus_gateway_closed_slow_total"] == 0

    # The supervisor who followed the day live holds the same view.
    with watcher.lock:
        assert watcher.closed is None, f"the supervisor was dropped: {watcher.closed}"
        assert watcher.view["queue"] == snap_queues
        assert watcher.view["operator"] == snap_ops
    assert gw_metrics(url)["callbus_gateway_closed_slow_total"] == 0

    # Each operator saw their own record only, and every call they answered:
    # as their call in progress, or (the moments of the restart) in their
    # recent calls.
    ended = [e for e in messages(kafka_bootstrap, site.topic("calls"), timeout=60)
             if e["type"] == "callbus.call.ended"]
    assert len(ended) == truth["arrived"]
    for op, f in ops.items():
        with f.lock:
            assert f.closed is None, f"{op} was dropped: {f.closed}"
            msgs = list(f.msgs)
            mine = f.view["operator"]
        assert set(mine) == {op} and mine[op]["today"]["handled"] == day["operators"][op]["answered"]
        theirs = {e["subject"] for e in ended if e["data"].get("answered_by") == op}
        assert len(theirs) == day["operators"][op]["answered"], op
        in_call, in_recent = set(), set()
        for m in msgs:
            assert not names_a_queue(m), (op, m)
            assert m["type"] == "snapshot" or (m["kind"], m["id"]) == ("operator", op), (op, m)
            rec = (m["operator"] if m["type"] == "snapshot" else m["state"]) or {}
            if rec.get("call"):
                in_call.add(rec["call"]["call_id"])
            in_recent |= {r["call_id"] for r in rec.get("recent", ())}
        assert in_call <= theirs, (op, in_call - theirs)
        assert theirs <= in_call | in_recent, (op, theirs - in_call - in_recent)
    for f in (watcher, *ops.values()):
        f.close()
    late.close()
