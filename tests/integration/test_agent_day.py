"""A shorter working day at a few hundred seats, amisim -> callbus-agent -> a
real Kafka broker: the agent's call and operator events, and the wallboard
figures of its live state, agree with amisim's ground truth (its stats
file, "truth").

The day has all a real one has: arrivals by a day profile, three shifts
logging in and out, breaks and lunch and wrap-up pauses with reasons,
callers who give up, queue timeouts (some while a phone rings), operators
who do not pick up and the queue ringing the next one. Per queue the
answered, abandoned and timed-out calls, waits, service level and talk, per
operator the calls answered, logins, logouts and pauses must come out the
same, every call must end, and none may be left open. The state topics
(agent/state.c) must say the same for the day, in the site's time zone
(Tallinn for both amisim and the agent): each queue's offered, answered,
abandoned, timed out, service level, waits and talk, each operator's calls
handled, missed and talk and its state at the end, no call left.
"""
import collections
import json

import pytest

from callbus_harness import messages, metrics, start_agent, start_amisim, write_agent_conf
from conftest import wait_until
from test_agent_state import StateView

QUEUES = ("support", "sales")
# 18 simulated minutes at 15x: about 75 s of wall time, ~2,000 calls.
DAY = ["--simulate", "--day", "0.3", "--speed", "15", "--operators", "200",
       "--queues", ",".join(QUEUES), "--rate", "2.2", "--talk", "30-90", "--abandon", "2",
       "--patience", "40-240", "--queue-timeout", "75", "--rna", "8", "--no-answer", "op107,op143,op181",
       "--seed", "4", "--linger", "-1", "--tz", "Europe/Tallinn",
       # A fixed start: from the wall clock, a run at 23:44-24:00 in
       # Tallinn crossed midnight, and a ring that began before it and went
       # unanswered after it counts as rung on one day and missed on the next.
       "--start-at", "10:00"]
TIMEZONE = 'timezone = "Europe/Tallinn";'



def truth_when_over(stats_file, timeout):
    def over():
        try:
            truth = json.loads(stats_file.read_text())["truth"]
        except (OSError, ValueError, KeyError):
            return None
        return truth if truth["over"] else None
    return wait_until(over, timeout=timeout, interval=1.0, what="amisim's day to be over")


def read_until(bootstrap, topic, kind, count):
    """The topic's events once it holds count events of type kind."""
    def enough():
        evs = messages(bootstrap, topic, timeout=60, idle=1.0)
        return evs if sum(e["type"] == kind for e in evs) >= count else None
    return wait_until(enough, timeout=120, interval=2.0, what=f"{count} {kind} on {topic}")


def test_day_agrees_with_ground_truth(procs, tmp_path, site, kafka_bootstrap):
    stats = tmp_path / "amisim-stats.json"
    _, port = start_amisim(procs, *DAY, "--stats-file", stats, "--stats-interval", "1")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port, top_extra=TIMEZONE)
    start_agent(procs, conf)
    truth = truth_when_over(stats, timeout=240)
    assert truth["arrived"] > 1500

    # The agent may still be catching up: read until the last of each kind is in.
    calls = read_until(kafka_bootstrap, site.topic("calls"), "callbus.call.ended", truth["arrived"])
    logouts = sum(t["logouts"] for t in truth["operators"].values()) * len(QUEUES)
    operators = read_until(kafka_bootstrap, site.topic("operators"), "callbus.operator.logged_out", logouts)

    # No call lost, none duplicated, none left open.
    started = [e["subject"] for e in calls if e["type"] == "callbus.call.started"]
    ended = {e["subject"]: e["data"] for e in calls if e["type"] == "callbus.call.ended"}
    assert len(started) == len(set(started)) == len(ended) == truth["arrived"]
    assert set(started) == set(ended)
    assert metrics(http)["callbus_agent_active_calls"] == 0
    assert all(d["reason"] == "normal" for d in ended.values())

    # Per queue: answered, abandoned and timed out, waits, service level, talk.
    answered = [d for d in ended.values() if d["disposition"] == "answered"]
    abandoned = [e["data"] for e in calls if e["type"] == "callbus.call.abandoned"]
    assert {d["disposition"] for d in ended.values()} <= {"answered", "abandoned"}
    assert len(abandoned) == sum(d["disposition"] == "abandoned" for d in ended.values())
    for q in QUEUES:
        t = truth["queues"][q]
        mine = [d for d in answered if d["queue"] == q]
        gave_up = [d for d in abandoned if d["queue"] == q and d["reason"] == "abandon"]
        timed_out = [d for d in abandoned if d["queue"] == q and d["reason"] == "timeout"]
        got = dict(answered=len(mine), abandoned=len(gave_up), timed_out=len(timed_out),
                   wait_answered_s_sum=sum(d["wait_s"] for d in mine),
                   answered_within_sl=sum(d["wait_s"] <= truth["sl_threshold_s"] for d in mine),
                   wait_abandoned_s_sum=sum(d["wait_s"] for d in gave_up),
                   wait_timed_out_s_sum=sum(d["wait_s"] for d in timed_out))
        assert got == {k: t[k] for k in got}, q
        assert sum(d["talk_s"] for d in mine) == pytest.approx(t["talk_s_sum"], abs=0.002 * len(mine))
        # The day had every case in it.
        assert t["abandoned"] and t["timed_out"] and t["timed_out_while_ringing"], t

    # Per operator: calls answered; logins, logouts and pauses in every queue.
    answered_by = collections.Counter(d["answered_by"] for d in answered)
    kinds = collections.defaultdict(collections.Counter)
    for e in operators:
        d = e["data"]
        if e["type"] == "callbus.operator.paused" and d.get("queue"):
            kinds[d["operator_id"]]["paused:" + d["reason"]] += 1
        elif e["type"] in ("callbus.operator.logged_in", "callbus.operator.logged_out"):
            kinds[d["operator_id"]][e["type"]] += 1
    for op, t in truth["operators"].items():
        assert answered_by[op] == t["answered"], op
        assert kinds[op]["callbus.operator.logged_in"] == t["logins"] * len(QUEUES), op
        assert kinds[op]["callbus.operator.logged_out"] == t["logouts"] * len(QUEUES), op
        for reason, n in t["pauses"].items():
            assert kinds[op]["paused:" + reason] == n * len(QUEUES), (op, reason)
    assert sum(t["ring_no_answer"] for t in truth["operators"].values()) > 0
    assert truth["operators"]["op107"]["answered"] == 0 and answered_by["op107"] == 0
    check_live_state(kafka_bootstrap, site, truth)


def check_live_state(bootstrap, site, truth):
    """The state topics' queue figures and operators' counters are the
    ground truth of their day; no call is left."""
    view = StateView(bootstrap, site)

    def settled():
        qs = view.refresh().latest["state.queues"]
        if view.calls() or set(qs) != set(QUEUES):
            return False
        day = truth["days"].get(qs[QUEUES[0]]["date"])
        return day and all(qs[q]["offered"] == day["queues"][q]["offered"] and qs[q]["waiting"] == 0
                           and qs[q]["talked"] == day["queues"][q]["completed"] for q in QUEUES)
    wait_until(settled, timeout=120, interval=2.0, what="the day's figures on the state topics")
    for q in QUEUES:
        rec = view.queue(q)
        assert rec["timezone"] == "Europe/Tallinn"
        t = truth["days"][rec["date"]]["queues"][q]
        got = (rec["offered"], rec["answered"], rec["abandoned"], rec["timed_out"], rec["answered_within_sl"])
        assert got == (t["offered"], t["answered"], t["abandoned"], t["timed_out"], t["answered_within_sl"]), (q, t)
        assert rec["wait_s_total"] == t["wait_answered_s_sum"] + t["wait_abandoned_s_sum"] + t["wait_timed_out_s_sum"]
        assert rec["talk_s_total"] == pytest.approx(t["talk_s_sum"], abs=0.002 * t["completed"])
        left = t["answered"] + t["abandoned"] + t["timed_out"]
        assert rec["service_level"] == pytest.approx(t["answered_within_sl"] / left, abs=0.0005)
    # An operator's state at the end, as amisim calls it (busy: on a call).
    for op, rec in view.latest["state.operators"].items():
        t = truth["days"][rec["today"]["date"]]["operators"][op]
        assert rec["today"]["handled"] == t["answered"], op
        assert rec["today"]["missed"] == t["rung"] - t["answered"], (op, rec["today"], t)
        assert rec["today"]["talk_s"] == pytest.approx(t["talk_s_sum"], abs=0.002 * max(1, t["completed"])), op
        now = truth["operators"][op]["state_now"]
        assert rec["state"] == {"busy": "on_call"}.get(now, now), op
    assert sum(r["today"]["missed"] for r in view.latest["state.operators"].values()) > 0
