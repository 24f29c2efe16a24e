"""Commands from Kafka to AMI through callbus-agent and amisim: each command
type, each failure mode, expiry, injection, duplicates, and kill -9 of the
agent under a stream of commands (at most once, always answered)."""

import json
import random
import signal
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from callbus_harness import messages, restart_amisim, start_agent, start_amisim, write_agent_conf
from conftest import produce, wait_until
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

    def __init__(self, procs, tmp_path, site, bootstrap, amisim_args=()):
        self.site, self.bootstrap, self.procs, self.tmp_path = site, bootstrap, procs, tmp_path
        self.stats_file = tmp_path / "amisim-stats.json"
        self.amisim, self.port = start_amisim(
            procs, "--operators", "5", "--queues", "support,sales:dynamic", "--rate", "0",
            "--stats-file", self.stats_file, "--stats-interval", "0.3", *amisim_args)
        self.conf, self.http = write_agent_conf(tmp_path, site, bootstrap, self.port,
                                                top_extra=COMMANDS_CONF)
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
        return self.amisim_stats().get("by_action_id", {}).get(f"cmd/{cid}", {}).get("count", 0)

    def ami_actions(self, name):
        return self.amisim_stats().get("actions", {}).get(name, 0)


@pytest.fixture
def bench(procs, tmp_path, site, kafka_bootstrap):
    return Bench(procs, tmp_path, site, kafka_bootstrap)


def calls_of(bench, call_id):
    return [e for e in messages(bench.bootstrap, bench.site.topic("calls"), timeout=10, idle=0.5)
            if e["subject"] == call_id]


def test_originate_hangup_and_call_events(bench):
    cid = bench.send("originate", {"operator_id": "op101", "number": "5556001",
                                   "variables": {"CC_TICKET": "T-1"}})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    call_id = bench.result(cid, "succeeded")["call_id"]
    assert bench.executed(cid) == 1
    orig = next(o for o in bench.amisim_stats()["originates"] if o["action_id"] == f"cmd/{cid}")
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


def test_queue_commands(bench):
    for ctype, data in [("queue_login", {"operator_id": "op102", "queue": "sales", "penalty": 2}),
                        ("pause", {"operator_id": "op102", "queue": "sales", "reason": "Lunch"}),
                        ("unpause", {"operator_id": "op102", "queue": "sales"}),
                        ("queue_logout", {"operator_id": "op102", "queue": "sales"})]:
        cid = bench.send(ctype, data)
        assert bench.statuses(cid) == ["accepted", "succeeded"], ctype
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


def test_commands_wait_for_ami_and_expire_meanwhile(procs, tmp_path, site, kafka_bootstrap):
    bench = Bench(procs, tmp_path, site, kafka_bootstrap)
    bench.amisim.stop(sig=signal.SIGKILL)
    short = bench.send("pause", {"operator_id": "op101"}, expires_in=3)
    long = bench.send("pause", {"operator_id": "op102"}, expires_in=60)
    time.sleep(5)
    assert [r for r in bench.results() if r["data"]["command_id"] in (short, long)] == []
    bench.amisim = restart_amisim(procs, bench.port, "--operators", "5", "--queues", "support",
                                  "--rate", "0", "--stats-file", bench.stats_file,
                                  "--stats-interval", "0.3", name="amisim-back")
    assert bench.statuses(short) == ["expired"]
    assert bench.statuses(long) == ["accepted", "succeeded"]
    assert bench.executed(short) == 0


def test_kill9_never_executes_twice(procs, tmp_path, site, kafka_bootstrap):
    """kill -9 of the agent at random points under a stream of commands, 20
    times: no command is executed twice, every command gets a final result."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap)
    rng = random.Random(42)
    sent = []
    kills = 0
    while kills < 20:
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
        bench.agent.stop(sig=signal.SIGKILL)
        kills += 1
        bench.agent = start_agent(procs, bench.conf, name="agent")
    # Let the last agent finish everything.
    def all_final():
        by = {}
        for r in bench.results(idle=1.0):
            by.setdefault(r["data"]["command_id"], []).append(r["data"]["status"])
        missing = [c for c in sent if not FINAL & set(by.get(c, []))]
        return by if not missing else None
    by = wait_until(all_final, timeout=120, interval=1, what="a final result for every command")
    counts = bench.amisim_stats()["by_action_id"]
    twice = {k: v for k, v in counts.items() if k.startswith("cmd/") and v["count"] > 1}
    assert not twice, f"executed more than once: {twice}"
    executed = sum(1 for c in sent if counts.get(f"cmd/{c}"))
    outcomes = {}
    for c in sent:
        final = [s for s in by[c] if s in FINAL]
        outcomes[final[0]] = outcomes.get(final[0], 0) + 1
    print(f"kill -9 x{kills}: {len(sent)} commands, {executed} executed once, none twice; "
          f"first final results: {outcomes}")
