"""Every real Asterisk capture, replayed by amisim through callbus-agent into a
real Kafka broker, yields exactly the calls and facts its README lists, and
the ami topic gives back every event byte for byte."""

import collections

import pytest

from callbus_harness import (capture_messages, messages, serialize, start_agent, start_amisim,
                             wire_bytes, write_agent_conf, SAMPLES)
from schema_check import validate_message

# What each capture must yield (tests/fixtures/ami-samples/README.md).
EXPECTED = {
    "01-inbound-queue-answered": {
        "1795670259.0": dict(disposition="answered", answered_by="op101", queue="support",
                             wait_s=2, talk_s=9.503, duration_s=13.017)},
    "02-inbound-queue-paused-abandon": {
        "1795670300.10": dict(disposition="abandoned", queue="support", wait_s=7, talk_s=0,
                              duration_s=9.008)},
    "03a-c2c-answered": {
        "c2c-2001-op": dict(disposition="answered", talk_s=8.509, duration_s=13.523,
                            hangup_cause=16)},
    "03b-c2c-busy": {
        "1795670334.16": dict(disposition="busy", talk_s=0, duration_s=3.010, hangup_cause=17)},
    "03d-c2c-invalid-number": {
        "1795670370.24": dict(disposition="failed", talk_s=0, duration_s=2.006)},
    "04-queue-member-management": {
        "1795670410.38": dict(disposition="answered", answered_by="op104", wait_s=2,
                              talk_s=7.504, duration_s=10.014)},
    "05a-redirect": {
        "1795670426.42": dict(disposition="answered", answered_by="op102", wait_s=2,
                              talk_s=20.508, duration_s=26.023)},
    "06-hangup-and-info-actions": {
        "1795670498.62": dict(disposition="answered", talk_s=5.029, duration_s=9.04, hangup_cause=16),
        "1795670502.66": dict(disposition="answered", talk_s=3.021, duration_s=7.03, hangup_cause=21)},
    "09a-restart-gracefully": {
        "1795670658.818": dict(disposition="answered", talk_s=8.509, duration_s=13.52)},
    "10a-cdr-cel-inbound-answered": {
        "1795670601.792": dict(disposition="answered", answered_by="op103", wait_s=2,
                               talk_s=9.502, duration_s=13.016)},
}


def stream_events(name):
    """The capture's messages after its login response and FullyBooted (amisim
    sends its own), without the Logoff reply."""
    msgs = capture_messages(name)
    body = msgs[2:]  # [0] is the login response, [1] FullyBooted
    assert dict(msgs[1]["headers"]).get("Event") == "FullyBooted"
    return [m for m in body if dict(m["headers"]).get("Response") != "Goodbye"]


def replay(procs, tmp_path, site, kafka_bootstrap, name):
    _, port = start_amisim(procs, "--replay", SAMPLES / f"{name}.ami", "--max")
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    start_agent(procs, conf)
    want = stream_events(name)
    ami = messages(kafka_bootstrap, site.topic("ami"), timeout=60, idle=2.0)
    return want, ami


def check_ami_topic(want, ami):
    """Every capture message is on the ami topic, byte for byte, in per-key order."""
    got_by_bytes = collections.Counter(wire_bytes(e["data"]) for e in ami)
    for m in want:
        b = serialize(m["headers"])
        assert got_by_bytes[b] > 0, f"missing on ami topic: {m['headers'][:3]}"
        got_by_bytes[b] -= 1
    # Per key, the capture's order is kept (partitions are ordered by offset).
    def key_of(headers):
        h = dict(headers)
        k = h.get("Linkedid") or h.get("Uniqueid")
        return None if k in (None, "", "<unknown>") else k
    want_by_key = collections.defaultdict(list)
    for m in want:
        want_by_key[key_of(m["headers"])].append(serialize(m["headers"]))
    got_by_key = collections.defaultdict(list)
    for e in sorted(ami, key=lambda e: (e["_partition"], e["_offset"])):
        got_by_key[e["_key"]].append(wire_bytes(e["data"]))
    for key, seq in want_by_key.items():
        if key is None:
            continue
        wanted = set(seq)
        assert [b for b in got_by_key[key] if b in wanted] == seq, f"order broken for key {key}"


def assert_call_in_order(events):
    """A call's events share its key, so they sit in one partition, and in
    that partition they come in the order the agent derived them (seq), from
    `started` to `ended`, their times never going back."""
    call_id = events[0]["subject"]
    assert {e["_key"] for e in events} == {call_id}
    assert len({e["_partition"] for e in events}) == 1
    events = sorted(events, key=lambda e: e["_offset"])
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs), f"{call_id}: partition order is not derivation order {seqs}"
    types = [e["type"].rsplit(".", 1)[1] for e in events]
    assert types[0] == "started" and types[-1] == "ended" and types.count("ended") == 1, types
    times = [e["time"] for e in events]
    assert times == sorted(times), f"{call_id}: time goes back {list(zip(types, times))}"


@pytest.mark.sanitizer
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_yields_its_calls(name, procs, tmp_path, site, kafka_bootstrap):
    want, ami = replay(procs, tmp_path, site, kafka_bootstrap, name)
    check_ami_topic(want, ami)

    calls = messages(kafka_bootstrap, site.topic("calls"), timeout=30)
    operators = messages(kafka_bootstrap, site.topic("operators"), timeout=10, idle=1.0)
    status = messages(kafka_bootstrap, site.topic("status"), timeout=10, idle=1.0)
    for ev in ami + calls + operators + status:
        errors = validate_message({k: v for k, v in ev.items() if not k.startswith("_")})
        assert not errors, f"{ev['type']} {ev['id']}: {errors}"

    ended = {e["subject"]: e["data"] for e in calls if e["type"] == "callbus.call.ended"}
    started = {e["subject"] for e in calls if e["type"] == "callbus.call.started"}
    assert set(ended) == set(EXPECTED[name]), f"ended calls {sorted(ended)}"
    assert started == set(EXPECTED[name])
    for call_id, facts in EXPECTED[name].items():
        d = ended[call_id]
        for field, value in facts.items():
            if isinstance(value, float) or field.endswith("_s"):
                assert d.get(field) == pytest.approx(value, abs=0.0015), f"{call_id} {field}: {d}"
            else:
                assert d.get(field) == value, f"{call_id} {field}: {d}"
        assert d["reason"] == "normal"
        assert_call_in_order([e for e in calls if e["subject"] == call_id])

    if name == "02-inbound-queue-paused-abandon":
        paused = [e["data"] for e in operators if e["type"] == "callbus.operator.paused"]
        assert {p["operator_id"] for p in paused} == {"op101", "op102", "op103"}
        assert all(p["reason"] == "Team meeting" for p in paused)
        assert any(e["type"] == "callbus.call.abandoned" for e in calls)
    if name == "04-queue-member-management":
        types = {e["type"] for e in operators}
        assert {"callbus.operator.logged_in", "callbus.operator.logged_out"} <= types
    if name == "05a-redirect":
        tr = [e["data"] for e in calls if e["type"] == "callbus.call.transferred"]
        assert tr and tr[0]["from_operator_id"] == "op102" and tr[0]["to_operator_id"] == "op103"


@pytest.mark.sanitizer
def test_ids_are_unique_and_sequenced(procs, tmp_path, site, kafka_bootstrap):
    """Event ids carry site, agent, epoch and a per-topic sequence without gaps."""
    _, ami = replay(procs, tmp_path, site, kafka_bootstrap, "01-inbound-queue-answered")
    ids = [e["id"] for e in ami]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"{site.id}:agent1:ami:") for i in ids)
    seqs = sorted(e["seq"] for e in ami)
    assert seqs == list(range(1, len(seqs) + 1))
    assert len({e["epoch"] for e in ami}) == 1
    # Asterisk's Timestamp is the event time.
    nb = next(e for e in ami if dict(e["data"]["headers"]).get("Event") == "Newchannel")
    assert nb["time"].startswith("2026-11-26T05:17:39.396093")
