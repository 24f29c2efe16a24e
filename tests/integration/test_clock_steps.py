"""A stepped wall clock (NTP, an operator's `date -s`) neither fires nor
freezes a timer: the agent and the gateway measure every deadline on the
monotonic clock. libfaketime steps the wall clock of a running program while
its monotonic clock goes on (Debian's faketime, tools/setup.sh)."""

import glob
import os
import signal
import time

from callbus_harness import GwClient, operator_token, start_amisim, write_agent_conf, write_gateway_conf
from conftest import build_path

FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)


class SteppedClock:
    """The wall clock of the processes started with .env: real time plus an
    offset that step() changes while they run. Their monotonic clock is
    left alone."""

    def __init__(self, tmp_path):
        assert FAKETIME, "libfaketime is not installed (tools/setup.sh deps)"
        self.file = tmp_path / "faketime"
        self.step("+0")
        self.env = {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": self.file,
                    "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                    # An ASan build wants its runtime first; libfaketime is.
                    "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}

    def step(self, offset):
        tmp = self.file.with_suffix(".new")
        tmp.write_text(offset + "\n")
        os.replace(tmp, self.file)  # never a half-written file for a reader


def test_clock_stepped_back_agent_still_notices_a_dead_link(procs, tmp_path, site, kafka_bootstrap):
    """Back one hour, then Asterisk stops answering (SIGSTOP: the TCP link
    stays open). The Ping timeout (ping_interval 2 s + ping_timeout 3 s) must
    still fire; on the wall clock the next Ping was an hour away."""
    clock = SteppedClock(tmp_path)
    amisim, port = start_amisim(procs, "--operators", "2", "--queues", "support", "--rate", "0")
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, port)
    agent = procs.start([build_path("callbus-agent"), "-c", conf], name="agent", env=clock.env)
    agent.wait_for(r"ami: logged in", timeout=30, which="err")
    time.sleep(3)  # a Ping or two answered at the real time
    clock.step("-1h")
    time.sleep(0.5)
    os.kill(amisim.pid, signal.SIGSTOP)
    try:
        agent.wait_for(r"no answer to Ping", timeout=20, which="err")
    finally:
        os.kill(amisim.pid, signal.SIGCONT)
    # And the link comes back, on the backoff timer (monotonic too).
    agent.wait_for(r"no answer to Ping[\s\S]*ami: logged in", timeout=30, which="err")
    assert agent.alive


def test_clock_stepped_forward_gateway_keeps_its_clients(procs, tmp_path, site, kafka_bootstrap):
    """Forward one hour: an operator active a moment ago is not idle
    (idle_timeout 120 s) and a new connection still has its 5 s to
    authenticate. The token's expiry is wall time, so it is given a day."""
    clock = SteppedClock(tmp_path)
    conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    gateway = procs.start([build_path("callbus-gateway"), "-c", conf], name="gateway", env=clock.env)
    url = gateway.wait_for(r"gateway: listening on (https?://[0-9.]+:\d+)", timeout=60, which="err").group(1)
    token = operator_token(site, "op101", ttl=86400)
    c = GwClient(url, token)
    assert c.welcome["type"] == "welcome"
    unauthenticated = GwClient(url)
    clock.step("+1h")
    time.sleep(3.5)  # the 1 s sweep has run a few times since the step
    c.send({"type": "ping"})
    assert c.recv_until(lambda m: m["type"] == "pong", timeout=5)
    unauthenticated.send({"type": "auth", "token": token})
    assert unauthenticated.recv(timeout=5)["type"] == "welcome"
    assert "idle for" not in gateway.output("err") and "no auth within" not in gateway.output("err")
    c.close()
    unauthenticated.close()
