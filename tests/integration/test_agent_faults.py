"""The agent under faults: a broker away for 40 s, the agent killed and
stopped while it is away, Asterisk restarting, the AMI link cut while calls
end, and malformed AMI input."""

import collections
import signal
import time

import pytest

from callbus_harness import (TcpProxy, messages, metrics, restart_amisim, start_agent,
                             start_amisim, write_agent_conf)
from conftest import consume_all, wait_until


def ended_calls(bootstrap, site, timeout=20):
    return {e["subject"]: e["data"] for e in messages(bootstrap, site.topic("calls"), timeout=timeout)
            if e["type"] == "callbus.call.ended"}


def test_broker_away_40s_loses_nothing_and_keeps_order(procs, tmp_path, site, private_broker):
    bootstrap = private_broker.bootstrap
    # ~1,000 events/s for about 55 s; a small in-memory bound forces the disk spool.
    amisim, port = start_amisim(procs, "--simulate", "--operators", "150", "--queues", "support",
                                "--rate", "20", "--talk", "1-3", "--calls", "1100", "--seed", "7",
                                "--abandon", "0", "--linger", "0",
                                "--stats-file", tmp_path / "amisim-stats.json")
    conf, http = write_agent_conf(tmp_path, site, bootstrap, port,
                                  kafka_extra=["queue.buffering.max.messages=2000"])
    agent = start_agent(procs, conf)
    time.sleep(8)
    private_broker.stop()
    t_down = time.monotonic()
    time.sleep(40)
    assert agent.alive, "agent died while the broker was away"
    m = metrics(http)
    assert m["callbus_agent_kafka_up"] == 0 or m["callbus_agent_spooled_total"] > 0
    assert m["callbus_agent_spooled_total"] > 0, "the disk spool was never used"
    assert m["callbus_agent_dropped_total"] == 0
    private_broker.start()
    print(f"broker down for {time.monotonic() - t_down:.1f} s")
    amisim.wait(timeout=180)  # --calls 1100 ends the simulation

    m = drained(http)
    # kafka_sent_total counts every topic: waiting for that many ami records
    # would only ever end at the timeout. The spool is drained, so the topic
    # is complete once it stops growing.
    ami = messages(bootstrap, site.topic("ami"), timeout=120, idle=3)
    seqs = [e["seq"] for e in ami]
    assert len(seqs) == len(set(seqs)), "duplicates on the ami topic"
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap in the ami topic's sequence"
    events = sum(1 for e in ami if e["data"]["kind"] == "event")
    assert events == m["callbus_agent_ami_events_total"]
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
    assert len(ended) == 1100


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


def test_agent_killed_stopped_killed_while_broker_away(procs, tmp_path, site, private_broker):
    """While the broker is away the agent is killed -9 with thousands of
    messages in librdkafka's memory (none spooled: write-ahead keeps them),
    started, stopped with SIGTERM, started, killed -9 again while it holds
    messages read back from the spool, and started once more. When the broker
    is back, every run's sequence arrives complete, in per-key order."""
    bootstrap = private_broker.bootstrap
    amisim, port = start_amisim(procs, "--simulate", "--operators", "150", "--queues", "support",
                                "--rate", "10", "--talk", "1-3", "--calls", "100000", "--seed", "17",
                                "--abandon", "0", "--linger", "0")
    conf, http = write_agent_conf(tmp_path, site, bootstrap, port)
    runs = [start_agent(procs, conf, name="agent-killed")]
    time.sleep(3)
    private_broker.stop()
    time.sleep(8)
    m = metrics(http)
    assert m["callbus_agent_kafka_queued"] > 1000 and m["callbus_agent_spooled_total"] == 0, m
    events_at_first_kill = m["callbus_agent_ami_events_total"]
    runs[-1].stop(sig=signal.SIGKILL)

    runs.append(start_agent(procs, conf, name="agent-stopped"))
    runs[-1].wait_for(r"spool: \d+ bytes from an earlier run will be sent first", timeout=5, which="err")
    time.sleep(5)
    assert runs[-1].stop(timeout=30) == 0
    runs[-1].wait_for(r"undelivered at shutdown: keeping them in the spool", timeout=1, which="err",
                      since_start=False)

    runs.append(start_agent(procs, conf, name="agent-killed-again"))
    time.sleep(4)
    # librdkafka now holds what the earlier runs left (read back from the
    # spool) and this run's own messages (written ahead): a kill must lose
    # none of them.
    assert metrics(http)["callbus_agent_kafka_queued"] > 1000
    runs[-1].stop(sig=signal.SIGKILL)

    runs.append(start_agent(procs, conf, name="agent-last"))
    time.sleep(2)
    private_broker.start()
    time.sleep(4)
    amisim.stop()
    drained(http)
    ami = messages(bootstrap, site.topic("ami"), timeout=120, idle=3)
    by_epoch = ami_by_epoch(ami)
    epochs = sorted(by_epoch)
    assert len(epochs) == 4, f"epochs {epochs}"
    for epoch, seqs in sorted(by_epoch.items()):
        assert set(seqs) == set(range(1, max(seqs) + 1)), f"epoch {epoch}: a gap in the sequence"
    assert len({e["seq"] for e in ami if e["epoch"] == epochs[0] and e["data"]["kind"] == "event"}) \
        >= events_at_first_kill
    violations, duplicates = key_order_violations(ami)
    assert violations == 0
    reasons = collections.defaultdict(set)
    for e in messages(bootstrap, site.topic("status")):
        if e["type"] == "callbus.agent.status":
            reasons[e["epoch"]].add(e["data"]["reason"])
    assert ["stopped" in reasons[e] for e in epochs[:3]] == [False, True, False]
    print(f"in librdkafka's memory at the first kill: {m['callbus_agent_kafka_queued']:.0f}; ami messages "
          f"{len(ami)} ({duplicates} sent twice, same ids), per run {[len(set(by_epoch[e])) for e in epochs]}, "
          f"order violations {violations}")
    assert runs[-1].alive


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


def test_graceful_shutdown_announced(procs, tmp_path, site, kafka_bootstrap):
    """Asterisk's `Shutdown` event before a restart is recognised as a restart."""
    amisim, port = start_amisim(procs, "--simulate", "--operators", "3", "--rate", "1",
                                "--talk", "60-90", "--shutdown-after", "4", "--seed", "5")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    amisim.wait(timeout=20)
    restart_amisim(procs, port, "--simulate", "--operators", "3", "--rate", "0.01", name="amisim-2")
    agent.wait_for(r"resync done", timeout=30, which="err")
    ended = wait_until(lambda: ended_calls(kafka_bootstrap, site) or None, timeout=30, what="ended")
    assert {d["reason"] for d in ended.values()} == {"asterisk_restarted"}


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
    out += msg(("Response", "Success"), ("ActionID", "callbus-1"), ("Message", "Authentication accepted"))
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


def test_malformed_ami_never_crashes(procs, tmp_path, site, kafka_bootstrap):
    junk = tmp_path / "junk.ami"
    junk.write_bytes(malformed_stream())
    _, port = start_amisim(procs, "--raw-replay", junk)
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = start_agent(procs, conf)
    ami = wait_until(lambda: [e for e in messages(kafka_bootstrap, site.topic("ami"), idle=1.0)
                              if e["data"].get("headers") and
                              ["Event", "Marker"] in e["data"]["headers"]] and
                     messages(kafka_bootstrap, site.topic("ami"), idle=1.0),
                     timeout=30, what="the marker event after the junk")
    assert agent.alive
    refused = [e["data"] for e in ami if e["data"]["kind"] == "refused"]
    assert {r["error"] for r in refused} == {"line_too_long", "too_many_headers"}
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
    # amisim --raw-replay ignores Ping, so the agent may reconnect and get the
    # same junk again: two refusals and two gaps per pass.
    parse_gaps = sum(1 for g in gaps if g["reason"] == "parse_error")
    refused_total = metrics(http)["callbus_agent_ami_refused_total"]
    assert parse_gaps >= 2 and parse_gaps % 2 == 0
    assert refused_total >= 2 and refused_total % 2 == 0
