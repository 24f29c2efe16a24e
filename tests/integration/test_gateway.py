"""callbus-gateway end to end: a real broker and the gateway, driven by
WebSocket clients (websocket-client). The site's state comes from the
agent's state topics: written here by StateWriter exactly as the agent
writes them (docs/messages.md, "State topics"), and, in the tests marked
"through the agent", by the real agent fed by amisim. Operators see only
their own record (never queue names or another operator's calls), a
supervisor sees the site (a snapshot in parts at any size), commands are
checked against the operator's own record and produced to Kafka, resume gets
exactly what was missed, a restart serves from the state topics without
reading the event topics, and every limit gives its documented error or
close code (docs/gateway-protocol.md)."""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from callbus_harness import (GwClient, StateWriter, hs256_token, messages, operator_token, start_agent,
                             start_amisim, start_gateway, write_agent_conf, write_gateway_conf)
from conftest import ROOT, build_path, create_topic, produce, wait_until

COMMANDS_CONF = 'commands: { operator_phone = "Local/%s@phones"; };'
QUEUE_KEYS = ("queue", "queues", "offered_to")


class GwSite:
    """A gateway over a site whose state records StateWriter writes: three
    operators ready in "support", the queue's figures."""

    def __init__(self, procs, tmp_path, site, bootstrap, gateway_extra=""):
        self.procs, self.site, self.bootstrap = procs, site, bootstrap
        self.state = StateWriter(bootstrap, site)
        for op in ("op101", "op102", "op103"):
            self.state.operator(op, flush=False)
        self.state.queue("support", flush=False)
        self.state.flush()
        self.gw_conf = write_gateway_conf(tmp_path, site, bootstrap, gateway_extra)
        self.gateway, self.url = start_gateway(procs, self.gw_conf)

    def client(self, op, role="operator", **kw):
        return GwClient(self.url, operator_token(self.site, op, role), **kw)

    def commands(self):
        return messages(self.bootstrap, self.site.topic("commands"), timeout=5, idle=0.5)

    def result(self, command_id, status, sender):
        produce(self.bootstrap, self.site.topic("results"), [(command_id, json.dumps({
            "specversion": "1.0", "id": f"{self.site.id}:agent1:results:1:{command_id}",
            "source": f"callbus://{self.site.id}/agent/agent1", "type": "callbus.result",
            "time": "2026-12-04T09:12:03.120000Z", "subject": command_id,
            "data": {"command_id": command_id, "command_type": "answer", "status": status,
                     "sender": sender}}))])


@pytest.fixture
def gws(procs, tmp_path, site, kafka_bootstrap):
    return GwSite(procs, tmp_path, site, kafka_bootstrap)


class GwBench:
    """amisim + agent + gateway for one site: the state records are the
    agent's own."""

    def __init__(self, procs, tmp_path, site, bootstrap, gateway_extra=""):
        self.procs, self.tmp_path, self.site, self.bootstrap = procs, tmp_path, site, bootstrap
        self.amisim, self.port = start_amisim(procs, "--operators", "3", "--queues", "support",
                                              "--rate", "0")
        conf, _ = write_agent_conf(tmp_path, site, bootstrap, self.port, top_extra=COMMANDS_CONF)
        self.agent = start_agent(procs, conf)
        # The agent has published the operators' state: the gateway starts
        # from Kafka with topics in place.
        wait_until(lambda: len(messages(bootstrap, site.topic("state.operators"), timeout=5, idle=0.3)) >= 3,
                   timeout=30, what="the operators' state records")
        self.gw_conf = write_gateway_conf(tmp_path, site, bootstrap, gateway_extra)
        self.gateway, self.url = start_gateway(procs, self.gw_conf)

    def client(self, op, role="operator", **kw):
        return GwClient(self.url, operator_token(self.site, op, role), **kw)

    def inbound_call(self, patience=60):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"Action: Login\r\nUsername: callbus\r\nSecret: callbus\r\nEvents: off\r\n\r\n"
                  b"Action: Originate\r\nChannel: Local/800@from-trunk\r\nApplication: Wait\r\n"
                  b"Data: %d\r\nCallerID: \"Carol\" <5551009>\r\nAsync: true\r\n\r\n" % patience)
        time.sleep(0.3)
        s.close()

    def commands(self):
        return messages(self.bootstrap, self.site.topic("commands"), timeout=5, idle=0.5)


AGENT_PUBLISHES_STATE = (ROOT / "agent" / "state.c").exists()
through_the_agent = pytest.mark.skipif(not AGENT_PUBLISHES_STATE,
                                       reason="the agent does not publish the state topics yet (agent/state.c)")


@pytest.fixture
def gwb(procs, tmp_path, site, kafka_bootstrap):
    return GwBench(procs, tmp_path, site, kafka_bootstrap)


def server_message_schemas():
    """The payload schema of each gateway -> client message type, from
    schemas/asyncapi.yaml."""
    import yaml
    from jsonschema import Draft202012Validator
    doc = yaml.safe_load((ROOT / "schemas" / "asyncapi.yaml").read_text())
    out = {}
    for name, m in doc["components"]["messages"].items():
        if name.startswith("gatewayServer"):
            schema = m["payload"]["schema"]
            out[schema["properties"]["type"]["const"]] = Draft202012Validator(schema)
    return out


@pytest.fixture(autouse=True)
def gateway_speaks_its_documented_protocol():
    """Whatever a test did, every message its clients received must be one
    the AsyncAPI document describes, and fit its schema."""
    GwClient.made.clear()
    yield
    validators = server_message_schemas()
    checked = 0
    for c in GwClient.made:
        for m in c.seen:
            assert m.get("type") in validators, f"undocumented gateway message: {m}"
            errors = [e.message for e in validators[m["type"]].iter_errors(m)]
            assert not errors, f"gateway message {m} does not fit schemas/asyncapi.yaml: {errors}"
            checked += 1
    GwClient.made.clear()
    print(f"asyncapi: {checked} gateway messages fit their schemas")


def names_a_queue(j):
    if isinstance(j, dict):
        return any(k in QUEUE_KEYS or names_a_queue(v) for k, v in j.items())
    if isinstance(j, list):
        return any(names_a_queue(v) for v in j)
    return False


def update_of(kind, id_, pred=lambda st: True):
    return lambda m: (m["type"] == "update" and m["kind"] == kind and m["id"] == id_
                      and pred(m["state"]))


def result_of(command_id):
    return lambda m: (m["type"] == "event" and m["event"]["type"] == "callbus.result"
                      and m["event"]["data"]["command_id"] == command_id)


def mentions(msgs, text):
    return [m for m in msgs if text in json.dumps(m)]


def command(client, cmd, data, cid="c1"):
    client.send({"type": "command", "id": cid, "command": cmd, "data": data})
    return client.recv_until(lambda m: m.get("id") == cid and m["type"] in ("command_ack", "error"),
                             what=f"answer to {cmd}", seen=False)


@pytest.mark.sanitizer
def test_operators_isolated_offer_answer_hangup(gws):
    st = gws.state
    op1, op2 = gws.client("op101"), gws.client("op102")
    sup = gws.client("sup1", "supervisor")
    assert op1.welcome["type"] == "welcome" and op1.welcome["operator_id"] == "op101"
    assert op1.first["type"] == "snapshot" and op1.first["role"] == "operator"
    assert op1.first["operator"]["operator_id"] == "op101" and op1.first["operator"]["state"] == "ready"
    assert not names_a_queue(op1.first) and "operators" not in op1.first
    assert sup.first["role"] == "supervisor" and (sup.first["part"], sup.first["parts"]) == (1, 1)
    assert {o["operator_id"] for o in sup.first["operators"]} == {"op101", "op102", "op103"}
    assert [q["queue"] for q in sup.first["queues"]] == ["support"]
    # A supervisor may pause another operator; an operator may not.
    assert command(sup, "pause", {"operator_id": "op102", "queue": "support"}, cid="p-op102")["type"] == "command_ack"
    err = command(op2, "pause", {"operator_id": "op101"}, cid="bad-pause")
    assert err["type"] == "error" and err["code"] == "forbidden"
    st.operator("op102", state="paused", paused=True)     # what the agent makes of the pause
    sup.recv_until(update_of("operator", "op102", lambda s: s and s["paused"]), what="op102 paused")
    # The agent says: a queue call rings at op101.
    call_id = "1795670259.0"
    st.call(call_id, state="ringing", offered_to=["op101"])
    st.operator("op101", state="ringing", offered=st.offer(call_id))
    offered = op1.recv_until(update_of("operator", "op101", lambda s: s and s["offered"]), what="the offer")
    assert offered["state"]["offered"]["call_id"] == call_id
    assert offered["state"]["offered"]["caller"]["number"] == "5551009"
    assert not names_a_queue(offered)          # an operator never sees queue names
    # op102 may not answer, hang up or transfer op101's call.
    for cmd, data in (("answer", {"call_id": call_id}), ("hangup", {"call_id": call_id}),
                      ("transfer", {"call_id": call_id, "to": "103"})):
        err = command(op2, cmd, data, cid=f"x-{cmd}")
        assert err["type"] == "error" and err["code"] == "forbidden", err
    # op101 may not hang up a call only offered to them.
    assert command(op1, "hangup", {"call_id": call_id}, cid="early")["code"] == "forbidden"
    ack = command(op1, "answer", {"call_id": call_id}, cid="a1")
    assert ack["type"] == "command_ack" and ack["command_id"].startswith(f"{gws.site.id}:gw-gwtest:")
    gws.result(ack["command_id"], "succeeded", "gateway:op101")
    assert op1.recv_until(result_of(ack["command_id"]), what="answer result")["event"]["data"]["status"] == "succeeded"
    # The agent says: connected.
    st.call(call_id, state="connected", operator="op101")
    st.operator("op101", state="on_call", call=st.in_call(call_id))
    op1.recv_until(update_of("operator", "op101", lambda s: s and s["call"]), what="the call connected")
    # Reconnecting shows the call in progress in the snapshot.
    again = gws.client("op101")
    assert again.first["operator"]["call"]["call_id"] == call_id and again.first["operator"]["offered"] is None
    again.close()
    hack = command(op1, "hangup", {"call_id": call_id}, cid="h1")
    assert hack["type"] == "command_ack", hack
    # The operator travels with the command: the agent checks the call is still theirs.
    hangup = wait_until(lambda: [c for c in gws.commands() if c["id"] == hack["command_id"]], what="the hangup")
    assert hangup[0]["data"] == {"operator_id": "op101", "call_id": call_id}
    # The agent says: the call ended.
    st.end_call(call_id)
    st.operator("op101", recent=[st.recent_call(call_id)], handled=1)
    done = op1.recv_until(update_of("operator", "op101", lambda s: s and not s["call"] and s["recent"]),
                          what="the call to end")
    assert done["state"]["recent"][0]["call_id"] == call_id and done["state"]["today"]["handled"] == 1
    # The supervisor followed the call, with its queue, to its end.
    sup.recv_until(update_of("call", call_id, lambda s: s is None), what="the call's tombstone")
    calls = [m["state"] for m in sup.seen if m["type"] == "update" and m["kind"] == "call" and m["state"]]
    assert [c["state"] for c in calls] == ["ringing", "connected"] and calls[0]["queue"] == "support"
    assert not any("recent" in (m.get("state") or {}) for m in sup.seen if m["type"] == "update")
    # op101 saw nothing but their own record and their result; op102 nothing of op101's call.
    assert {(m["kind"], m["id"]) for m in op1.seen if m["type"] == "update"} == {("operator", "op101")}
    assert not names_a_queue(op1.seen)
    op2.drain(0.5)
    assert mentions(op2.seen, call_id) == []
    # Commands in Kafka: made by the gateway, identity from the token.
    cmds = gws.commands()
    assert {c["sender"] for c in cmds} == {"gateway:sup1", "gateway:op101"}
    answer = next(c for c in cmds if c["id"] == ack["command_id"])
    assert answer["type"] == "callbus.command.answer"
    assert answer["data"] == {"operator_id": "op101", "call_id": call_id}
    assert answer["expires"] > answer["time"]


def test_browser_originate_variables_only_when_the_site_allows(procs, tmp_path, site, kafka_bootstrap):
    """Channel variables reach the dialplan: by default a browser's
    originate may not carry them; with gateway.browser_variables it may,
    and the agent still checks names and values."""
    gws = GwSite(procs, tmp_path, site, kafka_bootstrap)
    op = gws.client("op101")
    err = command(op, "originate", {"number": "5552001", "variables": {"X": "1,CALLERID(num)=112"}}, cid="v1")
    assert err["type"] == "error" and err["code"] == "forbidden", err
    assert "gateway.browser_variables" in err["message"]
    plain = command(op, "originate", {"number": "5552001"}, cid="v2")
    assert plain["type"] == "command_ack"
    made = wait_until(lambda: gws.commands(), what="the plain originate in the commands topic")
    assert [c["id"] for c in made] == [plain["command_id"]] and "variables" not in made[0]["data"]
    op.close()
    gws.gateway.stop()
    allowed = GwSite(procs, tmp_path, site, kafka_bootstrap, gateway_extra="browser_variables = true;")
    op = allowed.client("op101")
    ack = command(op, "originate", {"number": "5552001", "variables": {"CC_TICKET": "T-1"}}, cid="v3")
    assert ack["type"] == "command_ack", ack
    sent = wait_until(lambda: [c for c in allowed.commands() if c["id"] == ack["command_id"]],
                      what="the originate in the commands topic")
    assert sent[0]["data"]["variables"] == {"CC_TICKET": "T-1"}


@through_the_agent
def test_offer_answer_hangup_through_the_agent(gwb):
    """The same steps with the real agent's state records: amisim offers a
    queue call, the browser's answer and hangup run on amisim."""
    op1, op2 = gwb.client("op101"), gwb.client("op102")
    sup = gwb.client("sup1", "supervisor")
    for op in ("op102", "op103"):
        assert command(sup, "pause", {"operator_id": op, "queue": "support"}, cid=f"p-{op}")["type"] == "command_ack"
    sup.recv_until(update_of("operator", "op103", lambda s: s and s["paused"]), what="op103 paused")
    gwb.inbound_call()
    offered = op1.recv_until(update_of("operator", "op101", lambda s: s and s["offered"]), what="the offer")
    call_id = offered["state"]["offered"]["call_id"]
    assert offered["state"]["offered"]["caller"]["number"] == "5551009"
    ack = command(op1, "answer", {"call_id": call_id}, cid="a1")
    assert ack["type"] == "command_ack"
    assert op1.recv_until(lambda m: result_of(ack["command_id"])(m) and m["event"]["data"]["status"] == "succeeded",
                          what="answer succeeded")
    op1.recv_until(update_of("operator", "op101", lambda s: s and s["call"] and s["call"]["call_id"] == call_id),
                   what="the call connected")
    assert command(op1, "hangup", {"call_id": call_id}, cid="h1")["type"] == "command_ack"
    done = op1.recv_until(update_of("operator", "op101", lambda s: s and not s["call"] and s["recent"]),
                          what="the call to end")
    assert done["state"]["recent"][0]["call_id"] == call_id
    sup.recv_until(update_of("call", call_id, lambda s: s is None), what="the call's tombstone")
    assert any(m["state"] and m["state"].get("queue") == "support" for m in sup.seen
               if m["type"] == "update" and m["kind"] == "call")
    assert not names_a_queue(op1.seen)
    op2.drain(0.5)
    assert mentions(op2.seen, call_id) == []


@pytest.mark.sanitizer
def test_resume_gets_exactly_the_missed_messages(gws):
    st = gws.state
    watcher = gws.client("op101")
    sup = gws.client("sup1", "supervisor")
    c = gws.client("op101")
    snap = c.first
    c.close()
    ssnap = sup.first
    sup.close()
    st.operator("op101", state="paused", paused=True, reason="lunch")
    st.operator("op102", state="ringing", offered=st.offer("1.1"))   # not op101's: not in op101's stream
    st.operator("op101")
    gws.result("cmd-9", "succeeded", "gateway:op101")
    st.operator("op101", state="paused", paused=True, reason="coffee")
    def numbered():
        watcher.drain(0.3)
        return [m for m in watcher.seen if m["type"] in ("update", "event")]
    wait_until(lambda: len(numbered()) >= 4, timeout=20, what="four messages for op101")
    missed = numbered()
    assert sorted(m["type"] for m in missed) == ["event", "update", "update", "update"]
    r = gws.client("op101", resume={"epoch": snap["epoch"], "pos": snap["pos"]})
    assert r.first["type"] == "resume" and r.first["recovered"] is True, r.first
    assert r.first["events"] == missed
    assert [m["pos"] for m in r.first["events"]] == list(range(snap["pos"] + 1, r.first["pos"] + 1))
    # The supervisor missed op102's record too, and gets it.
    rs = gws.client("sup1", "supervisor", resume={"epoch": ssnap["epoch"], "pos": ssnap["pos"]})
    assert rs.first["type"] == "resume"
    assert [(m.get("kind"), m.get("id")) for m in rs.first["events"] if m["type"] == "update"] == \
        [("operator", "op101"), ("operator", "op102"), ("operator", "op101"), ("operator", "op101")]
    # Nothing missed: an empty resume.
    r2 = gws.client("op101", resume={"epoch": r.first["epoch"], "pos": r.first["pos"]})
    assert r2.first["type"] == "resume" and r2.first["events"] == []
    # A position from another gateway run: a fresh snapshot, flagged.
    old = gws.client("op101", resume={"epoch": "0", "pos": 3})
    assert old.first["type"] == "snapshot" and old.first["recovered"] is False
    assert old.first["operator"]["paused"] is True and old.first["operator"]["pause_reason"] == "coffee"
    # A gateway restart loads the state topics before accepting clients;
    # positions of the previous run get a flagged snapshot.
    for cl in (watcher, r, r2, rs, old):
        cl.close()
    gws.gateway.stop()
    gws.gateway, gws.url = start_gateway(gws.procs, gws.gw_conf)
    after = gws.client("op101", resume={"epoch": r.first["epoch"], "pos": r.first["pos"]})
    assert after.first["type"] == "snapshot" and after.first["recovered"] is False
    assert after.first["reason"] == "epoch changed" and after.first["epoch"] != r.first["epoch"]
    assert after.first["operator"]["pause_reason"] == "coffee"


# ------------------------------------------------- a 1,000-seat site, restarts

def busy_site(st, operators, calls, queues=("support", "sales"), versions=1):
    """operators with ten recent calls each, calls in every state, queues;
    versions > 1 writes each operator that many times (the uncompacted tail
    of a day). Returns the number of records written."""
    states = ("ready", "on_call", "paused", "ringing", "ready", "on_call", "unavailable")
    n = 0
    for v in range(versions):
        for i in range(operators):
            q = queues[i % len(queues)]
            state = states[i % len(states)]
            call_id = f"1795670{i:04d}.{i}"
            st.operator(f"op{i:04d}", state=state, queues=(q,), paused=state == "paused",
                        reason="lunch" if state == "paused" else None,
                        offered=st.offer(call_id, queue=q) if state == "ringing" else None,
                        call=st.in_call(call_id, queue=q) if state == "on_call" else None,
                        recent=[st.recent_call(f"1795660{i:04d}.{k}", queue=q) for k in range(10)],
                        handled=v + i % 40, flush=False)
            n += 1
    for i in range(calls):
        q = queues[i % len(queues)]
        st.call(f"1795680{i:04d}.{i}", state=("queued", "ringing", "connected")[i % 3], queue=q,
                operator=f"op{i:04d}" if i % 3 == 2 else None,
                offered_to=[f"op{i:04d}"] if i % 3 == 1 else [], flush=False)
        n += 1
    for q in queues:
        st.queue(q, waiting=3, flush=False)
        n += 1
    st.flush()
    return n


def read_snapshot(client):
    """The parts of a supervisor's snapshot, the first one included."""
    parts = [client.first]
    while len(parts) < client.first["parts"]:
        parts.append(client.recv(timeout=30))
    return parts


def test_supervisor_of_1000_operators_gets_its_snapshot_in_parts(procs, tmp_path, site, kafka_bootstrap):
    """1,000 operators with their recent calls and 300 active calls: a
    supervisor's snapshot (hundreds of KB) comes in parts of at most 200
    operators and calls, all at one position, and does not count against
    max_queue_kb (here 64 KB): the supervisor is not dropped, live updates
    follow. An operator's snapshot is their own record only."""
    st = StateWriter(kafka_bootstrap, site)
    busy_site(st, 1000, 300)
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, "max_queue_kb = 64;")
    gw, url = start_gateway(procs, conf)
    assert re.search(r"view loaded: 1000 operators, 300 active calls, 2 queues", gw.output("err"))
    t0 = time.monotonic()
    sups = [GwClient(url, operator_token(site, f"sup{i}", "supervisor")) for i in range(5)]
    snaps = [read_snapshot(s) for s in sups]
    took = time.monotonic() - t0
    for parts in snaps:
        assert [p["part"] for p in parts] == list(range(1, len(parts) + 1)) == list(range(1, 6))
        assert {p["pos"] for p in parts} == {parts[0]["pos"]} and {p["parts"] for p in parts} == {5}
        ops = [o["operator_id"] for p in parts for o in p["operators"]]
        assert len(ops) == len(set(ops)) == 1000
        assert len({c["call_id"] for p in parts for c in p["calls"]}) == 300
        assert sorted(q["queue"] for q in parts[0]["queues"]) == ["sales", "support"]
        assert all(len(p["operators"]) <= 200 and len(p["calls"]) <= 200 for p in parts)
    sent = re.search(r"sup0: snapshot in 5 message\(s\), (\d+) bytes", gw.output("err"))
    size = int(sent.group(1))
    print(f"supervisor snapshot: {size} bytes in {len(snaps[0])} parts; 5 supervisors had theirs in {took:.2f} s")
    assert size > 4 * 64 * 1024        # would have tripped max_queue_kb many times over
    # Still connected: live updates follow the snapshot.
    st.operator("op0007", state="paused", paused=True, reason="coffee")
    for s in sups:
        u = s.recv_until(update_of("operator", "op0007", lambda x: x and x["paused"]), what="op0007 paused")
        assert u["pos"] == snaps[0][0]["pos"] + 1 and "recent" not in u["state"]
    assert gw_metrics(url)["callbus_gateway_closed_slow_total"] == 0
    # An operator of the same site gets their own record only.
    op = GwClient(url, operator_token(site, "op0002"))
    assert op.first["operator"]["operator_id"] == "op0002" and len(op.first["operator"]["recent"]) == 10
    assert not names_a_queue(op.first) and len(json.dumps(op.first)) < 8192


def state_topics_loaded(gw):
    m = re.findall(r"read (\d+) records from (\d+) partitions to rebuild the view", gw.output("err"))
    return int(m[-1][0])


def test_restart_serves_from_the_state_topics_not_the_event_topics(procs, tmp_path, site, kafka_bootstrap):
    """A day behind: 500 operators written three times each (the uncompacted
    tail), 100 calls of which 50 ended (tombstones), and the event topics
    filled with 150,000 records of history, and a thousand old results. The
    gateway reads the state records, and only them, before it listens (the
    results from their end), and serves the latest state; with the event
    topics deleted it starts the same. Among the history, records that would
    change the view if the event topics were read as state (an operator and
    a call that do not exist, a tombstone of a call that is up, a new
    version of op0001), at start and while it runs: none shows, and the
    records it consumed (its kafka_messages_total) are the state records."""
    st = StateWriter(kafka_bootstrap, site)
    written = busy_site(st, 500, 100, queues=("support",), versions=3)
    for i in range(0, 100, 2):
        st.end_call(f"1795680{i:04d}.{i}", flush=False)
        written += 1
    st.flush()
    history = []
    for i in range(100000):
        cid = f"1795600{i % 5000:04d}.{i % 5000}"
        history.append((cid, json.dumps({"specversion": "1.0", "id": f"{site.id}:agent1:calls:1:{i + 1}",
                                          "source": "x", "type": "callbus.call.queued", "time": "2026-12-04T09:00:00Z",
                                          "subject": cid, "data": {"call_id": cid, "queue": "support", "position": 1,
                                                                    "caller": {"number": "5551001"}}})))
    produce(kafka_bootstrap, site.topic("calls"), history)
    produce(kafka_bootstrap, site.topic("operators"), [
        (f"op{i % 500:04d}", json.dumps({"specversion": "1.0", "id": f"{site.id}:agent1:operators:1:{i + 1}",
                                         "source": "x", "type": "callbus.operator.ready",
                                         "time": "2026-12-04T09:00:00Z", "subject": f"op{i % 500:04d}",
                                         "data": {"operator_id": f"op{i % 500:04d}"}})) for i in range(50000)])
    # Records in the state format on the event topics: the view changes if
    # the gateway reads them (under any topic of its own).
    decoys = StateWriter(kafka_bootstrap, site, create=False)
    decoys.TOPICS = {"operator": "operators", "call": "calls"}
    decoys.operator("op9999", flush=False)
    decoys.operator("op0001", state="paused", paused=True, reason="decoy", handled=999, flush=False)
    decoys.call("17956999999.9", flush=False)
    decoys.end_call("17956800001.1", flush=False)
    decoys.flush()
    # Yesterday's results: nobody waits for them after a restart.
    produce(kafka_bootstrap, site.topic("results"), [(f"old-{i}", json.dumps({
        "specversion": "1.0", "id": f"{site.id}:agent1:results:1:{i + 1}", "source": "x", "type": "callbus.result",
        "time": "2026-12-03T09:00:00Z", "subject": f"old-{i}",
        "data": {"command_id": f"old-{i}", "status": "succeeded", "sender": "gateway:op0001"}})) for i in range(1000)])
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)

    def start_and_check(name, history, live=False):
        nonlocal written
        t0 = time.monotonic()
        gw, url = start_gateway(procs, conf, name=name)
        took = time.monotonic() - t0
        assert state_topics_loaded(gw) == written       # the state records, nothing of the history
        assert "view loaded: 500 operators, 50 active calls, 1 queues" in gw.output("err")
        sup = GwClient(url, operator_token(site, "sup1", "supervisor"))
        parts = read_snapshot(sup)
        ops = {o["operator_id"]: o for p in parts for o in p["operators"]}
        assert len(ops) == 500 and {o["today"]["handled"] for o in ops.values()} == set(range(2, 42))
        assert sorted(c["call_id"] for p in parts for c in p["calls"]) == \
            sorted(f"1795680{i:04d}.{i}" for i in range(1, 100, 2))
        op = GwClient(url, operator_token(site, "op0001"))
        assert op.first["operator"]["call"]["call_id"] == "17956700001.1"
        assert op.first["operator"]["state"] == "on_call" and op.first["operator"]["today"]["handled"] == 3
        assert op.first["pos"] == 0 and [m for m in op.drain(0.5) + sup.drain(0.1) if m["type"] == "event"] == []
        if live:
            # More decoys while it runs, then a state record after them:
            # the supervisor gets that record and nothing of the decoys.
            decoys.call("17956999998.8", flush=False)
            decoys.operator("op9998", flush=False)
            decoys.flush()
            st.queue("support", waiting=7)
            written += 1
            sup.recv_until(update_of("queue", "support", lambda q: q and q["waiting"] == 7), what="the queue update")
            sup.drain(0.5)
            assert [(m["kind"], m["id"]) for m in sup.seen if m["type"] == "update"] == [("queue", "support")]
        assert gw_metrics(url)["callbus_gateway_kafka_messages_total"] == written
        print(f"{name}: {written} state records read, serving {took:.2f} s after start ({history})")
        sup.close()
        op.close()
        return gw

    gw = start_and_check("gateway", "150,000 records on the event topics", live=True)
    gw.stop()
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.delete_topics([site.topic("calls"), site.topic("operators")]).values():
        f.result(30)
    start_and_check("gateway-without-event-topics", "the event topics deleted")


# ---------------------------------------------------------------- limits

@pytest.fixture
def lone_gateway(procs, tmp_path, site, kafka_bootstrap):
    """A gateway with tight limits and no agent (topics appear later or never)."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                              "max_frame = 4096; max_msgs_per_s = 10; max_connections = 8;")
    _, url = start_gateway(procs, conf)
    return site, url


@pytest.mark.sanitizer
def test_limits_and_bad_messages(lone_gateway):
    site, url = lone_gateway
    tok = operator_token(site, "op101")
    c = GwClient(url, tok)
    assert c.first["type"] == "snapshot"
    c.send("{not json")
    assert c.recv()["code"] == "bad_json"
    c.send("[1,2]")
    assert c.recv()["code"] == "bad_json"
    c.send({"type": "subscribe", "id": 7})
    e = c.recv()
    assert e["type"] == "error" and e["code"] == "unknown_type" and e["id"] == 7
    c.send({"type": "command", "id": "q", "command": "reboot", "data": {}})
    assert c.recv()["code"] == "invalid"
    c.send({"type": "command", "id": "l", "command": "listen", "data": {"operator_id": "op102"}})
    assert c.recv()["code"] == "forbidden"
    c.send({"type": "ping"})
    assert c.recv()["type"] == "pong"
    # Oversized frame: 1009.
    big = GwClient(url, tok)
    big.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
    assert big.close_code() == 1009
    # A flood: rate_limited, then 4008.
    time.sleep(1.1)
    for _ in range(60):
        try:
            c.send({"type": "ping"})
        except Exception:
            break
    assert c.close_code() == 4008
    assert any(m.get("code") == "rate_limited" for m in c.seen)


@pytest.mark.sanitizer
def test_tokens_and_auth(lone_gateway):
    site, url = lone_gateway
    cases = [
        (operator_token(site, "op101", secret="x" * 40), 4001),         # forged
        (operator_token(site, "op101", ttl=-3600), 4002),                # expired
        (operator_token("othersite", "op101"), 4003),                     # another site
        ("not.a.token", 4001),
    ]
    for tok, want in cases:
        c = GwClient(url, tok, auth=False)
        c.send({"type": "auth", "token": tok})
        assert c.close_code() == want, tok
    # First message not auth: 4000.
    c = GwClient(url, None)
    c.send({"type": "ping"})
    assert c.close_code() == 4000
    # Renewal for another operator: 4001; a good renewal is confirmed.
    c = GwClient(url, operator_token(site, "op101"))
    c.send({"type": "renew", "token": operator_token(site, "op101", ttl=900)})
    assert c.recv()["type"] == "renewed"
    c.send({"type": "renew", "token": operator_token(site, "op102")})
    assert c.close_code() == 4001
    # Too many connections: 4008.
    held = [GwClient(url, operator_token(site, f"op{i}")) for i in range(8)]
    extra = GwClient(url, None)
    assert extra.close_code() == 4008
    for h in held:
        h.close()
    # Auth timeout: 4000 after 5 s.
    t0 = time.monotonic()
    c = GwClient(url, None)
    assert c.close_code(timeout=10) == 4000
    assert 4.5 < time.monotonic() - t0 < 7
    # Metrics count all of it; health answers.
    import urllib.request
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    vals = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
    assert int(vals["callbus_gateway_auth_failed_total"]) >= 5
    assert int(vals["callbus_gateway_auth_timeouts_total"]) == 1
    assert int(vals["callbus_gateway_refused_max_connections_total"]) == 1
    health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
    assert health["status"] == "ok"


@pytest.mark.sanitizer
def test_tls_and_origin(procs, tmp_path, site, kafka_bootstrap):
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                              f'tls_cert = "{cert}"; tls_key = "{key}"; origins = ["https://crm.example"];')
    _, url = start_gateway(procs, conf)
    assert url.startswith("https://")
    sslopt = {"cert_reqs": ssl.CERT_NONE}
    c = GwClient(url, operator_token(site, "op101"), sslopt=sslopt, origin="https://crm.example")
    assert c.welcome["type"] == "welcome" and c.first["type"] == "snapshot"
    bad = GwClient(url, None, sslopt=sslopt, origin="https://evil.example")
    assert bad.close_code() == 4009


# ------------------------------------------------- RS256, idle, slow readers

def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def rs256_token(key, site, sub, ttl=600):
    """A JWT signed RS256 with the PEM private key file `key` (openssl)."""
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "site": site.id, "role": "operator",
                              "exp": int(time.time()) + ttl}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=f"{head}.{body}".encode(),
                         capture_output=True, check=True).stdout
    return f"{head}.{body}.{b64url(sig)}"


def rsa_pair(tmp_path, name):
    key, pub = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True)
    return key, pub


def gw_health(url):
    import urllib.request
    return json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())


def gw_metrics(url):
    import urllib.request
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return {k: int(v) for k, v in (l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))}


@pytest.mark.sanitizer
def test_rs256_key_file(procs, tmp_path, site, kafka_bootstrap):
    """The CRM signs with its private key; the gateway has only the public
    one (jwt_key_file). An HS256 token "signed" with that public key as the
    HMAC secret (the classic algorithm confusion) is refused."""
    key, pub = rsa_pair(tmp_path, "crm")
    other, _ = rsa_pair(tmp_path, "other")
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                              auth=f'jwt_alg = "RS256"; jwt_key_file = "{pub}";')
    _, url = start_gateway(procs, conf)
    c = GwClient(url, rs256_token(key, site, "op101"))
    assert c.welcome["type"] == "welcome" and c.welcome["operator_id"] == "op101"
    assert c.first["type"] == "snapshot"
    c.send({"type": "renew", "token": rs256_token(key, site, "op101", ttl=900)})
    assert c.recv()["type"] == "renewed"
    confused = hs256_token({"sub": "op101", "site": site.id, "role": "operator",
                            "exp": int(time.time()) + 600}, secret=pub.read_text())
    for tok in (confused, rs256_token(other, site, "op101")):
        bad = GwClient(url, tok, auth=False)
        bad.send({"type": "auth", "token": tok})
        assert bad.close_code() == 4001
    assert gw_metrics(url)["callbus_gateway_auth_failed_total"] == 2


@pytest.mark.sanitizer
def test_idle_timeout(procs, tmp_path, site, kafka_bootstrap):
    """A client that sends nothing for idle_timeout seconds is closed with
    1001 and counted; one that keeps talking is not."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, "idle_timeout = 2;")
    _, url = start_gateway(procs, conf)
    quiet, busy = GwClient(url, operator_token(site, "op101")), GwClient(url, operator_token(site, "op102"))
    quiet.send({"type": "ping"})
    assert quiet.recv()["type"] == "pong"
    end = time.monotonic() + 5          # > idle_timeout + the 1 s sweep, with margin
    while time.monotonic() < end:
        busy.send({"type": "ping"})
        assert busy.recv()["type"] == "pong"
        time.sleep(0.5)
    assert quiet.close_code() == 1001
    busy.send({"type": "ping"})
    assert busy.recv()["type"] == "pong"
    assert gw_metrics(url)["callbus_gateway_closed_idle_total"] == 1


def test_slow_reader_dropped_others_keep_receiving(procs, tmp_path, site, kafka_bootstrap):
    """Two supervisors; one stops reading (tiny receive buffer) while ~10 MB
    of events arrive. The gateway queues at most max_queue_kb for it beyond
    what the kernel holds, then drops it (4008, when the close frame still
    fits) and counts it; the other one gets every event."""
    create_topic(kafka_bootstrap, site.topic("results"))
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, "max_queue_kb = 256; history = 10;")
    _, url = start_gateway(procs, conf)
    slow = GwClient(url, operator_token(site, "sup1", "supervisor"),
                    sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = GwClient(url, operator_token(site, "sup2", "supervisor"))
    # More than the kernel can hold for the slow one (the gateway's send
    # buffer grows up to tcp_wmem's max) plus max_queue_kb.
    wmem_max = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    n, pad = max(5000, (2 * wmem_max + (1 << 20)) // 2000), "x" * 2000

    def result(i):
        return (f"cmd-{i}", json.dumps({
            "specversion": "1.0", "id": f"{site.id}:agent1:results:1:{i}", "source": "test",
            "type": "callbus.result", "time": "2026-01-01T00:00:00Z", "subject": f"cmd-{i}",
            "data": {"command_id": f"cmd-{i}", "status": "succeeded", "sender": "crm", "detail": pad}}))

    def flood():
        # ~2 MB/s: a Python client keeps up with that, a browser with far more.
        for start in range(0, n, 250):
            produce(kafka_bootstrap, site.topic("results"), [result(i) for i in range(start, start + 250)])
            time.sleep(0.25)
    producer = threading.Thread(target=flood, daemon=True)
    producer.start()
    got = set()
    while len(got) < n:
        m = fast.recv(timeout=30)
        if m["type"] == "event":
            got.add(m["event"]["id"])
    producer.join()
    wait_until(lambda: gw_metrics(url)["callbus_gateway_closed_slow_total"] == 1, timeout=30,
               what="the slow reader dropped")
    fast.send({"type": "ping"})
    assert fast.recv_until(lambda m: m["type"] == "pong", seen=False)
    code = slow.close_code(timeout=30)   # reads what the kernel still held, then the end
    assert code in (4008, None), code
    assert len([m for m in slow.seen if m["type"] == "event"]) < n
    assert gw_metrics(url)["callbus_gateway_connections"] == 1


# ------------------------------------------------------- the event loop

def test_site_broker_down_commands_are_answered_operators_stay(procs, tmp_path, site, private_broker):
    """The site's Kafka goes away under a connected operator: the operator
    stays connected and is told (status kafka down; a client connecting
    meanwhile reads it in its welcome), a command sent meanwhile is
    acknowledged as queued and, once its TTL has passed without Kafka taking
    it, answered with not_delivered (it never reaches the commands topic, so
    it can never run); when Kafka is back, clients are told and commands
    flow again."""
    bs = private_broker.bootstrap
    for kind in ("state.operators", "state.calls", "state.queues", "results", "commands"):
        create_topic(bs, site.topic(kind), partitions=1)
    conf = write_gateway_conf(tmp_path, site, bs, "command_ttl = 3;")
    _, url = start_gateway(procs, conf)
    c = GwClient(url, operator_token(site, "op101"))
    assert c.first["type"] == "snapshot"
    before = command(c, "pause", {"reason": "lunch"}, cid="before")
    assert before["type"] == "command_ack"
    wait_until(lambda: before["command_id"] in {m["id"] for m in messages(bs, site.topic("commands"), timeout=5,
                                                                           idle=0.3)},
               timeout=30, what="the first command in Kafka")

    assert gw_health(url)["kafka"] == "up"

    private_broker.stop()
    st = c.recv_until(lambda m: m["type"] == "status", timeout=30, what="status kafka down", seen=False)
    assert st["kafka"] == "down" and st["since"] <= time.time(), st
    late = GwClient(url, operator_token(site, "op102"))
    assert late.welcome["kafka"] == "down" and late.first["type"] == "snapshot"
    assert c.welcome["kafka"] == "up"
    assert gw_health(url)["kafka"] == "down"
    assert gw_metrics(url)["callbus_gateway_kafka_up"] == 0
    down = command(c, "unpause", {}, cid="down")
    assert down["type"] == "command_ack"
    t0 = time.monotonic()
    err = c.recv_until(lambda m: m.get("type") == "error" and m.get("id") == "down", timeout=30,
                       what="not_delivered", seen=False)
    waited = time.monotonic() - t0
    print(f"broker down: the command was answered {err['code']} after {waited:.1f} s: {err['message']}")
    assert err["code"] == "not_delivered" and err["command_id"] == down["command_id"], err
    assert err["command"] == "unpause"
    assert waited < 20
    c.send({"type": "ping"})
    assert c.recv_until(lambda m: m["type"] == "pong", seen=False)
    assert gw_metrics(url)["callbus_gateway_commands_failed_total"] == 1

    private_broker.start()
    for client in (c, late):
        st = client.recv_until(lambda m: m["type"] == "status", timeout=60, what="status kafka up", seen=False)
        assert st["kafka"] == "up" and "since" not in st, st
    assert gw_health(url)["kafka"] == "up"
    after = command(c, "unpause", {}, cid="after")
    assert after["type"] == "command_ack"
    wanted = {before["command_id"], after["command_id"]}
    wait_until(lambda: wanted <= {m["id"] for m in messages(bs, site.topic("commands"), timeout=5, idle=0.5)},
               timeout=60, what="the commands sent while Kafka was up")
    ids = [m["id"] for m in messages(bs, site.topic("commands"), timeout=5, idle=0.5)]
    assert down["command_id"] not in ids
    assert sorted(ids) == sorted(wanted)


@pytest.mark.sanitizer
def test_stops_cleanly_on_sigterm_and_sigint(procs, tmp_path, site, kafka_bootstrap):
    """The gateway owns its libev loop: SIGTERM and SIGINT break it, lws
    closes the connections, and the process exits 0 promptly."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, name=f"gw-{sig.name}")
        gw, url = start_gateway(procs, conf, name=f"gateway-{sig.name}")
        c = GwClient(url, operator_token(site, "op101"))
        t0 = time.monotonic()
        assert gw.stop(timeout=15, sig=sig) == 0
        assert time.monotonic() - t0 < 10
        assert c.close_code(timeout=5) in (None, 1001, 1006)   # the socket is gone
        assert f"gateway: {signal.strsignal(sig)} received" in gw.err_path.read_text()


@pytest.mark.sanitizer
def test_missing_libev_plugin_is_a_clear_error(tmp_path, site, kafka_bootstrap):
    """Without lws's libev plugin the gateway refuses to start and names the
    package. The plugin is hidden by bind-mounting /dev/null over it in a
    private mount namespace (needs root and unshare)."""
    plugins = glob.glob("/usr/lib/*/libwebsockets-evlib_ev.so") + glob.glob("/usr/lib/libwebsockets-evlib_ev.so")
    if os.geteuid() != 0 or not shutil.which("unshare") or not plugins:
        pytest.skip("needs root, unshare and the installed plugin to hide")
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    # Under ASan: libwebsockets' own leak on this path is suppressed by name,
    # which needs the full stack (lsan-libwebsockets.supp).
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0",
               LSAN_OPTIONS=f"suppressions={ROOT / 'tests' / 'integration' / 'lsan-libwebsockets.supp'}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind /dev/null "$1" && exec "$2" -c "$3"', "sh",
                        plugins[0], str(build_path("callbus-gateway")), str(conf)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr
    assert "libev event-loop plugin" in r.stderr and "libwebsockets-evlib-ev" in r.stderr, r.stderr
    assert "listening" not in r.stderr
