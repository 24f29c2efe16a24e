"""callbus-gateway end to end: a real broker, amisim, the agent and the
gateway, driven by WebSocket clients (websocket-client). Operators see only
their own calls, a supervisor sees the site, commands are checked and
produced to Kafka, resume gets exactly what was missed, and every limit
gives its documented error or close code (docs/gateway-protocol.md)."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from callbus_harness import (GwClient, hs256_token, messages, operator_token, start_agent,
                             start_amisim, start_gateway, write_agent_conf, write_gateway_conf)
from conftest import ROOT, build_path, create_topic, produce, wait_until

COMMANDS_CONF = 'commands: { operator_phone = "Local/%s@phones"; };'


class GwBench:
    """amisim + agent + gateway for one site."""

    def __init__(self, procs, tmp_path, site, bootstrap, gateway_extra=""):
        self.procs, self.tmp_path, self.site, self.bootstrap = procs, tmp_path, site, bootstrap
        self.amisim, self.port = start_amisim(procs, "--operators", "3", "--queues", "support",
                                              "--rate", "0")
        conf, _ = write_agent_conf(tmp_path, site, bootstrap, self.port, top_extra=COMMANDS_CONF)
        self.agent = start_agent(procs, conf)
        # The agent has published the operators' state: the gateway starts
        # from Kafka with topics in place.
        wait_until(lambda: messages(bootstrap, site.topic("operators"), timeout=5, idle=0.3),
                   timeout=20, what="operator events")
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


def events(msgs, etype=None):
    return [m["event"] for m in msgs if m.get("type") == "event"
            and (etype is None or m["event"]["type"] == etype)]


def call_events(msgs):
    return [e for e in events(msgs) if e["type"].startswith("callbus.call.")]


def command(client, cmd, data, cid="c1"):
    client.send({"type": "command", "id": cid, "command": cmd, "data": data})
    return client.recv_until(lambda m: m.get("id") == cid and m["type"] in ("command_ack", "error"),
                             what=f"answer to {cmd}", seen=False)


def test_operators_isolated_offer_answer_hangup(gwb):
    op1, op2 = gwb.client("op101"), gwb.client("op102")
    sup = gwb.client("sup1", "supervisor")
    assert op1.welcome["type"] == "welcome" and op1.welcome["operator_id"] == "op101"
    assert op1.first["type"] == "snapshot" and op1.first["operator"]["operator_id"] == "op101"
    assert "operators" in sup.first and "operators" not in op1.first
    # The supervisor pauses everybody but op101: the call is offered to op101.
    for op in ("op102", "op103"):
        ack = command(sup, "pause", {"operator_id": op, "queue": "support"}, cid=f"p-{op}")
        assert ack["type"] == "command_ack", ack
    # An operator may not pause somebody else: refused, nothing produced.
    err = command(op2, "pause", {"operator_id": "op101"}, cid="bad-pause")
    assert err["type"] == "error" and err["code"] == "forbidden"
    sup.recv_until(lambda m: m["type"] == "event" and m["event"]["type"] == "callbus.operator.paused"
                   and m["event"]["subject"] == "op103", what="op103 paused")
    gwb.inbound_call()
    offered = op1.recv_until(lambda m: m["type"] == "event" and m["event"]["type"] == "callbus.call.offered",
                             what="the offer")["event"]
    call_id = offered["data"]["call_id"]
    assert offered["data"]["caller"]["number"] == "5551009"
    assert "queue" not in offered["data"]          # an operator never sees queue names
    # op102 may not answer or hang up op101's call.
    for cmd, data in (("answer", {"call_id": call_id}), ("hangup", {"call_id": call_id}),
                      ("transfer", {"call_id": call_id, "to": "103"})):
        err = command(op2, cmd, data, cid=f"x-{cmd}")
        assert err["type"] == "error" and err["code"] == "forbidden", err
    ack = command(op1, "answer", {"call_id": call_id}, cid="a1")
    assert ack["type"] == "command_ack" and ack["command_id"].startswith(f"{gwb.site.id}:gw-gwtest:")
    op1.recv_until(lambda m: m["type"] == "event" and m["event"]["type"] == "callbus.result"
                   and m["event"]["data"]["command_id"] == ack["command_id"], what="answer result")
    op1.recv_until(lambda m: m["type"] == "event" and m["event"]["type"] == "callbus.call.answered",
                   what="the call connected")
    # Reconnecting shows the call in progress in the snapshot.
    again = gwb.client("op101")
    assert again.first["operator"]["call"]["call_id"] == call_id
    again.close()
    hack = command(op1, "hangup", {"call_id": call_id}, cid="h1")
    assert hack["type"] == "command_ack", hack
    op1.recv_until(lambda m: m["type"] == "event" and m["event"]["type"] == "callbus.call.ended",
                   what="the call to end")
    supmsgs = sup.drain(1.0)
    assert {"callbus.call.offered", "callbus.call.answered", "callbus.call.ended"} <= \
        {e["type"] for e in call_events(sup.seen)}
    assert any("queue" in e["data"] for e in call_events(sup.seen))  # the supervisor sees queues
    del supmsgs
    assert call_events(op2.drain(0.5) + op2.seen) == []     # never anything of op101's call
    # Commands in Kafka: made by the gateway, identity from the token.
    cmds = gwb.commands()
    senders = {c["sender"] for c in cmds}
    assert senders == {"gateway:sup1", "gateway:op101"}, senders
    answer = next(c for c in cmds if c["id"] == ack["command_id"])
    assert answer["type"] == "callbus.command.answer"
    assert answer["data"] == {"operator_id": "op101", "call_id": call_id}
    assert answer["expires"] > answer["time"]


def test_resume_gets_exactly_the_missed_events(gwb):
    watcher = gwb.client("op101")
    sup = gwb.client("sup1", "supervisor")
    c = gwb.client("op101")
    snap = c.first
    c.close()
    for i, cmd in enumerate(("pause", "unpause", "pause")):
        assert command(sup, cmd, {"operator_id": "op101", "queue": "support"}, cid=f"s{i}")["type"] == "command_ack"
    wait_until(lambda: len([m for m in watcher.seen + watcher.drain(0.3) if m["type"] == "event"]) >= 3,
               timeout=20, what="three operator events")
    watcher.drain(1.0)
    missed = [m for m in watcher.seen if m["type"] == "event"]
    r = gwb.client("op101", resume={"epoch": snap["epoch"], "pos": snap["pos"]})
    assert r.first["type"] == "resume" and r.first["recovered"] is True, r.first
    assert [m["event"]["id"] for m in r.first["events"]] == [m["event"]["id"] for m in missed]
    assert [m["pos"] for m in r.first["events"]] == list(range(snap["pos"] + 1, r.first["pos"] + 1))
    # Nothing missed: an empty resume.
    r2 = gwb.client("op101", resume={"epoch": r.first["epoch"], "pos": r.first["pos"]})
    assert r2.first["type"] == "resume" and r2.first["events"] == []
    # A position from another gateway run: a fresh snapshot, flagged.
    old = gwb.client("op101", resume={"epoch": "0", "pos": 3})
    assert old.first["type"] == "snapshot" and old.first["recovered"] is False
    assert old.first["operator"]["paused"] is True
    # A gateway restart rebuilds the view from Kafka before accepting clients;
    # positions of the previous run get a flagged snapshot.
    for cl in (watcher, sup, r, r2, old):
        cl.close()
    gwb.gateway.stop()
    gwb.gateway, gwb.url = start_gateway(gwb.procs, gwb.gw_conf)
    after = gwb.client("op101", resume={"epoch": r.first["epoch"], "pos": r.first["pos"]})
    assert after.first["type"] == "snapshot" and after.first["recovered"] is False
    assert after.first["reason"] == "epoch changed" and after.first["epoch"] != r.first["epoch"]
    assert after.first["operator"]["paused"] is True


# ---------------------------------------------------------------- limits

@pytest.fixture
def lone_gateway(procs, tmp_path, site, kafka_bootstrap):
    """A gateway with tight limits and no agent (topics appear later or never)."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                              "max_frame = 4096; max_msgs_per_s = 10; max_connections = 8;")
    _, url = start_gateway(procs, conf)
    return site, url


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
    for kind in ("calls", "operators", "results", "commands"):
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


def test_missing_libev_plugin_is_a_clear_error(tmp_path, site, kafka_bootstrap):
    """Without lws's libev plugin the gateway refuses to start and names the
    package. The plugin is hidden by bind-mounting /dev/null over it in a
    private mount namespace (needs root and unshare)."""
    plugins = glob.glob("/usr/lib/*/libwebsockets-evlib_ev.so") + glob.glob("/usr/lib/libwebsockets-evlib_ev.so")
    if os.geteuid() != 0 or not shutil.which("unshare") or not plugins:
        pytest.skip("needs root, unshare and the installed plugin to hide")
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind /dev/null "$1" && exec "$2" -c "$3"', "sh",
                        plugins[0], str(build_path("callbus-gateway")), str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "libev event-loop plugin" in r.stderr and "libwebsockets-evlib-ev" in r.stderr, r.stderr
    assert "listening" not in r.stderr
