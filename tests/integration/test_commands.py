"""Commands from Kafka to AMI through callbus-agent and amisim: each command
type, each failure mode, expiry, injection, duplicates, and kill -9 of the
agent under a stream of commands (at most once, always answered)."""

import collections
import json
import os
import random
import re
import shutil
import signal
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from callbus_harness import (TcpProxy, by_command, command_of, messages, metrics, restart_amisim,
                             start_agent, start_amisim, write_agent_conf)
from conftest import build_path, consume_all, produce, producer_ids, wait_until
from schema_check import validate_message

COMMANDS_CONF = 'commands: { operator_phone = "Local/%s@phones"; };'
FINAL = {"succeeded", "failed", "rejected", "expired", "duplicate"}


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def command(ctype, data, expires_in=30.0, cid=None, sender="test:ops"):
    now = time.time()
    cid = cid or f"central:test:{int(now)}:{uuid.uuid4().int % 10**9}"
    return {"specversion": "1.0", "id": cid, "source": "callbus://central/crm/test",
            "type": f"callbus.command.{ctype}", "time": rfc3339(now),
            "expires": rfc3339(now + expires_in), "sender": sender,
            "subject": data.get("call_id") or data.get("operator_id") or cid,
            "datacontenttype": "application/json", "data": data}


class Bench:
    """One site: amisim, the agent, and helpers to send commands and read results."""

    def __init__(self, procs, tmp_path, site, bootstrap, amisim_args=(), commands_extra="",
                 ping_interval=2, via_proxy=False, wrap=(), top_extra=""):
        """commands_extra: more settings of the commands group; top_extra:
        more top-level settings; via_proxy:
        the agent reaches amisim through a TcpProxy (self.proxy) the test can
        cut; wrap: a command line the agent runs under (strace)."""
        self.site, self.bootstrap, self.procs, self.tmp_path = site, bootstrap, procs, tmp_path
        self.stats_file = tmp_path / "amisim-stats.json"
        self.amisim, self.port = start_amisim(
            procs, "--operators", "5", "--queues", "support,sales:dynamic", "--rate", "0",
            "--stats-file", self.stats_file, "--stats-interval", "0.3", *amisim_args)
        self.proxy = TcpProxy(self.port) if via_proxy else None
        if self.proxy:
            procs.cleanups.append(self.proxy.close)
        commands = COMMANDS_CONF.replace("};", f"{commands_extra} }};") + top_extra
        self.conf, self.http = write_agent_conf(tmp_path, site, bootstrap,
                                                self.proxy.port if self.proxy else self.port,
                                                top_extra=commands, ping_interval=ping_interval)
        if wrap:
            self.agent = procs.start([*wrap, build_path("callbus-agent"), "-c", self.conf], name="agent")
            self.agent.wait_for(r"ami: logged in", timeout=30, which="err")
        else:
            self.agent = start_agent(procs, self.conf)

    def send(self, ctype, data, **kw):
        cmd = command(ctype, data, **kw)
        produce(self.bootstrap, self.site.topic("commands"), [(cmd["subject"], json.dumps(cmd))])
        return cmd["id"]

    def send_raw(self, key, value):
        produce(self.bootstrap, self.site.topic("commands"), [(key, value)])

    def results(self, idle=0.5):
        return messages(self.bootstrap, self.site.topic("results"), timeout=10, idle=idle)

    def statuses(self, cid, want_final=True, timeout=30):
        def got():
            st = [r["data"]["status"] for r in self.results() if r["data"]["command_id"] == cid]
            return st if (not want_final or FINAL & set(st)) else None
        return wait_until(got, timeout=timeout, interval=0.3, what=f"results of {cid}")

    def result(self, cid, status):
        return next(r["data"] for r in self.results()
                    if r["data"]["command_id"] == cid and r["data"]["status"] == status)

    def amisim_stats(self):
        return json.loads(self.stats_file.read_text())

    def executed(self, cid):
        return by_command(self.amisim_stats()).get(cid, {}).get("count", 0)

    def ami_actions(self, name):
        return self.amisim_stats().get("actions", {}).get(name, 0)


@pytest.fixture
def bench(procs, tmp_path, site, kafka_bootstrap):
    return Bench(procs, tmp_path, site, kafka_bootstrap)


def calls_of(bench, call_id):
    return [e for e in messages(bench.bootstrap, bench.site.topic("calls"), timeout=10, idle=0.5)
            if e["subject"] == call_id]


@pytest.mark.sanitizer
def test_originate_hangup_and_call_events(procs, tmp_path, site, kafka_bootstrap):
    bench = Bench(procs, tmp_path, site, kafka_bootstrap, commands_extra='originate_variables = [ "CC_TICKET" ];')
    cid = bench.send("originate", {"operator_id": "op101", "number": "5556001",
                                   "variables": {"CC_TICKET": "T-1"}})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    call_id = bench.result(cid, "succeeded")["call_id"]
    assert bench.executed(cid) == 1
    orig = next(o for o in bench.amisim_stats()["originates"] if command_of(o["action_id"]) == cid)
    assert orig["channel"] == "Local/op101@phones" and orig["exten"] == "5556001"
    assert orig["variables"]["CC_TICKET"] == "T-1"
    assert orig["variables"]["CALLBUS_COMMAND_ID"] == cid
    # The call appears under the id the result gave, answered by the customer.
    wait_until(lambda: any(e["type"] == "callbus.call.answered" for e in calls_of(bench, call_id)),
               timeout=20, what="the click-to-call to be answered")
    hid = bench.send("hangup", {"call_id": call_id})
    assert bench.statuses(hid) == ["accepted", "succeeded"]
    ended = wait_until(lambda: [e for e in calls_of(bench, call_id) if e["type"] == "callbus.call.ended"],
                       timeout=20, what="the call to end")
    assert ended[0]["data"]["direction"] == "outbound"
    for r in bench.results():
        assert not validate_message({k: v for k, v in r.items() if not k.startswith("_")})


def test_originate_operator_never_answers(procs, tmp_path, site, kafka_bootstrap):
    """The operator's phone rings for the originate's timeout and nobody
    picks up (amisim --no-answer, as main/dial.c and manager.c do it:
    OriginateResponse Failure Reason 3, the phone's legs hung up with cause
    19): the command fails with that reason, the call ends no_answer."""
    b = Bench(procs, tmp_path, site, kafka_bootstrap, ("--no-answer", "op103", "--speed", "20"))
    cid = b.send("originate", {"operator_id": "op103", "number": "5552001"})
    assert b.statuses(cid) == ["accepted", "failed"]
    assert b.result(cid, "failed")["reason"].startswith("originate failed: reason 3")
    ended = wait_until(lambda: [e["data"] for e in messages(b.bootstrap, b.site.topic("calls"), timeout=10, idle=0.5)
                                if e["type"] == "callbus.call.ended"], timeout=20, what="the call to end")
    assert len(ended) == 1
    assert (ended[0]["direction"], ended[0]["disposition"], ended[0]["hangup_cause"]) == ("outbound", "no_answer", 19)
    assert ended[0]["talk_s"] == 0 and "answered_by" not in ended[0]


@pytest.mark.sanitizer
def test_queue_commands(bench):
    for ctype, data in [("queue_login", {"operator_id": "op102", "queue": "sales", "penalty": 2}),
                        ("pause", {"operator_id": "op102", "queue": "sales", "reason": "Lunch"}),
                        ("unpause", {"operator_id": "op102", "queue": "sales"}),
                        ("queue_logout", {"operator_id": "op102", "queue": "sales"})]:
        cid = bench.send(ctype, data)
        assert bench.statuses(cid) == ["accepted", "succeeded"], ctype
    # At debug level, the agent's stages of the last one (bench.py BENCH_STAGES reads them), in order.
    m = bench.agent.wait_for(re.escape(cid) + r": kafka timestamp ([0-9.]+), woken ([0-9.]+), "
                             r"decision durable ([0-9.]+), action sent ([0-9.]+)", which="err")
    woken, durable, sent = (float(x) for x in m.groups()[1:])
    assert woken <= durable <= sent and float(m.group(1)) > 0
    # Results pass through the spool to be fsynced: not an overflow to announce.
    assert "spool: drained" not in bench.agent.err_path.read_text()
    ops = messages(bench.bootstrap, bench.site.topic("operators"), timeout=10)
    types = [e["type"] for e in ops if e["subject"] == "op102"]
    for t in ("logged_in", "paused", "logged_out"):
        assert f"callbus.operator.{t}" in types
    paused = next(e["data"] for e in ops if e["type"] == "callbus.operator.paused")
    assert paused["reason"] == "Lunch"
    # Failure modes carry Asterisk's reason.
    cid = bench.send("queue_logout", {"operator_id": "op102", "queue": "sales"})
    assert bench.statuses(cid) == ["accepted", "failed"]
    assert "Not there" in bench.result(cid, "failed")["reason"]
    cid = bench.send("queue_login", {"operator_id": "op102", "queue": "nosuchqueue"})
    assert bench.statuses(cid) == ["accepted", "failed"]


def test_results_and_live_state_have_a_producer_of_their_own(bench):
    """What operators wait on (command results, the state topics) goes over
    a connection of its own, not behind the AMI stream's requests (the
    broker serves one connection's requests one at a time): another
    idempotent producer, so other producer ids in the broker."""
    cid = bench.send("pause", {"operator_id": "op101", "queue": "support"})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    wait_until(lambda: any(r.key == b"op101" and r.value and any(q["paused"] for q in json.loads(r.value)["data"]["queues"])
                           for r in consume_all(bench.bootstrap, bench.site.topic("state.operators"), timeout=10)),
               timeout=20, what="op101's paused state")
    live = producer_ids(bench.bootstrap, bench.site.topic("results"))
    assert live == producer_ids(bench.bootstrap, bench.site.topic("state.operators"))
    bulk = producer_ids(bench.bootstrap, bench.site.topic("ami"))
    assert len(live) == 1 and bulk and not live & bulk, (live, bulk)


def inbound_call(bench, patience=60):
    """A customer call into queue support, made the way the lab does it."""
    s = socket.create_connection(("127.0.0.1", bench.port))
    s.sendall(b"Action: Login\r\nUsername: callbus\r\nSecret: callbus\r\nEvents: off\r\n\r\n"
              b"Action: Originate\r\nChannel: Local/800@from-trunk\r\nApplication: Wait\r\n"
              b"Data: %d\r\nCallerID: \"Carol\" <5551009>\r\nAsync: true\r\n\r\n" % patience)
    time.sleep(0.3)
    s.close()


def test_answer_transfer_and_supervisor(bench):
    # Everybody paused: the caller waits in the queue until an operator accepts.
    for op in ("op101", "op102", "op103", "op104", "op105"):
        assert "succeeded" in bench.statuses(bench.send("pause", {"operator_id": op, "queue": "support"}))
    inbound_call(bench)
    queued = wait_until(lambda: [e for e in messages(bench.bootstrap, bench.site.topic("calls"),
                                                     timeout=10, idle=0.5)
                                 if e["type"] == "callbus.call.queued"], timeout=20, what="queued call")
    call_id = queued[0]["subject"]
    cid = bench.send("answer", {"operator_id": "op101", "call_id": call_id})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    wait_until(lambda: any(e["type"] == "callbus.call.answered" and e["data"].get("operator_id") == "op101"
                           for e in calls_of(bench, call_id)), timeout=20, what="op101 to take the call")
    # Answering a call that is no longer waiting is refused with a reason.
    again = bench.send("answer", {"operator_id": "op102", "call_id": call_id})
    assert bench.statuses(again) == ["rejected"]
    assert "not waiting" in bench.result(again, "rejected")["reason"]
    # Supervisor listens in, then the call is transferred to op103.
    spy = bench.send("listen", {"supervisor_id": "op105", "operator_id": "op101"})
    assert bench.statuses(spy) == ["accepted", "succeeded"]
    tid = bench.send("transfer", {"call_id": call_id, "operator_id": "op101", "to": "103"})
    assert bench.statuses(tid) == ["accepted", "succeeded"]
    wait_until(lambda: any(e["type"] == "callbus.call.transferred" for e in calls_of(bench, call_id)),
               timeout=20, what="the transfer")


@pytest.mark.sanitizer
def test_failures_and_refusals_never_reach_ami(bench):
    before = bench.ami_actions("Originate")
    cases = [
        ("expired", command("originate", {"operator_id": "op101", "number": "5552001"}, expires_in=-1)),
        ("rejected", command("originate", {"operator_id": "op101", "number": "555\r\nAction: Hangup"})),
        ("rejected", command("originate", {"operator_id": "op101", "number": "5552001",
                                           "context": "from-internal"})),
        ("rejected", command("originate", {"operator_id": "op101", "number": "5552001",
                                           "variables": {"X": "a\nAction: Originate"}})),
        ("rejected", command("originate", {"operator_id": "op101", "number": "12"})),
        ("rejected", command("originate", {"operator_id": "op101", "number": "5552001"}, expires_in=86400)),
        ("rejected", command("hangup", {"call_id": "no-such-call"})),
        ("rejected", command("reboot", {"operator_id": "op101"})),
        ("rejected", command("transfer", {"call_id": "x", "operator_id": "op101", "to": "9;Dial"})),
    ]
    for want, cmd in cases:
        produce(bench.bootstrap, bench.site.topic("commands"), [(cmd["subject"], json.dumps(cmd))])
    bench.send_raw("junk", "{not json")
    for want, cmd in cases:
        st = bench.statuses(cmd["id"])
        assert st == [want], (cmd["data"], st, bench.result(cmd["id"], st[-1]))
        assert bench.result(cmd["id"], want)["sender"] == "test:ops"
        assert bench.executed(cmd["id"]) == 0
    junk = wait_until(lambda: [r["data"] for r in bench.results()
                               if r["data"]["command_id"].startswith("invalid@")], what="junk result")
    assert junk[0]["status"] == "rejected" and "JSON" in junk[0]["reason"]
    time.sleep(1)
    assert bench.ami_actions("Originate") == before
    # An originate to an operator Asterisk does not know fails with its reason.
    cid = bench.send("originate", {"operator_id": "op999", "number": "5552001"})
    assert bench.statuses(cid) == ["accepted", "failed"]
    assert "reason 0" in bench.result(cid, "failed")["reason"]


def test_originate_variables_only_listed_and_plain(procs, tmp_path, site, kafka_bootstrap):
    """Asterisk splits an Originate Variable on commas and takes a name
    ending in ')' for a dialplan function: neither an unlisted name nor a
    value that would add an assignment reaches AMI."""
    b = Bench(procs, tmp_path, site, kafka_bootstrap, commands_extra='originate_variables = [ "CC_TICKET" ];')
    base = {"operator_id": "op101", "number": "5552001"}
    smuggled = b.send("originate", {**base, "variables": {"CC_TICKET": "1,CALLERID(num)=112"}})
    cdr = b.send("originate", {**base, "variables": {"CC_TICKET": "2,CDR(userfield)=owned"}})
    unlisted = b.send("originate", {**base, "variables": {"CC_TICKET": "T-1", "X": "1"}})
    fine = b.send("originate", {**base, "variables": {"CC_TICKET": "T-2"}})
    for cid in (smuggled, cdr):
        assert b.statuses(cid) == ["rejected"]
        assert "data.variables.CC_TICKET contains ','" in b.result(cid, "rejected")["reason"]
    assert b.statuses(unlisted) == ["rejected"]
    assert b.result(unlisted, "rejected")["reason"] == \
        "variable X may not be set by a command (not in commands.originate_variables)"
    assert b.statuses(fine) == ["accepted", "succeeded"]
    assert [o["variables"].get("CC_TICKET") for o in b.amisim_stats()["originates"]] == ["T-2"]
    assert sum(b.executed(c) for c in (smuggled, cdr, unlisted)) == 0


def test_listen_attaches_only_to_the_named_operator(procs, tmp_path, site, kafka_bootstrap):
    """ChanSpy's target is a channel-name prefix: an operator whose
    interface begins another's (Local/op10 and Local/op101@phones) must not
    be listened to on the other's call."""
    b = Bench(procs, tmp_path, site, kafka_bootstrap,
              top_extra='operators = ( { id = "op10"; interface = "Local/op10"; } );')
    cid = b.send("originate", {"operator_id": "op101", "number": "5556001"})
    assert b.statuses(cid) == ["accepted", "succeeded"]
    call_id = b.result(cid, "succeeded")["call_id"]
    wait_until(lambda: any(e["type"] == "callbus.call.answered" for e in calls_of(b, call_id)),
               timeout=20, what="op101's call to be answered")
    wrong = b.send("listen", {"supervisor_id": "op105", "operator_id": "op10"})
    assert b.statuses(wrong) == ["accepted", "succeeded"]      # the supervisor's phone runs ChanSpy
    right = b.send("listen", {"supervisor_id": "op104", "operator_id": "op101"})
    assert b.statuses(right) == ["accepted", "succeeded"]

    def spies():
        out = []
        for m in messages(b.bootstrap, b.site.topic("ami"), timeout=10, idle=0.5):
            h = dict(m["data"]["headers"])
            if h.get("Event") == "ChanSpyStart":
                out.append((h["SpyerChannel"].split("-")[0], h["SpyeeChannel"].split("-")[0]))
        return out
    wait_until(lambda: ("Local/op104@phones", "Local/op101@phones") in spies(), timeout=20,
               what="op104 to listen to op101")
    time.sleep(2.5)     # ChanSpy scans for its target every second
    assert [s for s in spies() if s[0] == "Local/op105@phones"] == []


def test_hangup_and_transfer_only_on_the_senders_call_as_it_is_now(bench):
    """The gateway checks ownership on its view when it makes the command;
    the agent checks it again when it runs: a hangup or transfer in the
    name of an operator who does not have the call (any more) is refused."""
    cid = bench.send("originate", {"operator_id": "op101", "number": "5556001"})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    call_id = bench.result(cid, "succeeded")["call_id"]
    wait_until(lambda: any(e["type"] == "callbus.call.answered" for e in calls_of(bench, call_id)),
               timeout=20, what="op101's call to be answered")
    for ctype, data in (("hangup", {}), ("transfer", {"to": "103"})):
        other = bench.send(ctype, {"call_id": call_id, "operator_id": "op102", **data})
        assert bench.statuses(other) == ["rejected"]
        assert bench.result(other, "rejected")["reason"] == \
            f"call {call_id} is not operator op102's call (any more): not executed"
        assert bench.executed(other) == 0
    assert not any(e["type"] == "callbus.call.ended" for e in calls_of(bench, call_id))
    own = bench.send("hangup", {"call_id": call_id, "operator_id": "op101"})
    assert bench.statuses(own) == ["accepted", "succeeded"]


def test_originate_variables_none_by_default(bench):
    cid = bench.send("originate", {"operator_id": "op101", "number": "5552001", "variables": {"CC_TICKET": "T-1"}})
    assert bench.statuses(cid) == ["rejected"]
    assert "not in commands.originate_variables" in bench.result(cid, "rejected")["reason"]
    assert bench.executed(cid) == 0


@pytest.mark.sanitizer
def test_same_id_twice_executes_once(bench):
    cid = "central:crm1:1795669000:4242"
    first = command("originate", {"operator_id": "op101", "number": "5552001"}, cid=cid)
    produce(bench.bootstrap, bench.site.topic("commands"), [(first["subject"], json.dumps(first))] * 2)
    st = bench.statuses(cid)
    wait_until(lambda: "duplicate" in bench.statuses(cid) and "succeeded" in bench.statuses(cid),
               what="both outcomes")
    st = bench.statuses(cid)
    assert st.count("accepted") == 1 and st.count("duplicate") == 1
    assert bench.executed(cid) == 1


def committed_offsets(bootstrap, group, topic):
    """{partition: committed offset} of a consumer group (-1001: none)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {tp.partition: tp.offset
                for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)}
    finally:
        c.close()


@pytest.mark.sanitizer
def test_commands_wait_for_ami_and_expire_meanwhile(procs, tmp_path, site, kafka_bootstrap):
    """While AMI is down, commands wait in Kafka, not in the agent's memory:
    the agent is stopped while it holds them, and its consumer group's
    committed offsets stand before them. The agent started again, with AMI
    back, takes them from Kafka: the one that expired meanwhile gets
    `expired` and never runs, the other runs once."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap)
    bench.amisim.stop(sig=signal.SIGKILL)
    short_expires = time.monotonic() + 3
    short = bench.send("pause", {"operator_id": "op101"}, expires_in=3)
    long = bench.send("pause", {"operator_id": "op102"}, expires_in=60)
    bench.agent.wait_for(r"commands: AMI is down: commands wait in Kafka", timeout=15, which="err")
    assert bench.agent.stop(timeout=30) == 0  # a clean close commits the offsets it stored
    assert [r for r in bench.results() if r["data"]["command_id"] in (short, long)] == []
    where = {json.loads(r.value)["id"]: (r.partition, r.offset)
             for r in consume_all(kafka_bootstrap, site.topic("commands"), expected_count=2)}
    committed = committed_offsets(kafka_bootstrap, f"callbus-agent.{site.id}.agent1", site.topic("commands"))
    for cid in (short, long):
        part, offset = where[cid]
        assert committed[part] <= offset, f"{cid} at {part}:{offset} was taken from Kafka ({committed})"

    bench.amisim = restart_amisim(procs, bench.port, "--operators", "5", "--queues", "support",
                                  "--rate", "0", "--stats-file", bench.stats_file,
                                  "--stats-interval", "0.3", name="amisim-back")
    time.sleep(max(0.0, short_expires + 0.5 - time.monotonic()))
    bench.agent = start_agent(procs, bench.conf, name="agent-again")
    assert bench.statuses(short) == ["expired"]
    assert bench.statuses(long) == ["accepted", "succeeded"]
    assert bench.executed(short) == 0 and bench.executed(long) == 1


@pytest.mark.sanitizer
def test_kill9_never_executes_twice(procs, tmp_path, site, kafka_bootstrap):
    """kill -9 of the agent at random points under a stream of commands, 12
    times, several of them while a command is in flight: no command is
    executed twice (amisim's counts), every command's first final result is
    a real outcome (never only `duplicate`), and a command the agent was
    executing when it died is reported failed, not retried, by the next
    start (from the journal)."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap)
    rng = random.Random(42)
    sent = []
    kills = inflight_kills = 0
    while kills < 12:
        batch = []
        for _ in range(rng.randint(3, 8)):
            op = f"op10{rng.randint(1, 5)}"
            if rng.random() < 0.3:
                batch.append(command("originate", {"operator_id": op, "number": f"555200{rng.randint(0, 9)}"},
                                     expires_in=60))
            else:
                batch.append(command(rng.choice(["pause", "unpause"]), {"operator_id": op}, expires_in=60))
        produce(kafka_bootstrap, site.topic("commands"), [(c["subject"], json.dumps(c)) for c in batch])
        sent += [c["id"] for c in batch]
        time.sleep(rng.uniform(0.05, 1.2))
        # An originate waits for its OriginateResponse: every other kill
        # waits (a little) for one to be in flight.
        def inflight():
            return metrics(bench.http).get("callbus_agent_commands_inflight", 0) > 0
        deadline = time.monotonic() + (3 if kills % 2 == 0 else 0)
        while not inflight() and time.monotonic() < deadline:
            time.sleep(0.02)
        inflight_kills += inflight()
        bench.agent.stop(sig=signal.SIGKILL)
        kills += 1
        bench.agent = start_agent(procs, bench.conf, name="agent")

    # Let the last agent finish everything.
    def all_final():
        by = {}
        for r in bench.results(idle=1.0):
            by.setdefault(r["data"]["command_id"], []).append(r["data"])
        missing = [c for c in sent if not FINAL & {d["status"] for d in by.get(c, [])}]
        return by if not missing else None
    by = wait_until(all_final, timeout=120, interval=1, what="a final result for every command")
    counts = by_command(bench.amisim_stats())
    twice = {k: v for k, v in counts.items() if v["count"] > 1}
    assert not twice, f"executed more than once: {twice}"
    outcomes, stopped = collections.Counter(), []
    for c in sent:
        first = next(d for d in by[c] if d["status"] in FINAL)
        outcomes[first["status"]] += 1
        ran = counts.get(c, {}).get("count", 0)
        # A result lost in a crash would leave only the `duplicate` answer
        # to the redelivered command.
        assert first["status"] in ("succeeded", "failed", "expired", "rejected"), (c, by[c])
        if first["status"] == "succeeded":
            assert ran == 1, (c, by[c])
        if "agent stopped" in first.get("reason", ""):
            stopped.append(c)
    executed = sum(1 for c in sent if counts.get(c))
    print(f"kill -9 x{kills} ({inflight_kills} with a command in flight): {len(sent)} commands, "
          f"{executed} executed once, none twice; first final results: {dict(outcomes)}; "
          f"reported failed after the crash: {len(stopped)}")
    assert executed >= len(sent) // 2
    assert inflight_kills >= 3, "too few kills hit a command in flight to prove anything"
    assert len(stopped) >= inflight_kills // 2, \
        "commands in flight at a kill were not reported failed by the next start"


NO_PINGS = 3600  # agent.ami.ping_interval: a paused Asterisk must not look dead


@pytest.mark.sanitizer
def test_no_answer_in_time_is_failed_and_never_retried(procs, tmp_path, site, kafka_bootstrap):
    """Asterisk takes the action but does not answer within
    commands.result_timeout (amisim stopped with SIGSTOP): the command is
    reported failed, outcome unknown. When Asterisk wakes up and runs it,
    the agent neither sends it again nor reports another outcome."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap, commands_extra="result_timeout = 1;",
                  ping_interval=NO_PINGS)
    bench.amisim.send_signal(signal.SIGSTOP)
    try:
        cid = bench.send("pause", {"operator_id": "op101"})
        assert bench.statuses(cid) == ["accepted", "failed"]
        assert "no answer from Asterisk in time: outcome unknown, not retried" in \
            bench.result(cid, "failed")["reason"]
    finally:
        bench.amisim.send_signal(signal.SIGCONT)
    wait_until(lambda: bench.executed(cid) == 1, timeout=10, what="amisim to run the late action")
    time.sleep(2)  # the late answer is in, and more than result_timeout passed again
    assert bench.statuses(cid) == ["accepted", "failed"]
    assert bench.executed(cid) == 1


@pytest.mark.sanitizer
def test_link_lost_mid_action_is_failed_and_never_retried(procs, tmp_path, site, kafka_bootstrap):
    """The AMI link drops after the action left and before Asterisk answered:
    the command is reported failed, outcome unknown, at once (not after
    result_timeout). After the reconnect nothing is sent again: Asterisk ran
    the action once, from the bytes it had received."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap, via_proxy=True, ping_interval=NO_PINGS)
    bench.amisim.send_signal(signal.SIGSTOP)
    try:
        cid = bench.send("pause", {"operator_id": "op101"})
        bench.agent.wait_for(rf"command {cid} \S+: accepted", timeout=10, which="err")
        time.sleep(0.3)  # the action crosses the proxy into amisim's socket
        bench.proxy.cut()
        assert bench.statuses(cid, timeout=10) == ["accepted", "failed"]
        assert "AMI link lost before Asterisk answered" in bench.result(cid, "failed")["reason"]
    finally:
        bench.amisim.send_signal(signal.SIGCONT)
    bench.proxy.restore()
    bench.agent.wait_for(r"resync done", timeout=30, which="err")
    wait_until(lambda: bench.executed(cid) == 1, timeout=10, what="amisim to run the action it had")
    time.sleep(1)
    assert bench.statuses(cid) == ["accepted", "failed"]
    assert bench.executed(cid) == 1


def test_a_result_is_on_disk_before_the_journal_closes_its_command(procs, tmp_path, site, kafka_bootstrap):
    """fsync durability of results (a power loss cannot be produced, the
    order of the agent's system calls can be watched): the final result is
    written to a spool segment and fdatasync'ed before the journal records
    the command as done, so a crash in between leaves a command the next
    start reports, never one whose result is lost."""
    strace = shutil.which("strace")
    if not strace:
        pytest.skip("strace is missing (tools/setup.sh deps)")
    trace = tmp_path / "agent.strace"
    bench = Bench(procs, tmp_path, site, kafka_bootstrap,
                  wrap=[strace, "-f", "-qq", "-y", "-s", "1000000", "-e", "trace=write,fdatasync,fsync",
                        "-o", trace])
    cid = bench.send("pause", {"operator_id": "op101"})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    # SIGTERM to the agent itself (strace would detach and leave it running);
    # strace exits with it, its log complete.
    [agent_pid] = Path(f"/proc/{bench.agent.pid}/task/{bench.agent.pid}/children").read_text().split()
    os.kill(int(agent_pid), signal.SIGTERM)
    assert bench.agent.wait(timeout=30) == 0
    lines = trace.read_text(errors="replace").splitlines()
    calls = [(i, m.group(1), m.group(2), line) for i, line in enumerate(lines)
             for m in [re.search(r"(write|fdatasync|fsync)\(\d+<([^>]*)>", line)] if m]
    done = [i for i, call, path, line in calls
            if call == "write" and path.endswith("commands.journal") and f"D " in line and cid in line]
    assert len(done) == 1, f"the journal's done line for {cid}: {done}"
    result = [(i, path) for i, call, path, line in calls
              if call == "write" and path.endswith(".spool") and cid in line and "succeeded" in line]
    assert result, "the final result was never written to the spool"
    w, seg = result[0]
    synced = [i for i, call, path, _ in calls if call in ("fdatasync", "fsync") and path == seg and w < i]
    assert synced and synced[0] < done[0], \
        f"result written (line {w}) but not synced before the journal's done line ({done[0]}): {synced[:3]}"
