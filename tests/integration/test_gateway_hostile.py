"""callbus-gateway against hostile clients on the call-centre LAN: real
sockets to a real gateway over a real broker (the harness of
test_gateway.py). Each test is one finding of the security review (issue
12) and fails on a gateway without its fix; docs/bad-input.md names them."""

import base64
import os
import socket
import time

import pytest

from callbus_harness import GwClient, operator_token, start_gateway, write_gateway_conf
from test_gateway import gateway_speaks_its_documented_protocol, gw_metrics  # noqa: F401 (autouse)


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def raw_upgrade(url, path="/ws", protocol=None, upgrade="websocket"):
    """Sends a WebSocket upgrade request by hand; returns (status code,
    the response head as text)."""
    s = socket.create_connection(("127.0.0.1", port_of(url)), timeout=5)
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n")
    if protocol:
        head += f"Sec-WebSocket-Protocol: {protocol}\r\n"
    s.sendall((head + "\r\n").encode())
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    text = got.decode("latin-1")
    assert text.startswith("HTTP/1."), f"no HTTP answer to the upgrade of {path} ({protocol}): {text!r}"
    return int(text.split()[1]), text


@pytest.fixture
def gateway(procs, tmp_path, site, kafka_bootstrap):
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, "max_connections = 8;")
    _, url = start_gateway(procs, conf)
    return site, url


# ------------------------------------------------------------- upgrades

@pytest.mark.sanitizer
def test_upgrade_without_subprotocol_refused(gateway):
    """An upgrade that does not offer callbus.v1, or not at /ws, or not to
    WebSocket, gets an HTTP error, never 101: such a socket would be bound
    to lws's HTTP protocol and skip the auth and idle timeouts, the origin
    check and the connection count."""
    site, url = gateway
    assert raw_upgrade(url, "/ws")[0] == 400                       # no Sec-WebSocket-Protocol
    assert raw_upgrade(url, "/ws", "chat, superchat")[0] == 400    # only others
    assert raw_upgrade(url, "/")[0] == 404
    assert raw_upgrade(url, "/metrics")[0] == 404
    assert raw_upgrade(url, "/other", "callbus.v1")[0] == 404
    assert raw_upgrade(url, "/ws", "callbus.v1", upgrade="h2c")[0] == 400
    status, text = raw_upgrade(url, "/ws", "chat, callbus.v1")     # ours among others: served
    assert status == 101 and "callbus.v1" in text.lower()
    assert gw_metrics(url)["callbus_gateway_refused_upgrades_total"] == 6
    # The real client still gets in.
    c = GwClient(url, operator_token(site, "op101"))
    assert c.welcome["type"] == "welcome"


# ------------------------------------------ unauthenticated connections

def fate(c, wait=0.3):
    """The close code the server sent c within wait seconds, or "open"."""
    import websocket
    try:
        return c.close_code(timeout=wait)
    except websocket.WebSocketTimeoutException:
        return "open"


@pytest.mark.sanitizer
def test_unauthenticated_flood_does_not_keep_operators_out(procs, tmp_path, site, kafka_bootstrap):
    """One LAN host opens sockets and never authenticates, again and again:
    it gets max_unauthed_per_address of them, the rest are closed with 4008
    at once, and an operator from another host still gets in. All hosts
    together get max_unauthed; operators count against max_connections
    only."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap,
                              "max_connections = 8; max_unauthed = 6; max_unauthed_per_address = 4;")
    _, url = start_gateway(procs, conf)
    flood = [GwClient(url, None) for _ in range(20)]               # from 127.0.0.1
    fates = [fate(c) for c in flood]
    assert fates == ["open"] * 4 + [4008] * 16
    held = flood[:4]
    op = GwClient(url, operator_token(site, "op101"), source="127.0.0.2")
    assert op.welcome["type"] == "welcome" and op.first["type"] == "snapshot"
    # Operators are not counted as unauthenticated, nor the flood against
    # max_connections: 8 operators fit (op101 + 7) beside its 4 sockets; a
    # ninth connection is refused.
    ops = [GwClient(url, operator_token(site, f"op{i}"), source="127.0.0.4") for i in range(7)]
    assert all(o.welcome["type"] == "welcome" for o in ops)
    assert GwClient(url, None, source="127.0.0.5").close_code() == 4008
    for o in ops:
        o.close()
    # Another host: room for 2 more unauthenticated (6 in all), not 4.
    more = [GwClient(url, None, source="127.0.0.3") for _ in range(4)]
    assert [fate(c) for c in more] == ["open", "open", 4008, 4008]
    m = gw_metrics(url)
    assert m["callbus_gateway_refused_unauthed_total"] == 16 + 2
    assert m["callbus_gateway_refused_max_connections_total"] == 1
    assert m["callbus_gateway_unauthenticated_connections"] == 6
    # The flood's sockets time out (4000) and free their address's quota.
    assert all(c.close_code(timeout=10) == 4000 for c in held)
    op2 = GwClient(url, operator_token(site, "op102"))            # from 127.0.0.1 again
    assert op2.welcome["type"] == "welcome"


# ----------------------------------------------- client text in logs and replies

def test_client_text_is_logged_escaped_and_cut(procs, tmp_path, site, kafka_bootstrap):
    """A client's command name with a newline and a forged log line after
    it, and 5,000 bytes more, is answered, and logged on one escaped line
    cut to a bounded length: no line of the log starts with the forgery."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    gw, url = start_gateway(procs, conf)
    c = GwClient(url, operator_token(site, "op101"))
    forged = "2026-12-05T00:00:00.000Z callbus-gateway error: gateway: FORGED"
    c.send({"type": "command", "id": "x", "command": "x\n" + forged + "\x1b[2J" + "A" * 5000, "data": {}})
    e = c.recv()
    assert e["type"] == "error" and e["code"] == "invalid" and e["id"] == "x"
    gw.wait_for(r"command x\\n2026-12-05T00:00:00\.000Z callbus-gateway error: gateway: FORGED\\x1b\[2JA+\.\.\.",
                timeout=5, which="err")
    lines = gw.output("err").splitlines()
    assert not [l for l in lines if l.startswith(forged[:24])]
    assert not [l for l in lines if "\x1b" in l]
    assert max(len(l) for l in lines if "refused (invalid)" in l) < 400


def test_error_reply_quoting_a_cut_character_is_sent(procs, tmp_path, site, kafka_bootstrap):
    """An unknown data field whose name has a 2-byte character across the
    40-byte mark: a cut inside it made the error message invalid UTF-8,
    jansson refused it and the client got no answer at all. The answer now
    comes, quoting the name whole."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    _, url = start_gateway(procs, conf)
    c = GwClient(url, operator_token(site, "op101"))
    key = "k" * 39 + "\u00e9tage"
    c.send({"type": "command", "id": "u", "command": "originate", "data": {"number": "100", key: "1"}})
    e = c.recv(timeout=5)
    assert e["type"] == "error" and e["code"] == "invalid" and e["id"] == "u"
    assert e["message"] == f"data.{key} is not a field of originate"
    # Bytes that are not UTF-8 cannot come in a text frame (lws closes it,
    # 1007); a key with a newline is quoted escaped.
    c.send({"type": "command", "id": "n", "command": "originate", "data": {"number": "100", "a\nb": "1"}})
    assert c.recv(timeout=5)["message"] == "data.a\\nb is not a field of originate"


def test_bad_json_reply_quoting_a_cut_character_is_sent(procs, tmp_path, site, kafka_bootstrap):
    """Not JSON, with non-ASCII where the parser stops: jansson's error text
    ("... near '...'") quotes the input; whatever it quotes, the bad_json
    answer goes out (gw_send_error escapes a message jansson would refuse)."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    _, url = start_gateway(procs, conf)
    c = GwClient(url, operator_token(site, "op101"))
    for i, text in enumerate(['{"a": \u00e9}', '{"a": "x", ' + "\u00e9" * 200 + '}', "\u20ac" * 100]):
        c.send(text)
        e = c.recv(timeout=5)
        assert e["type"] == "error" and e["code"] == "bad_json", (i, e)
    c.send({"type": "ping"})
    assert c.recv()["type"] == "pong"


# ------------------------------------------------------------------ tokens

def test_audience_checked_when_configured(procs, tmp_path, site, kafka_bootstrap):
    """With jwt_audience set, a token the CRM made for another service (or
    for none) is refused with 4001; one naming the gateway, alone or in an
    array, gets in."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap, 'jwt_audience = "callbus-gateway";')
    _, url = start_gateway(procs, conf)
    for aud in ("callbus-gateway", ["crm-reports", "callbus-gateway"]):
        c = GwClient(url, operator_token(site, "op101", aud=aud))
        assert c.welcome["type"] == "welcome"
    for extra in ({"aud": "crm-reports"}, {"aud": ["crm-reports"]}, {}):
        tok = operator_token(site, "op101", **extra)
        c = GwClient(url, tok, auth=False)
        c.send({"type": "auth", "token": tok})
        assert c.close_code() == 4001, extra
    # A renewal is checked alike.
    c = GwClient(url, operator_token(site, "op101", aud="callbus-gateway"))
    c.send({"type": "renew", "token": operator_token(site, "op101", ttl=900, aud="crm-reports")})
    assert c.close_code() == 4001


def test_renewal_with_an_older_token_refused(procs, tmp_path, site, kafka_bootstrap):
    """A supervisor demoted to operator (a new token, role operator) renews
    with the supervisor token issued before: refused, 4001, not promoted
    back. A renewal issued later is accepted."""
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    _, url = start_gateway(procs, conf)
    now = int(time.time())
    old_sup = operator_token(site, "op101", "supervisor", iat=now - 600)
    c = GwClient(url, operator_token(site, "op101", "operator", iat=now - 60))
    assert c.welcome["role"] == "operator"
    c.send({"type": "renew", "token": operator_token(site, "op101", "operator", ttl=900, iat=now - 30)})
    assert c.recv()["type"] == "renewed"
    c.send({"type": "renew", "token": old_sup})
    assert c.close_code() == 4001
    assert not [m for m in c.seen if m.get("role") == "supervisor"]


def test_command_ids_unique_across_a_restart_within_a_second(procs, tmp_path, site, kafka_bootstrap):
    """The gateway's command ids are <site>:gw-<id>:<epoch>:<seq>, seq from 1
    every run: with the epoch in seconds, a restart (here after a crash,
    SIGKILL) within the same second gave the new run's commands the ids of
    the old run's, which the agent drops as duplicates. Both runs are made
    to fall in one second (tried again if a slow start straddled one)."""
    import signal
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    for attempt in range(4):
        time.sleep(1 - time.time() % 1)        # from the start of a second
        ids = []
        for run in range(2):
            gw, url = start_gateway(procs, conf, name=f"gateway{attempt}.{run}")
            c = GwClient(url, operator_token(site, "op101"))
            c.send({"type": "command", "id": "p", "command": "pause", "data": {}})
            ack = c.recv()
            assert ack["type"] == "command_ack", ack
            ids.append((ack["command_id"], int(time.time())))
            c.close()
            gw.stop(sig=signal.SIGKILL)
        print(ids)
        if ids[0][1] == ids[1][1]:
            break
    else:
        pytest.fail(f"two gateway runs never fell within one second: {ids}")
    first, second = ids[0][0], ids[1][0]
    assert first.startswith(f"{site.id}:gw-gwtest:") and first.endswith(":1") and second.endswith(":1")
    assert first != second
