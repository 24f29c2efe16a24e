"""amisim: what the captures lack, modelled on Asterisk 22's source, and a
working day whose ground truth agrees with the AMI stream it describes.

- ring-no-answer, queue timeouts (also while a phone rings), a caller giving
  up while a phone rings, a click-to-call nobody picks up: event for event as
  apps/app_queue.c, main/dial.c and main/manager.c send them, header for
  header where a capture has the same event;
- --day (shifts, breaks), --profile, --burst, --start-at/--tz: the stats
  file's "truth" is recounted here from the events amisim sent.

No Kafka. --max runs a simulated day in a few seconds.
"""
import collections
import datetime
import json
import signal
import subprocess
import time
import zoneinfo

import pytest

from conftest import wait_until
from test_amisim import AMISIM, Conn, capture_messages, get, list_items, read_all_until_close, sim  # noqa: F401
from test_amisim_actions import capture_first, events_until, keys, named, originate

pytestmark = pytest.mark.skipif(not AMISIM.exists(), reason=f"{AMISIM} not built")

REFERENCE = ["01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
             "04-queue-member-management"]


def capture_keys():
    """Event name -> the header name lists it has in the captures (DialBegin,
    for one, comes with and without a caller snapshot)."""
    seen = collections.defaultdict(set)
    for name in REFERENCE:
        for m in capture_messages(name):
            h = m.get("headers")
            ev = dict(h).get("Event") if h else None
            if ev:
                seen[ev].add(tuple(k for k, _ in h))
    return seen


def assert_like_captures(msgs):
    """Every event a capture also has carries its headers in an order the
    capture has."""
    ref = capture_keys()
    for m in msgs:
        ev = get(m, "Event")
        if ev in ref and ev not in ("FullyBooted", "OriginateResponse"):
            assert tuple(k for k, _ in m) in ref[ev], (ev, m)


def run_to_end(sim, *args, stats=None):  # noqa: F811
    """Starts amisim with --max --exit-after, reads every message until it
    closes; returns (messages, stats document)."""
    extra = ["--stats-file", str(stats)] if stats else []
    s = sim("--simulate", "--max", "--exit-after", *extra, *args)
    c = Conn(s.port, timeout=60)
    c.login()
    msgs = read_all_until_close(c)
    assert s.proc.wait(10) == 0
    return msgs, (json.loads(stats.read_text()) if stats else None)


def ts(m):
    return float(get(m, "Timestamp"))


def order(msgs, *preds):
    """Index of the first message matching each predicate, in turn; fails
    when one is missing or they come out of order."""
    at, out = 0, []
    for p in preds:
        while at < len(msgs) and not p(msgs[at]):
            at += 1
        assert at < len(msgs), f"not found after {out}"
        out.append(at)
        at += 1
    return out


def is_ev(name, **fields):
    return lambda m: get(m, "Event") == name and all(get(m, k) == v for k, v in fields.items())


# ---- ring-no-answer and queue timeouts (apps/app_queue.c) ----

def test_ring_no_answer_then_next_operator(sim):  # noqa: F811
    """op101 is away: rung for the ring timeout, AgentRingNoAnswer (RingTime
    in ms), DialEnd NOANSWER and CANCEL, its phone hung up; after --retry the
    queue rings op102, who answers."""
    msgs, _ = run_to_end(sim, "--operators", "2", "--queues", "support", "--no-answer", "op101",
                         "--rate", "1", "--calls", "1", "--abandon", "0", "--talk", "5")
    called, rna, noans, cancel, gone, called2, conn = order(
        msgs, is_ev("AgentCalled", MemberName="Operator 101"),
        is_ev("AgentRingNoAnswer", MemberName="Operator 101"),
        is_ev("DialEnd", DialStatus="NOANSWER"), is_ev("DialEnd", DialStatus="CANCEL"),
        lambda m: get(m, "Event") == "Hangup" and "op101@phones" in get(m, "Channel"),
        is_ev("AgentCalled", MemberName="Operator 102"),
        is_ev("AgentConnect", MemberName="Operator 102"))
    assert get(msgs[rna], "RingTime") == "15000"
    assert ts(msgs[rna]) - ts(msgs[called]) == pytest.approx(15, abs=0.01)
    assert ts(msgs[called2]) - ts(msgs[rna]) == pytest.approx(5, abs=0.01)
    assert get(msgs[gone], "Cause") == "0"
    # app_queue.c packs AgentRingNoAnswer as AgentCalled plus RingTime.
    assert [k for k, _ in msgs[rna]] == [k for k, _ in capture_first(REFERENCE[0], "AgentCalled")] + ["RingTime"]
    join = named(msgs, "QueueCallerJoin")[0]
    assert int(get(msgs[conn], "HoldTime")) == int(ts(msgs[conn])) - int(ts(join))   # time(NULL) - qe->start
    assert ts(msgs[conn]) - ts(join) == pytest.approx(15 + 5 + 2, abs=0.01)
    assert not named(msgs, "QueueCallerAbandon")
    assert_like_captures(msgs)


def test_queue_timeout_while_ringing(sim, tmp_path):  # noqa: F811
    """The expiry cuts the ring short: rna() and hangupcalls(), then
    record_abandoned() -- QueueCallerAbandon -- and only after leave_queue()
    VarSet QUEUESTATUS=TIMEOUT; the ringing phone's ;2 half hangs up in
    between, in its own thread."""
    msgs, stats = run_to_end(sim, "--operators", "1", "--queues", "support", "--no-answer", "op101",
                             "--queue-timeout", "30", "--rate", "1", "--calls", "1", "--abandon", "0",
                             stats=tmp_path / "s.json")
    first_rna, rna, abandon, half, leave, status, hang = order(
        msgs, is_ev("AgentRingNoAnswer"), is_ev("AgentRingNoAnswer"), is_ev("QueueCallerAbandon"),
        lambda m: get(m, "Event") == "Hangup" and get(m, "Channel").startswith("Local/op101@phones")
        and get(m, "Channel").endswith(";2"),
        is_ev("QueueCallerLeave"), is_ev("VarSet", Variable="QUEUESTATUS", Value="TIMEOUT"),
        is_ev("Newexten", Application="Hangup"))
    assert get(msgs[first_rna], "RingTime") == "15000"
    assert get(msgs[rna], "RingTime") == "10000"      # only until the expiry
    assert get(msgs[abandon], "HoldTime") == "30"
    assert [get(m, "DialStatus") for m in msgs[rna:abandon] if get(m, "Event") == "DialEnd"] == ["NOANSWER", "CANCEL"]
    assert get(msgs[abandon - 11], "Variable") == "ABANDONED"
    assert {get(m, "Cause") for m in msgs[hang:] if get(m, "Event") == "Hangup"} == {"16"}
    assert_like_captures(msgs)
    q = stats["truth"]["queues"]["support"]
    assert (q["offered"], q["answered"], q["abandoned"], q["timed_out"], q["timed_out_while_ringing"]) == (1, 0, 0, 1, 1)
    assert stats["truth"]["operators"]["op101"]["ring_no_answer"] == 2


def test_queue_timeout_while_waiting(sim):  # noqa: F811
    """Nobody in the queue: the caller waits the whole --queue-timeout; the
    "stop:" variables come before MusicOnHoldStop (ast_moh_stop()), unlike
    an abandon (capture 02), where the hangup stops the music first."""
    msgs, _ = run_to_end(sim, "--operators", "1", "--queues", "support:dynamic", "--queue-timeout", "12",
                         "--rate", "1", "--calls", "1", "--abandon", "0")
    join, abandon, wait, moh, status = order(
        msgs, is_ev("QueueCallerJoin"), is_ev("QueueCallerAbandon"), is_ev("VarSet", Variable="QUEUEWAIT"),
        is_ev("MusicOnHoldStop"), is_ev("VarSet", Variable="QUEUESTATUS", Value="TIMEOUT"))
    assert get(msgs[abandon], "HoldTime") == "12" and get(msgs[wait], "Value") == "12"
    # qe->expire counts from the whole second the caller joined in
    assert ts(msgs[abandon]) == pytest.approx(int(ts(msgs[join])) + 12, abs=0.01)
    assert not named(msgs, "AgentCalled")
    assert_like_captures(msgs)


def test_caller_gives_up_while_ringing(sim, tmp_path):  # noqa: F811
    """--patience runs out during a ring: wait_for_answer() sees the hangup
    (DialEnd CANCEL), hangupcalls() cancels again; an abandon, no QUEUESTATUS."""
    msgs, stats = run_to_end(sim, "--operators", "1", "--queues", "support", "--no-answer", "op101",
                             "--patience", "8", "--rate", "1", "--calls", "1", "--abandon", "0",
                             stats=tmp_path / "s.json")
    called, req, c1, c2, abandon = order(
        msgs, is_ev("AgentCalled"), is_ev("HangupRequest", Cause="0"), is_ev("DialEnd", DialStatus="CANCEL"),
        is_ev("DialEnd", DialStatus="CANCEL"), is_ev("QueueCallerAbandon"))
    assert get(msgs[abandon], "HoldTime") == "8"
    assert not named(msgs, "AgentRingNoAnswer")
    assert not [m for m in msgs if get(m, "Variable") == "QUEUESTATUS"]
    q = stats["truth"]["queues"]["support"]
    assert (q["abandoned"], q["timed_out"], q["wait_abandoned_s_sum"]) == (1, 0, 8)


# ---- click-to-call nobody picks up (main/dial.c, main/manager.c) ----

def test_originate_nobody_answers(sim):  # noqa: F811
    """The phone rings for the Originate's Timeout; handle_timeout_trip()
    hangs it up with cause 19 and no DialEnd; fast_originate() answers
    Failure, Reason 3, naming the dial string and the ChannelId."""
    s = sim("--simulate", "--rate", "0", "--operators", "3", "--no-answer", "op102", "--speed", "20")
    ev = Conn(s.port)
    ev.login()
    act = Conn(s.port)
    act.login(events="off")
    originate(act, "c2c-na", "op102", "5552001", ("ChannelId", "c2c-na-1"), timeout="30000")
    msgs = events_until(ev, lambda m: get(m, "Event") == "Hangup" and get(m, "Channel").endswith(";2"))
    msgs += events_until(ev, is_ev("DeviceStateChange", State="NOT_INUSE"))
    resp = named(msgs, "OriginateResponse")[0]
    assert [(k, v) for k, v in resp if k not in ("Event", "Privilege", "Timestamp")] == [
        ("ActionID", "c2c-na"), ("Response", "Failure"), ("Channel", "Local/op102@phones"),
        ("Context", "c2c-outbound"), ("Exten", "5552001"), ("Reason", "3"), ("Uniqueid", "c2c-na-1"),
        ("CallerIDNum", "5552001"), ("CallerIDName", "Click2Call")]
    ours = [k for k in keys(capture_first("03a-c2c-answered", "OriginateResponse")) if k != "ChanVariable()"]
    assert keys(resp) == ours
    assert [get(m, "Cause") for m in named(msgs, "Hangup")] == ["19", "19"]
    assert [get(m, "DialStatus") for m in named(msgs, "DialEnd")] == []
    assert ts(resp) - ts(named(msgs, "Newchannel")[0]) == pytest.approx(30, abs=0.05)
    assert not [m for m in msgs if "pstn" in (get(m, "Channel") or "")]


# ---- a working day ----

def recount(msgs, queues):
    """The truth's per-queue and per-operator figures, counted from the
    events. A queue caller's channel (…;2 of the trunk) leads to its queue."""
    q = {n: collections.Counter() for n in queues}
    op = collections.defaultdict(collections.Counter)
    queue_of, waits = {}, {}
    for m in msgs:
        ev, ch = get(m, "Event"), get(m, "Channel")
        if ev == "QueueCallerJoin":
            queue_of[ch] = get(m, "Queue")
            q[get(m, "Queue")]["offered"] += 1
        elif ev == "AgentConnect":
            hold = int(get(m, "HoldTime"))
            qq = q[get(m, "Queue")]
            qq["answered"] += 1
            qq["answered_within_sl"] += hold <= 20
            qq["wait_answered_s_sum"] += hold
            op[get(m, "MemberName")]["answered"] += 1
        elif ev == "QueueCallerAbandon":
            waits[ch] = int(get(m, "HoldTime"))
        elif ev == "VarSet" and get(m, "Variable") == "QUEUESTATUS" and get(m, "Value") == "TIMEOUT":
            q[queue_of[ch]]["timed_out"] += 1
            q[queue_of[ch]]["wait_timed_out_s_sum"] += waits.pop(ch)
        elif ev == "Hangup" and ch in waits:      # gone without QUEUESTATUS: abandoned
            q[queue_of[ch]]["abandoned"] += 1
            q[queue_of[ch]]["wait_abandoned_s_sum"] += waits.pop(ch)
        elif ev == "AgentRingNoAnswer":
            op[get(m, "MemberName")]["ring_no_answer"] += 1
        elif ev == "AgentCalled":
            op[get(m, "MemberName")]["rung"] += 1
        elif ev in ("QueueMemberAdded", "QueueMemberRemoved"):
            op[get(m, "MemberName")][ev] += 1
        elif ev == "QueueMemberPause" and get(m, "Paused") == "1":
            op[get(m, "MemberName")]["pause:" + get(m, "PausedReason")] += 1
    return q, op


DAY = ["--operators", "45", "--queues", "support,sales", "--rate", "0.9", "--talk", "30-90",
       "--abandon", "3", "--patience", "40-200", "--queue-timeout", "90", "--rna", "8",
       "--no-answer", "op107", "--day", "0.25", "--seed", "11"]


def test_day_truth_agrees_with_the_stream(sim, tmp_path):  # noqa: F811
    msgs, stats = run_to_end(sim, *DAY, stats=tmp_path / "s.json")
    truth = stats["truth"]
    assert truth["over"] is True
    assert truth["live"] == {"arriving": 0, "waiting": 0, "ringing": 0, "talking": 0, "other": 0}
    q, op = recount(msgs, ("support", "sales"))
    for name, counts in q.items():
        t = truth["queues"][name]
        for field in ("offered", "answered", "answered_within_sl", "abandoned", "timed_out",
                      "wait_answered_s_sum", "wait_abandoned_s_sum", "wait_timed_out_s_sum"):
            assert t[field] == counts[field], (name, field)
        assert t["offered"] == t["answered"] + t["abandoned"] + t["timed_out"] + t["redirected"]
        assert t["completed"] == t["answered"]
        # every case the day is for happened
        assert t["answered"] and t["abandoned"] and t["timed_out"] and t["timed_out_while_ringing"]
    assert truth["arrived"] == sum(t["offered"] for t in truth["queues"].values())
    for name, t in truth["operators"].items():
        member = "Operator " + name[2:]
        assert t["answered"] == op[member]["answered"], name
        assert t["rung"] == op[member]["rung"], name
        assert t["ring_no_answer"] == op[member]["ring_no_answer"], name
        # shifts: one QueueAdd and one QueueRemove per queue; pauses in every queue
        assert t["logins"] == t["logouts"] == 1, name
        assert op[member]["QueueMemberAdded"] == op[member]["QueueMemberRemoved"] == 2, name
        for reason, n in t["pauses"].items():
            assert op[member]["pause:" + reason] == 2 * n, (name, reason)
    assert truth["operators"]["op107"]["answered"] == 0 and truth["operators"]["op107"]["ring_no_answer"] > 0
    reasons = collections.Counter(r for t in truth["operators"].values() for r in t["pauses"])
    assert {"Break", "Lunch", "Not ready"} <= set(reasons)
    # every channel that appeared was hung up
    assert len(named(msgs, "Newchannel")) == len(named(msgs, "Hangup"))
    assert_like_captures(msgs)


def test_day_profile_shapes_arrivals(sim):  # noqa: F811
    """Nothing arrives in a part of the day whose multiplier is 0; three
    times the rate brings about three times the callers."""
    msgs, _ = run_to_end(sim, "--operators", "40", "--queues", "support", "--rate", "0.5",
                         "--talk", "5-10", "--abandon", "0", "--day", "0.2", "--profile", "0,1,0,3",
                         "--seed", "2")
    arrivals = [ts(m) for m in named(msgs, "Newchannel") if get(m, "Channel").endswith(";1")
                and "from-trunk" in get(m, "Channel")]
    start = min(ts(m) for m in msgs if get(m, "Timestamp"))
    part = collections.Counter(min(int((t - start) // 180), 3) for t in arrivals)
    assert part[0] == 0 and part[2] == 0
    assert 2.0 < part[3] / part[1] < 4.2, part


def test_start_at_in_a_time_zone_across_midnight(sim, tmp_path):  # noqa: F811
    """The simulated clock starts at 23:55 local time in Tallinn; the truth
    counts each moment on its local date, as a wallboard's "today" must."""
    msgs, stats = run_to_end(sim, "--operators", "12", "--queues", "support", "--rate", "0.3",
                             "--talk", "20-40", "--abandon", "0", "--day", "0.2",
                             "--start-at", "2026-11-26 23:55", "--tz", "Europe/Tallinn",
                             stats=tmp_path / "s.json")
    tz = zoneinfo.ZoneInfo("Europe/Tallinn")
    start = datetime.datetime(2026, 11, 26, 23, 55, tzinfo=tz).timestamp()
    stamped = [ts(m) for m in msgs if get(m, "Timestamp")]
    assert start <= min(stamped) < start + 1
    truth = stats["truth"]
    assert truth["started_at"] == "2026-11-26T23:55:00+02:00"
    assert truth["time_zone"] == "Europe/Tallinn"
    by_date = collections.Counter(
        datetime.datetime.fromtimestamp(ts(m), tz).date().isoformat() for m in named(msgs, "QueueCallerJoin"))
    assert set(truth["days"]) == {"2026-11-26", "2026-11-27"} == set(by_date)
    for date, n in by_date.items():
        assert truth["days"][date]["queues"]["support"]["offered"] == n
    answered = sum(d["queues"]["support"]["answered"] for d in truth["days"].values())
    assert answered == truth["queues"]["support"]["answered"] == len(named(msgs, "AgentConnect"))


def test_burst_busiest_second(sim, tmp_path):  # noqa: F811
    """220 callers at once: a real Asterisk sends 6,500+ AMI events in the
    busiest second; so does amisim (stats: busiest_second), wherever the
    burst falls within a second."""
    for at in ("3", "3.5", "3.875"):
        _, stats = run_to_end(sim, "--operators", "500", "--queues", "support,sales", "--rate", "0",
                              "--burst", f"{at}:220", "--calls", "220", "--talk", "30",
                              stats=tmp_path / "s.json")
        assert stats["busiest_second"]["sim"]["events"] >= 6500, at
        assert stats["truth"]["arrived"] == 220


@pytest.mark.parametrize("args", [
    ["--simulate", "--tz", "Mars/Olympus_Mons"], ["--simulate", "--start-at", "25:61"],
    ["--simulate", "--day", "0"], ["--simulate", "--profile", "1,2"],
    ["--simulate", "--day", "1", "--profile", "1,x"], ["--burst", "10"],
    ["--simulate", "--no-answer", "op999"], ["--simulate", "--rna", "101"],
    ["--simulate", "--patience", "9-3"], ["--simulate", "--queue-timeout", "0"],
])
def test_bad_day_options_are_refused(args):
    r = subprocess.run([str(AMISIM), "--listen", "127.0.0.1:0", *args], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "amisim" in r.stderr


def test_state_now_matches_queue_status(sim, tmp_path):  # noqa: F811
    """The truth's "now" figures (callers waiting, longest wait, each
    operator's state) say what QueueStatus says at the same moment. With
    --max the simulation stops while its one event reader does not read, so
    the moment holds still for both."""
    stats = tmp_path / "s.json"
    s = sim("--simulate", "--max", "--stats-file", str(stats), *DAY)
    ev = Conn(s.port, timeout=60)
    ev.login()
    ev.read_until(lambda m: get(m, "Event") == "QueueCallerAbandon")   # well into the day
    time.sleep(1.5)                      # our buffers fill up; amisim waits for us
    act = Conn(s.port)
    act.login(events="off")
    items, _ = list_items(act, "QueueStatus", "qs")
    before = stats.stat().st_mtime_ns if stats.exists() else 0
    s.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: stats.exists() and stats.stat().st_mtime_ns != before, timeout=10, what="stats")
    truth = json.loads(stats.read_text())["truth"]
    waits = collections.defaultdict(list)
    members = collections.defaultdict(list)
    for m in items:
        if get(m, "Event") == "QueueParams":
            assert truth["queues"][get(m, "Queue")]["waiting_now"] == int(get(m, "Calls"))
        elif get(m, "Event") == "QueueEntry":
            waits[get(m, "Queue")].append(int(get(m, "Wait")))
        elif get(m, "Event") == "QueueMember":
            members["op" + get(m, "Name").split()[-1]].append(m)
    for q, w in waits.items():
        assert int(truth["queues"][q]["longest_wait_now_s"]) == max(w), q
    assert sum(truth["operators_by_state_now"].values()) == 45
    assert truth["operators_by_state_now"].get("logged_out", 0) < 45
    for op, t in truth["operators"].items():
        rows = members[op]
        state = t["state_now"]
        if not rows:
            assert state == "logged_out", op
        elif any(get(r, "Status") == "2" for r in rows):
            assert state in ("ringing", "busy"), op
        elif all(get(r, "Paused") == "1" for r in rows):
            assert state == "paused" and t["pause_reason_now"] == get(rows[0], "PausedReason"), op
        else:
            assert state == "ready", op
    assert len(truth["operators_by_state_now"]) >= 3, truth["operators_by_state_now"]
