"""The live state topics, end to end: amisim -> callbus-agent -> Kafka.

The agent keeps every active call, operator and queue and publishes what
changed to three compacted topics (docs/messages.md, "Live state"). A reader
that keeps the latest record per key (a tombstone removes the key) must see
what happened: operators' states and today's counters, the queues' figures,
no call left once all ended. The agent reads the topics back at start, so a
restart continues today's counters; when the broker is away at start it
says so with a state_not_recovered gap. Every record fits its schema."""

import collections
import json
import time

import pytest

from callbus_harness import metrics, restart_amisim, start_agent, start_amisim, write_agent_conf, SAMPLES
from conftest import create_topic, free_port, wait_until
from schema_check import validate_message

STATE_TOPICS = {"state.calls": "callbus.state.call", "state.operators": "callbus.state.operator",
                "state.queues": "callbus.queue.stats"}
TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1",
                "max.compaction.lag.ms": "120000", "delete.retention.ms": "3600000"}


def read_raw(bootstrap, topic, timeout=10.0, idle=1.0):
    """Every record of topic from the beginning: [(key, value or None)], in order."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-test-state", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    out = []
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions) if topic in md.topics and md.topics[topic].partitions else []
        if not parts:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline, eof, last = time.monotonic() + timeout, set(), time.monotonic()
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if len(eof) == len(parts) and time.monotonic() - last >= idle:
                    break
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            last = time.monotonic()
            out.append((m.key().decode() if m.key() is not None else None, m.value()))
    finally:
        c.close()
    return out


class StateView:
    """The latest record per key of the three state topics, as a wallboard or
    the gateway keeps them; every record checked against its schema."""

    def __init__(self, bootstrap, site):
        self.bootstrap, self.site = bootstrap, site
        self.latest = {kind: {} for kind in STATE_TOPICS}
        self.tombstones = {kind: 0 for kind in STATE_TOPICS}
        self.records = 0

    def refresh(self):
        self.latest = {kind: {} for kind in STATE_TOPICS}
        self.tombstones = {kind: 0 for kind in STATE_TOPICS}
        self.records = 0
        for kind, mtype in STATE_TOPICS.items():
            for key, value in read_raw(self.bootstrap, self.site.topic(kind)):
                if value is None:
                    assert kind == "state.calls", f"tombstone on {kind}"
                    self.latest[kind].pop(key, None)
                    self.tombstones[kind] += 1
                    continue
                ev = json.loads(value)
                errors = validate_message(ev)
                assert not errors, f"{kind} {key}: {errors}"
                assert ev["type"] == mtype and ev["subject"] == key
                assert ev["id"].split(":")[2] == kind
                self.latest[kind][key] = ev["data"]
                self.records += 1
        return self

    def calls(self):
        return self.latest["state.calls"]

    def op(self, op_id):
        return self.latest["state.operators"][op_id]

    def queue(self, name):
        return self.latest["state.queues"][name]


def describe_topic(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, ConfigResource
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=30)
    parts = len(a.list_topics(topic, timeout=10).topics[topic].partitions)
    return {k: v.value for k, v in configs.items()}, parts


def events(bootstrap, topic):
    return [json.loads(v) for _, v in read_raw(bootstrap, topic) if v is not None]


def truth_from_calls(bootstrap, site):
    """Per queue, what the calls topic says: entered, answered from the
    queue, abandoned, timed out, and the waits (an independent reading of
    the same events)."""
    q = {}
    waiting = {}
    handled = collections.Counter()
    for ev in events(bootstrap, site.topic("calls")):
        d, t = ev["data"], ev["type"].rsplit(".", 1)[1]
        if t == "answered" and d.get("operator_id"):
            handled[d["operator_id"]] += 1
        if t == "queued":
            s = q.setdefault(d["queue"], dict(offered=0, answered=0, abandoned=0, timed_out=0, wait=0))
            s["offered"] += 1
            waiting[d["call_id"]] = d["queue"]
        elif t == "answered" and d["call_id"] in waiting:
            s = q[waiting.pop(d["call_id"])]
            if "wait_s" in d:  # answered by the queue (else redirected out of it)
                s["answered"] += 1
                s["wait"] += d["wait_s"]
        elif t == "abandoned":
            s = q[d["queue"]]
            s["timed_out" if d["reason"] == "timeout" else "abandoned"] += 1
            s["wait"] += d["wait_s"]
            waiting.pop(d["call_id"], None)
    return q, handled


# ---- the topics and what a capture leaves in them --------------------------------------------

def test_state_topics_are_created_compacted(procs, tmp_path, site, kafka_bootstrap):
    _, port = start_amisim(procs)
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    start_agent(procs, conf)
    for kind in STATE_TOPICS:
        configs, parts = describe_topic(kafka_bootstrap, site.topic(kind))
        assert parts == 1, kind
        for k, v in TOPIC_CONFIG.items():
            assert configs[k] == v, f"{kind} {k}={configs[k]}"


def test_a_state_topic_made_without_compaction_is_warned_about(procs, tmp_path, site, kafka_bootstrap):
    """An existing topic is left as the operator made it, but a state topic
    that is not compacted grows with the day: the agent says so."""
    create_topic(kafka_bootstrap, site.topic("state.queues"), partitions=1, config={"cleanup.policy": "delete"})
    _, port = start_amisim(procs)
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    agent.wait_for(rf"topic {site.topic('state.queues')} has cleanup.policy=delete: a state topic must be "
                   r"compacted", timeout=30, which="err")
    assert describe_topic(kafka_bootstrap, site.topic("state.queues"))[0]["cleanup.policy"] == "delete"
    assert describe_topic(kafka_bootstrap, site.topic("state.calls"))[0]["cleanup.policy"] == "compact"


def replay_capture(procs, tmp_path, site, bootstrap, name, ready, what):
    """The capture at 5 times its speed (fast, yet its moments stay apart, so
    the records of what happened in between are published too: a burst
    within one loop turn is one record per key); returns the state view once
    ready(view) holds and the call has ended (its key has a tombstone)."""
    _, port = start_amisim(procs, "--replay", SAMPLES / f"{name}.ami", "--speed", "5")
    conf, http = write_agent_conf(tmp_path, site, bootstrap, port)
    start_agent(procs, conf)
    view = StateView(bootstrap, site)
    wait_until(lambda: ready(view.refresh()) and not view.calls(), timeout=30, what=what)
    # Everything read was counted as published (the periodic queue records go on).
    assert metrics(http)["callbus_agent_state_records_total"] >= view.records + sum(view.tombstones.values())
    return view


@pytest.mark.sanitizer
def test_capture_01_leaves_the_operator_ready_with_one_call_handled(procs, tmp_path, site, kafka_bootstrap):
    view = replay_capture(procs, tmp_path, site, kafka_bootstrap, "01-inbound-queue-answered",
                          lambda v: v.latest["state.operators"].get("op101", {}).get("recent"),
                          "op101's record with its call")
    op = view.op("op101")
    assert op["state"] == "ready" and op["call"] is None and op["offered"] is None
    assert op["device"] == "ready" and op["logged_in"]
    assert op["today"]["handled"] == 1
    assert op["today"]["talk_s"] == pytest.approx(9.503, abs=0.001)
    assert op["today"]["missed"] == 0
    r = op["recent"][0]
    assert (r["call_id"], r["disposition"], r["queue"]) == ("1795670259.0", "answered", "support")
    assert r["caller"] == {"number": "5551001", "name": "Alice Customer"}
    q = view.queue("support")
    assert (q["offered"], q["answered"], q["abandoned"], q["timed_out"]) == (1, 1, 0, 0)
    assert (q["answered_within_sl"], q["service_level"], q["avg_wait_s"]) == (1, 1, 2)
    assert q["avg_talk_s"] == pytest.approx(9.5)
    assert q["waiting"] == 0 and q["oldest_waiting_since"] is None
    # The call ended: its key has a tombstone, no call is left.
    assert view.calls() == {}
    assert view.tombstones["state.calls"] == 1


def test_capture_02_counts_the_abandon(procs, tmp_path, site, kafka_bootstrap):
    view = replay_capture(procs, tmp_path, site, kafka_bootstrap, "02-inbound-queue-paused-abandon",
                          lambda v: v.latest["state.queues"].get("support", {}).get("abandoned"),
                          "the abandon in support's figures")
    q = view.queue("support")
    assert (q["offered"], q["answered"], q["abandoned"], q["timed_out"]) == (1, 0, 1, 0)
    assert q["service_level"] == 0 and q["avg_wait_s"] == 7 and q["avg_talk_s"] is None
    assert view.calls() == {}
    # The operators paused for the meeting and came back (amisim's own
    # QueueStatus answer races the capture's pauses, so only the end is sure).
    for op_id in ("op101", "op102", "op103"):
        assert view.op(op_id)["state"] == "ready" and view.op(op_id)["pause_reason"] is None


@pytest.mark.sanitizer
def test_capture_05a_the_transfer_moves_the_call(procs, tmp_path, site, kafka_bootstrap):
    view = replay_capture(procs, tmp_path, site, kafka_bootstrap, "05a-redirect",
                          lambda v: v.latest["state.operators"].get("op103", {}).get("recent"),
                          "op103's record with the call")
    # While op103 had it: the call's record named op103, after op102.
    history = [json.loads(v)["data"] for _, v in read_raw(kafka_bootstrap, site.topic("state.calls")) if v]
    assert any(h["operator_id"] == "op103" and h["operators"] == ["op102", "op103"] for h in history)
    assert view.op("op102")["today"]["handled"] == 1
    assert view.op("op103")["state"] == "ready" and view.op("op103")["today"]["handled"] == 0
    assert view.calls() == {}


# ---- a simulated call centre, a restart, a broker away ---------------------------------------

SIMULATE = ("--simulate", "--operators", "4", "--queues", "support,sales", "--rate", "2", "--talk", "1-3",
            "--abandon", "25", "--speed", "4", "--linger", "-1")


def simulate(procs, tmp_path, site, bootstrap, calls, seed, agent_extra="", name="agent"):
    """The agent first, then amisim on its port, so that the agent sees the
    calls from their start (calls up before it connects are adopted, not
    counted in a queue)."""
    for attempt in range(3):
        # The port is free when picked, but the agent takes seconds to start
        # on a busy machine: when it is gone by then, again with another.
        port, tag = free_port(), name + (f"-{attempt}" if attempt else "")
        conf, _ = write_agent_conf(tmp_path, site, bootstrap, port, name=f"agent1-{attempt}" if attempt else "agent1",
                                   agent_extra=agent_extra)
        agent = start_agent(procs, conf, name=tag, wait_login=False)
        agent.wait_for(r"starting \(epoch", timeout=60, which="err")
        try:
            amisim = restart_amisim(procs, port, *SIMULATE, "--calls", str(calls), "--seed", str(seed),
                                    name="amisim-" + tag)
            return agent, amisim
        except pytest.fail.Exception:
            if attempt == 2:
                raise
            agent.stop()


def settled(view, bootstrap, site, calls):
    """All calls ended (the calls topic says so) and the state shows none
    left in a queue or in progress."""
    ended = sum(1 for e in events(bootstrap, site.topic("calls")) if e["type"] == "callbus.call.ended")
    if ended < calls:
        return False
    view.refresh()
    return not view.calls() and all(q["waiting"] == 0 for q in view.latest["state.queues"].values())


def check_counters(view, bootstrap, site):
    truth, handled = truth_from_calls(bootstrap, site)
    for name, t in truth.items():
        q = view.queue(name)
        assert (q["offered"], q["answered"], q["abandoned"], q["timed_out"]) == \
               (t["offered"], t["answered"], t["abandoned"], t["timed_out"]), (name, q, t)
        assert q["wait_s_total"] == pytest.approx(t["wait"])
    for op_id, o in view.latest["state.operators"].items():
        assert o["today"]["handled"] == handled[op_id], op_id
    return truth


def offered(truth):
    return sum(t["offered"] for t in truth.values())


@pytest.mark.sanitizer
def test_restart_continues_todays_counters(procs, tmp_path, site, kafka_bootstrap):
    extra = "state: { stats_interval = 1; };"
    view = StateView(kafka_bootstrap, site)
    # First run: 6 calls, then a clean stop.
    agent, amisim = simulate(procs, tmp_path, site, kafka_bootstrap, 6, 3, extra)
    wait_until(lambda: settled(view, kafka_bootstrap, site, 6), timeout=90, what="the first 6 calls")
    first = check_counters(view, kafka_bootstrap, site)
    assert offered(first) >= 4
    agent.stop()
    amisim.stop()
    # Second run: a new Asterisk, 5 more calls; the agent reads its state back
    # and counts on from there.
    agent, _ = simulate(procs, tmp_path, site, kafka_bootstrap, 5, 4, extra, name="agent2")
    agent.wait_for(r"state: \d+ records read back", timeout=30, which="err")
    wait_until(lambda: settled(view, kafka_bootstrap, site, 11), timeout=90, what="all 11 calls")
    both = check_counters(view, kafka_bootstrap, site)
    assert offered(both) >= offered(first) + 4
    for o in view.latest["state.operators"].values():
        assert o["call"] is None and o["offered"] is None


def test_broker_away_at_start_says_state_not_recovered(procs, tmp_path, site, private_broker):
    bootstrap = private_broker.bootstrap
    private_broker.stop()
    agent, _ = simulate(procs, tmp_path, site, bootstrap, 3, 5, "state: { load_timeout = 2; };")
    agent.wait_for(r"state: not recovered", timeout=60, which="err")
    agent.wait_for(r"ami: logged in", timeout=30, which="err")
    private_broker.start()
    gaps = wait_until(lambda: [e for e in events(bootstrap, site.topic("status"))
                               if e["type"] == "callbus.agent.gap" and e["data"]["reason"] == "state_not_recovered"],
                      timeout=90, what="the state_not_recovered gap")
    assert len(gaps) == 1
    assert not validate_message(gaps[0])
    # The agent goes on with fresh state: the calls still reach the state
    # topics, which it created, compacted, once the broker was back.
    view = StateView(bootstrap, site)
    wait_until(lambda: settled(view, bootstrap, site, 3), timeout=90, what="the 3 calls")
    check_counters(view, bootstrap, site)
    for kind in STATE_TOPICS:
        assert describe_topic(bootstrap, site.topic(kind))[0]["cleanup.policy"] == "compact", kind
