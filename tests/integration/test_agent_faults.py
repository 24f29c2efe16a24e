"""The agent under faults: a broker away for 40 s, the agent killed and
stopped while it is away, Asterisk restarting, the AMI link cut while calls
end, and malformed AMI input."""

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from callbus_harness import (TcpProxy, messages, metrics, restart_amisim, start_agent,
                             serialize, start_amisim, wire_bytes, write_agent_conf)
from conftest import consume_all, create_topic, wait_until


def ended_calls(bootstrap, site, timeout=20):
    return {e["subject"]: e["data"] for e in messages(bootstrap, site.topic("calls"), timeout=timeout)
            if e["type"] == "callbus.call.ended"}


def proc_status_kib(pid, field):
    """A memory figure of /proc/<pid>/status in KiB (VmRSS, VmHWM): the
    kernel's count, not the agent's."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")))


def test_broker_away_40s_loses_nothing_and_keeps_order(procs, tmp_path, site, private_broker):
    """The broker away for 40 s under ~1,000 events/s: nothing is lost, order
    is kept, the agent's memory stays bounded (the in-memory queue is 2,000
    messages; the rest goes to the disk spool), and it never blocks
    Asterisk: amisim drops a reader whose output stalls for 100 ms
    (--writetimeout, as Asterisk does) and never has to."""
    bootstrap = private_broker.bootstrap
    stats = tmp_path / "amisim-stats.json"
    amisim, port = start_amisim(procs, "--simulate", "--operators", "150", "--queues", "support",
                                "--rate", "20", "--talk", "1-3", "--calls", "1100", "--seed", "7",
                                "--abandon", "0", "--linger", "0", "--stats-file", stats,
                                "--writetimeout", "100")
    conf, http = write_agent_conf(tmp_path, site, bootstrap, port, ping_interval=NO_PINGS,
                                  kafka_extra=["queue.buffering.max.messages=2000"])
    agent = start_agent(procs, conf)
    time.sleep(8)
    private_broker.stop()
    t_down = time.monotonic()
    rss_before = proc_status_kib(agent.pid, "VmRSS")
    time.sleep(40)
    assert agent.alive, "agent died while the broker was away"
    m = metrics(http)
    hwm = proc_status_kib(agent.pid, "VmHWM")
    spooled_kib = m["callbus_agent_spool_bytes"] / 1024
    print(f"agent RSS {rss_before} KiB when the broker left, peak {hwm} KiB after 40 s; "
          f"spool {spooled_kib:.0f} KiB")
    # Memory does not follow the outage: what grew went to disk. (The
    # figures themselves are `make bench`'s business; this is a bound.)
    assert hwm - rss_before < 16 * 1024, "the agent's memory grew with the outage"
    assert spooled_kib > 16 * 1024, "too little traffic to show a bound"
    assert "slow reader dropped" not in amisim.output(), "the agent blocked Asterisk"
    assert m["callbus_agent_kafka_up"] == 0 or m["callbus_agent_spooled_total"] > 0
    assert m["callbus_agent_dropped_total"] == 0
    private_broker.start()
    print(f"broker down for {time.monotonic() - t_down:.1f} s")
    amisim.wait(timeout=180)  # --calls 1100 ends the simulation; the stats file is final

    m = drained(http)
    # The spool is drained, so the topic is complete once it stops growing.
    ami = messages(bootstrap, site.topic("ami"), timeout=120, idle=3)
    seqs = [e["seq"] for e in ami]
    assert len(seqs) == len(set(seqs)), "duplicates on the ami topic"
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap in the ami topic's sequence"
    # Ground truth: what amisim sent (one session), not the agent's own counters.
    [sent] = json.loads(stats.read_text())["sessions"].values()
    assert_run_complete(ami, sent)
    # Per-call order: within a key, partition order equals AMI order (seq).
    by_key = collections.defaultdict(list)
    for e in sorted(ami, key=lambda e: (e["_partition"], e["_offset"])):
        if e["_key"]:
            by_key[e["_key"]].append(e["seq"])
    violations = sum(1 for s in by_key.values() if s != sorted(s))
    assert violations == 0
    ended = ended_calls(bootstrap, site, timeout=60)
    print(f"ami messages {len(ami)}, calls ended {len(ended)}, keys {len(by_key)}, "
          f"spooled {m['callbus_agent_spooled_total']:.0f}, order violations {violations}")
    # Every call ended by its own Hangups, none by a reconciliation.
    assert collections.Counter(d["reason"] for d in ended.values()) == {"normal": 1100}


BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# amisim echoes the agent's Login ActionID, "callbus/<nonce>/1": its length,
# not its (random) nonce, is what the byte counts need.
LOGIN_REPLY = serialize([("Response", "Success"), ("ActionID", "callbus/" + "0" * 32 + "/1"),
                         ("Message", "Authentication accepted")])
NO_PINGS = 3600  # agent.ami.ping_interval: no Ping replies in the byte counts


def assert_run_complete(ami, sent, what="the run", crashed=False):
    """The ami messages of one agent run against amisim's record of its AMI
    session (stats file "sessions"): every byte amisim sent after the banner,
    and every event, each exactly once (duplicate ids counted once). For a
    run that ended in a kill, what reached the agent is what its TCP
    acknowledged (amisim may write into the dead connection before it
    notices); the test makes sure the agent had read all of that."""
    first = {}
    for e in ami:
        first.setdefault(e["id"], e)
    # Not published: the banner and the reply to the agent's Login (and to
    # its keep-alive Pings, which these tests turn off).
    got = len(BANNER) + len(LOGIN_REPLY) + sum(len(wire_bytes(e["data"])) for e in first.values())
    if crashed:
        assert got == sent["bytes_acked"], f"{what}: {got} bytes published, amisim: {sent}"
        return
    # amisim counts the events it broadcasts, not the list items of its replies
    events = sum(1 for e in first.values() if e["data"]["kind"] == "event"
                 and "ActionID" not in dict(e["data"]["headers"]))
    assert (events, got) == (sent["events"], sent["bytes_written"]), \
        f"{what}: {events} events / {got} bytes published, amisim sent {sent}"


def ami_by_epoch(ami):
    """{epoch: [seq, ...]} of an ami topic's messages."""
    by_epoch = collections.defaultdict(list)
    for e in ami:
        by_epoch[e["epoch"]].append(e["seq"])
    return by_epoch


def key_order_violations(ami):
    """Keys whose first occurrences, in partition order, are not in (epoch,
    seq) order."""
    seen, by_key = set(), collections.defaultdict(list)
    for e in sorted(ami, key=lambda e: (e["_partition"], e["_offset"])):
        if e["_key"] and e["id"] not in seen:
            by_key[e["_key"]].append((e["epoch"], e["seq"]))
        seen.add(e["id"])
    return sum(1 for s in by_key.values() if s != sorted(s)), len(ami) - len(seen)


def drained(http):
    def check():
        m = metrics(http)
        return m["callbus_agent_spool_bytes"] == 0 and m["callbus_agent_kafka_queued"] == 0 and m
    return wait_until(check, timeout=120, interval=1, what="the agent to drain its spool")


@contextlib.contextmanager
def asterisk_paused(amisim, http):
    """SIGSTOP amisim, wait until the agent has read all that is on the wire
    (its byte counter stands still), run the body (a kill or a stop of the
    agent), SIGCONT. Then what amisim wrote to that session is exactly what
    the agent read: the ground truth of a run."""
    amisim.send_signal(signal.SIGSTOP)
    try:
        last = [None]

        def still():
            n = metrics(http)["callbus_agent_ami_bytes_total"]
            done, last[0] = n == last[0], n
            return done
        wait_until(still, timeout=20, interval=0.3, what="the agent to read what amisim sent")
        yield
    finally:
        amisim.send_signal(signal.SIGCONT)


# agent/spool.c WRITE_AHEAD_SEGMENT: what a crash may send again (README, Guarantees)
WRITE_AHEAD_SEGMENT = 1 << 20


@pytest.mark.sanitizer
def test_agent_killed_stopped_killed_while_broker_away(procs, tmp_path, site, private_broker):
    """While the broker is away the agent is killed -9 with thousands of
    messages in librdkafka's memory (on disk only by write-ahead; what did
    not fit in its 4 MiB queue is in the spool),
    started, stopped with SIGTERM, started, killed -9 again while it holds
    messages read back from the spool, and started once more. When the broker
    is back, every run's messages arrive: exactly what amisim sent to that
    run's AMI session, in per-key order, with no more duplicates than the
    spool's 1 MiB write-ahead segment resends."""
    bootstrap = private_broker.bootstrap
    stats = tmp_path / "amisim-stats.json"
    amisim, port = start_amisim(procs, "--simulate", "--operators", "150", "--queues", "support",
                                "--rate", "10", "--talk", "1-3", "--calls", "100000", "--seed", "17",
                                "--abandon", "0", "--linger", "0", "--stats-file", stats)
    conf, http = write_agent_conf(tmp_path, site, bootstrap, port, ping_interval=NO_PINGS)
    runs = [start_agent(procs, conf, name="agent-killed")]
    time.sleep(3)
    # Nothing in flight when the broker goes: what it had, it acknowledged,
    # so the duplicates below are only what the spool resends by design.
    with asterisk_paused(amisim, http):
        wait_until(lambda: metrics(http)["callbus_agent_kafka_queued"] == 0, timeout=30,
                   what="the broker to acknowledge everything")
        private_broker.stop()
    time.sleep(5)
    with asterisk_paused(amisim, http):
        m = metrics(http)
        assert m["callbus_agent_kafka_queued"] > 1000, m
        runs[-1].stop(sig=signal.SIGKILL)

    runs.append(start_agent(procs, conf, name="agent-stopped"))
    runs[-1].wait_for(r"spool: \d+ bytes from an earlier run will be sent first", timeout=5, which="err")
    time.sleep(3)
    with asterisk_paused(amisim, http):
        assert runs[-1].stop(timeout=30) == 0
    runs[-1].wait_for(r"undelivered at shutdown: keeping them in the spool", timeout=1, which="err",
                      since_start=False)

    runs.append(start_agent(procs, conf, name="agent-killed-again"))
    time.sleep(3)
    with asterisk_paused(amisim, http):
        # librdkafka now holds what the earlier runs left (read back from the
        # spool) and this run's own messages (written ahead): a kill must lose
        # none of them.
        assert metrics(http)["callbus_agent_kafka_queued"] > 1000
        runs[-1].stop(sig=signal.SIGKILL)

    runs.append(start_agent(procs, conf, name="agent-last"))
    time.sleep(2)
    private_broker.start()
    with asterisk_paused(amisim, http):  # quiet AMI: the spool drains at once
        drained(http)
        assert runs[-1].stop(timeout=30) == 0
    amisim.stop()  # the stats file is final
    ami = messages(bootstrap, site.topic("ami"), timeout=120, idle=3)
    by_epoch = ami_by_epoch(ami)
    epochs = sorted(by_epoch)
    assert len(epochs) == 4, f"epochs {epochs}"
    sessions = json.loads(stats.read_text())["sessions"]
    assert len(sessions) == 4, f"one AMI session per run expected: {sessions}"
    for run, epoch, sid in zip(runs, epochs, sorted(sessions, key=int)):
        assert_run_complete([e for e in ami if e["epoch"] == epoch], sessions[sid], run.name,
                            crashed=True)
    violations, duplicates = key_order_violations(ami)
    assert violations == 0
    seen, dup_bytes, dup_by_epoch = set(), 0, collections.Counter()
    for e in ami:
        if e["id"] in seen:
            dup_bytes += e["_size"]
            dup_by_epoch[e["epoch"]] += e["_size"]
        seen.add(e["id"])
    # Only the first crash can resend what the broker had (the second comes
    # while it is away): at most the write-ahead segment open at that time.
    assert dup_bytes <= WRITE_AHEAD_SEGMENT, f"{dup_bytes} bytes sent twice, by epoch {dict(dup_by_epoch)}"
    reasons = collections.defaultdict(set)
    for e in messages(bootstrap, site.topic("status")):
        if e["type"] == "callbus.agent.status":
            reasons[e["epoch"]].add(e["data"]["reason"])
    assert ["stopped" in reasons[e] for e in epochs] == [False, True, False, True]
    print(f"in librdkafka's memory at the first kill: {m['callbus_agent_kafka_queued']:.0f}; ami messages "
          f"{len(ami)} ({duplicates} sent twice, {dup_bytes} bytes, same ids), per run "
          f"{[len(set(by_epoch[e])) for e in epochs]}, order violations {violations}")


@pytest.mark.sanitizer
def test_asterisk_restart_ends_lost_calls(procs, tmp_path, site, kafka_bootstrap):
    """amisim killed mid-call and started again: the agent reconnects, resyncs,
    and ends the calls that died with it, saying why."""
    args = ("--simulate", "--operators", "5", "--queues", "support", "--rate", "2",
            "--talk", "60-90", "--seed", "3")
    amisim, port = start_amisim(procs, *args)
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    wait_until(lambda: metrics(http)["callbus_agent_active_calls"] >= 3, timeout=30,
               what="calls in progress")
    amisim.stop(sig=signal.SIGKILL)
    time.sleep(3)  # a restart takes Asterisk seconds; Uptime counts whole ones
    restart_amisim(procs, port, "--simulate", "--operators", "5", "--queues", "support",
                   "--rate", "0.01", "--talk", "60-90", name="amisim-restarted")
    agent.wait_for(r"resync done", timeout=30, which="err")
    ended = wait_until(lambda: ended_calls(kafka_bootstrap, site) or None, timeout=30,
                       what="ended calls")
    assert len(ended) >= 3
    assert {d["reason"] for d in ended.values()} == {"asterisk_restarted"}
    started = {e["subject"] for e in messages(kafka_bootstrap, site.topic("calls"))
               if e["type"] == "callbus.call.started"}
    assert started <= set(ended) | set()  # every call seen before the restart was ended
    gaps = [e for e in messages(kafka_bootstrap, site.topic("status"))
            if e["type"] == "callbus.agent.gap"]
    assert any(g["data"]["reason"] == "asterisk_restarted" for g in gaps)
    assert agent.alive


@pytest.mark.sanitizer
def test_graceful_shutdown_announced(procs, tmp_path, site, kafka_bootstrap):
    """Asterisk's `Shutdown` event alone tells the agent that Asterisk
    restarted: the Asterisk it reconnects to has been up longer than the one
    that shut down, so FullyBooted's Uptime shows no restart. The calls of
    the one that went away end as asterisk_restarted, and so does the gap
    (without the Shutdown handling both would say ami_disconnected /
    ended_while_link_down, as in test_link_cut_while_asterisk_runs)."""
    _, back_port = start_amisim(procs, "--simulate", "--operators", "3", "--rate", "0.01",
                                name="amisim-up-longer")
    time.sleep(2)  # well over the agent's 1.5 s allowance for Uptime rounding
    amisim, port = start_amisim(procs, "--simulate", "--operators", "3", "--rate", "1",
                                "--talk", "60-90", "--shutdown-after", "4", "--seed", "5")
    proxy = TcpProxy(port)
    try:
        conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, proxy.port)
        agent = start_agent(procs, conf)
        proxy.retarget(back_port)  # the reconnect reaches the Asterisk that was up all along
        amisim.wait(timeout=20)
        agent.wait_for(r"resync done", timeout=30, which="err")
        ended = wait_until(lambda: ended_calls(kafka_bootstrap, site) or None, timeout=30, what="ended")
        assert len(ended) >= 2
        assert {d["reason"] for d in ended.values()} == {"asterisk_restarted"}
        gaps = [e["data"] for e in messages(kafka_bootstrap, site.topic("status"))
                if e["type"] == "callbus.agent.gap"]
        assert [g["reason"] for g in gaps] == ["asterisk_restarted"]
        assert "Asterisk restarted (uptime" not in agent.output("err"), \
            "the Uptime check saw a restart: this test no longer isolates Shutdown"
    finally:
        proxy.close()


@pytest.mark.sanitizer
def test_link_cut_while_asterisk_runs(procs, tmp_path, site, kafka_bootstrap):
    """The AMI link drops while Asterisk keeps running and calls end meanwhile:
    after the reconnect those calls are ended as ended_while_link_down."""
    amisim, port = start_amisim(procs, "--simulate", "--operators", "6", "--rate", "3",
                                "--talk", "3-5", "--calls", "6", "--seed", "11")
    proxy = TcpProxy(port)
    try:
        conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, proxy.port)
        agent = start_agent(procs, conf)
        wait_until(lambda: metrics(http)["callbus_agent_active_calls"] >= 2, timeout=30,
                   what="calls in progress")
        proxy.cut()
        time.sleep(9)  # every call ends while the agent cannot see it
        proxy.restore()
        agent.wait_for(r"resync done", timeout=30, which="err")
        ended = wait_until(lambda: ended_calls(kafka_bootstrap, site) or None, timeout=30,
                           what="ended calls")
        reasons = collections.Counter(d["reason"] for d in ended.values())
        assert reasons["ended_while_link_down"] >= 2
        assert "asterisk_restarted" not in reasons
        gaps = [e["data"] for e in messages(kafka_bootstrap, site.topic("status"))
                if e["type"] == "callbus.agent.gap"]
        assert any(g["reason"] == "ami_disconnected" for g in gaps)
        assert metrics(http)["callbus_agent_active_calls"] == 0
    finally:
        proxy.close()


def malformed_stream():
    crlf = b"\r\n"
    def msg(*pairs):
        return b"".join(k.encode() + b": " + v.encode() + crlf for k, v in pairs) + crlf
    out = b"Asterisk Call Manager/11.0.0\r\n"
    # The capture's own login reply and FullyBooted: amisim --replay sends its
    # own (answering the agent's unguessable Login ActionID) instead.
    out += msg(("Response", "Success"), ("ActionID", "rec-1"), ("Message", "Authentication accepted"))
    out += msg(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "10"),
               ("LastReload", "10"), ("Status", "Fully Booted"))
    out += b"Event: VarSet\r\nValue: " + b"x" * 100_000 + b"\r\n\r\n"           # line too long
    out += b"Event: Big\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    out += b"\x00\xff\xfe junk \x01\x02\r\nmore\x00junk\r\n\r\n"                   # binary junk
    out += b"Event: BareLF\nKey:NoSpace\n\n"                                       # tolerated forms
    out += b"\r\n\r\n"                                                             # stray blank lines
    out += b"Event: CRLFLF\r\nUniqueid: 1.1\r\n\n"
    out += msg(("Event", "Marker"), ("Privilege", "system,all"), ("Uniqueid", "marker.1"))
    return out


@pytest.mark.sanitizer
def test_malformed_ami_never_crashes(procs, tmp_path, site, kafka_bootstrap):
    junk = tmp_path / "junk.ami"
    junk.write_bytes(malformed_stream())
    _, port = start_amisim(procs, "--replay", junk)
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    ami = wait_until(lambda: [e for e in messages(kafka_bootstrap, site.topic("ami"), idle=1.0)
                              if e["data"].get("headers") and
                              ["Event", "Marker"] in e["data"]["headers"]] and
                     messages(kafka_bootstrap, site.topic("ami"), idle=1.0),
                     timeout=30, what="the marker event after the junk")
    assert agent.alive
    refused = [e["data"] for e in ami if e["data"]["kind"] == "refused"]
    # The junk's first header is neither Event nor Response: only an
    # injection makes such a message (docs/bad-input.md).
    assert {r["error"] for r in refused} == {"line_too_long", "too_many_headers", "not_event_or_response"}
    assert all(r["raw_len"] > 0 and r["raw_base64"] for r in refused)
    names = [dict(e["data"]["headers"]).get("Event") for e in ami if e["data"].get("headers")]
    assert "BareLF" in names and "CRLFLF" in names
    bare = next(e["data"] for e in ami if e["data"].get("headers") and
                dict(e["data"]["headers"]).get("Event") == "BareLF")
    assert ["Key", "NoSpace"] in bare["headers"]
    import base64
    assert base64.b64decode(bare["raw_base64"]) == b"Event: BareLF\nKey:NoSpace\n\n"
    gaps = [e["data"] for e in messages(kafka_bootstrap, site.topic("status"))
            if e["type"] == "callbus.agent.gap"]
    # Two refusals by the parser and one junk message refused as forged, a
    # gap each.
    parse_gaps = sum(1 for g in gaps if g["reason"] == "parse_error")
    m = metrics(http)
    assert parse_gaps == 3
    assert m["callbus_agent_ami_refused_total"] == 2 and m["callbus_agent_ami_forged_total"] == 1


def spool_record(topic, key, value, flags=0, keylen=None):
    """One record as agent/spool.c lays it out (host order: little-endian here)."""
    import struct
    total = 12 + len(key) + len(value)
    return struct.pack("<IBBHI", total, topic, flags, 0, len(key) if keylen is None else keylen) + key + value


@pytest.mark.sanitizer
def test_damaged_spool_skipped_rest_sent(procs, tmp_path, site, kafka_bootstrap):
    """The spool directory is the disk's word: a record naming no topic of
    the agent's (topic 200) once indexed past its topic table, a key longer
    than its record stopped the drain for good. Both are skipped, said in
    the log, and the records around them still reach Kafka."""
    status = 3  # TOPIC_STATUS in agent/publisher.h
    def planted(n):
        return json.dumps({"specversion": "1.0", "id": f"planted-{n}", "source": "test",
                           "type": "test.planted", "data": {}}).encode()
    spool_dir = tmp_path / "agent1-state" / "spool"
    spool_dir.mkdir(parents=True)
    (spool_dir / f"seg-{1 << 40:020d}.spool").write_bytes(
        spool_record(status, b"k", planted(1)) + spool_record(200, b"k", planted(2)) +
        spool_record(status, b"k", planted(3), keylen=900) +
        spool_record(status, b"k", planted(4), flags=1) + spool_record(status, b"k", planted(5)))
    _, port = start_amisim(procs, "--simulate", "--operators", "2", "--rate", "0.1")
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    got = wait_until(lambda: {e["id"] for e in messages(kafka_bootstrap, site.topic("status"), idle=1.0)
                              if e["id"].startswith("planted-")} >= {"planted-1", "planted-5"} and
                     {e["id"] for e in messages(kafka_bootstrap, site.topic("status"), idle=1.0)
                      if e["id"].startswith("planted-")},
                     timeout=30, what="the planted records around the damage")
    assert got == {"planted-1", "planted-5"}
    assert agent.alive
    err = agent.output("err")
    assert "a record for an unknown topic (200) skipped" in err
    assert err.count("a damaged record") == 2


def undeliverable_gaps(bootstrap, site):
    """(number of kafka_undeliverable gaps, sum of the messages they count,
    the same by topic kind)."""
    gaps = [e["data"] for e in messages(bootstrap, site.topic("status"), idle=0.5)
            if e["type"] == "callbus.agent.gap" and e["data"]["reason"] == "kafka_undeliverable"]
    by_kind = {}
    for g in gaps:
        total, kinds = re.fullmatch(r"(\d+) messages could not be kept \([^)]*\):((?: \S+ \d+)+)", g["detail"]).groups()
        pairs = re.findall(r" (\S+) (\d+)", kinds)
        assert sum(int(n) for _, n in pairs) == int(total), g["detail"]
        for kind, n in pairs:
            by_kind[kind] = by_kind.get(kind, 0) + int(n)
    return len(gaps), sum(by_kind.values()), by_kind


def missing_seqs(bootstrap, site):
    """Sequence numbers missing on the agent's topics (one epoch each)."""
    missing = {}
    for kind in ("ami", "calls", "operators", "status"):
        seqs = {e["seq"] for e in messages(bootstrap, site.topic(kind), idle=0.5)}
        missing[kind] = max(seqs) - len(seqs) if seqs else 0
    return missing


def losses_announced(amisim, agent, http, bootstrap, site, timeout=30):
    """With Asterisk paused (nothing new to lose), waits until the agent's
    kafka_undeliverable gaps count every message it dropped or could not
    deliver, then stops it. Returns (final metrics, gaps, messages they
    count, missing seqs per topic)."""
    amisim.send_signal(signal.SIGSTOP)
    try:
        def announced():
            m = metrics(http)
            lost = m["callbus_agent_dropped_total"] + m["callbus_agent_kafka_failed_total"]
            # Nothing still queued: its delivery report could add a loss.
            return (m["callbus_agent_spool_bytes"] == 0 and m["callbus_agent_kafka_queued"] == 0
                    and undeliverable_gaps(bootstrap, site)[1] == lost)
        try:
            wait_until(announced, timeout=timeout, interval=2, what="every loss to be announced")
        except TimeoutError:
            m = metrics(http)
            raise AssertionError(f"dropped {m['callbus_agent_dropped_total']:.0f}, failed "
                                 f"{m['callbus_agent_kafka_failed_total']:.0f}, spool "
                                 f"{m['callbus_agent_spool_bytes']:.0f} bytes, queued "
                                 f"{m['callbus_agent_kafka_queued']:.0f}; gaps "
                                 f"{undeliverable_gaps(bootstrap, site)}; missing "
                                 f"{missing_seqs(bootstrap, site)}") from None
        m = metrics(http)
        assert agent.stop(timeout=30) == 0
    finally:
        amisim.send_signal(signal.SIGCONT)
    return (m, *undeliverable_gaps(bootstrap, site), missing_seqs(bootstrap, site))


@pytest.mark.parametrize("full", ["max_mb", "disk"])
def test_spool_full_drops_are_counted_and_announced(full, procs, tmp_path, site, kafka_bootstrap):
    """The broker unreachable, librdkafka's queue full (500 messages) and the
    spool full: at agent.spool.max_mb (1), with write_ahead = false, or on a
    full disk (a 256 KiB tmpfs mounted by the test), with write-ahead.
    Messages are dropped, counted in callbus_agent_dropped_total, and
    announced as kafka_undeliverable gaps once the broker is back; the gaps
    count exactly the sequence numbers missing on the topics: nothing is
    lost silently."""
    spool = tmp_path / "spool"
    spool.mkdir()
    if full == "disk":
        if os.geteuid() != 0:
            pytest.skip("mounting the small tmpfs needs root")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(spool)], check=True)
        procs.cleanups.append(lambda: subprocess.run(["umount", "-l", str(spool)], check=False))
        spool_conf = f'spool: {{ dir = "{spool}"; }};'
    else:
        spool_conf = f'spool: {{ dir = "{spool}"; max_mb = 1; write_ahead = false; }};'
    for kind in ("ami", "calls", "operators"):
        create_topic(kafka_bootstrap, site.topic(kind))
    create_topic(kafka_bootstrap, site.topic("status"), config={"cleanup.policy": "compact"})
    # The agent bootstraps through a proxy that is down: the broker is away
    # from the start (once it is up, librdkafka talks to the broker itself).
    kafka = TcpProxy(int(kafka_bootstrap.rsplit(":", 1)[1]))
    procs.cleanups.append(kafka.close)
    kafka.cut()
    amisim, port = start_amisim(procs, "--simulate", "--operators", "50", "--queues", "support",
                                "--rate", "5", "--talk", "1-3", "--seed", "9", "--abandon", "0")
    conf, http = write_agent_conf(
        tmp_path, site, f"127.0.0.1:{kafka.port}", port, ping_interval=NO_PINGS,
        kafka_extra=["queue.buffering.max.messages=500"],
        agent_extra=spool_conf)
    agent = start_agent(procs, conf)
    wait_until(lambda: metrics(http)["callbus_agent_dropped_total"] > 100, timeout=60,
               what="the agent to drop messages")
    assert agent.alive
    kafka.restore()
    # Traffic goes on after the drops, so each topic's holes show as missing
    # sequence numbers (a drop at a topic's very end would not): wait until
    # 200 messages are delivered after the last drop. Drops go on after the
    # restore while the full spool drains (new messages queue behind it), and
    # on a slow machine they can outlast the traffic counted from the restore.
    last_drop = {}

    def delivered_after_last_drop():
        m = metrics(http)
        dropped, delivered = m["callbus_agent_dropped_total"], m["callbus_agent_kafka_delivered_total"]
        if last_drop.get("dropped") != dropped:
            last_drop.update(dropped=dropped, delivered=delivered)
            return False
        return (m["callbus_agent_spool_bytes"] == 0 and m["callbus_agent_kafka_queued"] == 0
                and delivered > last_drop["delivered"] + 200)
    wait_until(delivered_after_last_drop, timeout=60, what="traffic after the last drop to be delivered")
    # The overflow's start and end, in the operations guide's words.
    agent.wait_for(r"in-memory queue full \(broker slow or away\): spooling to disk", which="err")
    agent.wait_for(r"spool: drained, back to direct delivery", which="err")
    m, ngaps, announced_n, by_kind, missing = losses_announced(amisim, agent, http, kafka_bootstrap, site)
    print(f"dropped {m['callbus_agent_dropped_total']:.0f}, spooled {m['callbus_agent_spooled_total']:.0f}; "
          f"{ngaps} gaps announce {announced_n} {by_kind}; missing seqs {missing}")
    assert m["callbus_agent_dropped_total"] > 100
    assert announced_n == m["callbus_agent_dropped_total"] + m["callbus_agent_kafka_failed_total"]
    # The compacted state topics have holes in seq anyway: not counted here.
    # The ami topic has traffic after the drops, so its holes are all of its
    # losses; a quieter topic (calls, operators) can lose its last messages,
    # which leave no hole, so there the holes are at most what was announced.
    assert missing["ami"] == by_kind.get("ami", 0) > 0, "ami: holes and announced losses differ"
    for kind in missing:
        assert missing[kind] <= by_kind.get(kind, 0), f"{kind}: messages lost without a gap saying so"


def test_permanent_delivery_errors_are_counted_and_announced(procs, tmp_path, site, kafka_bootstrap):
    """A permanent delivery error, produced by a real broker: the ami topic
    was created compacted by mistake, and the broker refuses every keyless
    record (INVALID_RECORD). Those messages are counted in
    callbus_agent_kafka_failed_total and announced as kafka_undeliverable
    gaps; the keyed ones still arrive."""
    create_topic(kafka_bootstrap, site.topic("ami"), config={"cleanup.policy": "compact"})
    amisim, port = start_amisim(procs, "--simulate", "--operators", "10", "--queues", "support",
                                "--rate", "2", "--talk", "1-3", "--seed", "4")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port, ping_interval=NO_PINGS)
    agent = start_agent(procs, conf)
    wait_until(lambda: metrics(http)["callbus_agent_kafka_failed_total"] > 0, timeout=30,
               what="a permanent delivery error")

    m, ngaps, announced_n, by_kind, missing = losses_announced(amisim, agent, http, kafka_bootstrap, site)
    print(f"failed {m['callbus_agent_kafka_failed_total']:.0f}; {ngaps} gaps announce {announced_n}; "
          f"missing seqs {missing}")
    assert m["callbus_agent_dropped_total"] == 0
    assert announced_n == m["callbus_agent_kafka_failed_total"] > 0
    # Nothing else is missing (a refused record at a topic's end leaves no
    # hole to count, so the ami topic can show fewer).
    assert set(by_kind) == {"ami"}, "only the compacted ami topic refuses records"
    assert missing["ami"] <= announced_n
    assert sum(missing.values()) == missing["ami"]
