"""The agent's /health and /metrics (agent/http.c) against hostile or
broken HTTP clients on real sockets: idle connections, requests that stall
or come in pieces. A liveness probe must always get its answer."""

import json
import socket
import time
import urllib.request

import pytest

from callbus_harness import metrics, start_agent, start_amisim, write_agent_conf


@pytest.fixture
def agent_http(procs, tmp_path, site, kafka_bootstrap):
    _, port = start_amisim(procs, "--operators", "2", "--rate", "0")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    start_agent(procs, conf)
    return http


def health(http, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=timeout) as r:
        return r.status, json.loads(r.read())


def idle_connections(http, n):
    return [socket.create_connection(("127.0.0.1", http), timeout=5) for _ in range(n)]


def closed_by_server(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.sanitizer
def test_idle_connections_do_not_block_health(agent_http):
    """40 TCP connections that send nothing (more than the agent's 16 client
    slots): /health and /metrics still answer at once, and again while they
    stay; the idle ones are closed after 2 s."""
    http = agent_http
    idle = idle_connections(http, 40)
    t0 = time.monotonic()
    for _ in range(3):
        assert health(http)[0] == 200
        assert "callbus_agent_ami_bytes_total" in metrics(http)
    assert time.monotonic() - t0 < 3
    # Idle ones are closed by the agent, not kept forever.
    still = [s for s in idle if not closed_by_server(s, 0.05)]
    time.sleep(2.5)
    assert all(closed_by_server(s, 1) for s in still)
    # A flood that keeps reconnecting: each probe still gets its answer.
    for _ in range(5):
        idle += idle_connections(http, 20)
        assert health(http)[0] == 200
    for s in idle:
        s.close()


def test_request_in_pieces_and_stalled_request(agent_http):
    """A request line that comes in two packets is read whole (it was
    answered from the first piece: 404 for "/hea"); one that never ends
    is closed after 2 s without blocking anyone."""
    http = agent_http
    stalled = socket.create_connection(("127.0.0.1", http), timeout=5)
    stalled.sendall(b"GET /metr")
    s = socket.create_connection(("127.0.0.1", http), timeout=5)
    s.sendall(b"GET /hea")
    time.sleep(0.3)
    s.sendall(b"lth HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.0 200 "), got
    assert json.loads(got.split(b"\r\n\r\n", 1)[1])["status"] == "ok"
    assert health(http)[0] == 200
    assert closed_by_server(stalled, 4)
