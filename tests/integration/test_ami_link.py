"""The agent's AMI link state is one state machine: however the link drops
(right after login, while the resync is being sent, then refused
reconnects), everyone in the agent sees it down, so commands wait in Kafka
instead of failing, and run once Asterisk is back."""

import time

from callbus_harness import messages, metrics, restart_amisim
from conftest import wait_until
from test_commands import Bench


def link_statuses(bench):
    return [e["data"]["reason"] for e in messages(bench.bootstrap, bench.site.topic("status"), idle=0.5)
            if e["type"] == "callbus.agent.status" and e["data"]["reason"] in ("ami_up", "ami_down")]


def test_drop_right_after_login_then_refused_reconnects(procs, tmp_path, site, kafka_bootstrap):
    # amisim answers the Login, then resets the connection and exits: the
    # agent's resync actions, sent while it handles the Login reply, fail,
    # and every reconnect is refused.
    bench = Bench(procs, tmp_path, site, kafka_bootstrap,
                  amisim_args=("--drop-after-login", "1", "--exit-after"))
    bench.amisim.wait(timeout=10)
    bench.agent.wait_for(r"ami: 127\.0\.0\.1:\d+: Connection refused", timeout=10, which="err")
    wait_until(lambda: metrics(bench.http)["callbus_agent_ami_up"] == 0, timeout=10, what="AMI down")
    cid = bench.send("originate", {"operator_id": "op101", "number": "5556001"}, expires_in=60)
    # The command waits in Kafka while AMI is away: no result at all yet.
    time.sleep(3)
    assert [r for r in bench.results() if r["data"]["command_id"] == cid] == []
    restart_amisim(procs, bench.port, "--operators", "5", "--queues", "support,sales:dynamic", "--rate", "0",
                   "--stats-file", bench.stats_file, "--stats-interval", "0.3")
    assert bench.statuses(cid, timeout=30) == ["accepted", "succeeded"]
    assert bench.executed(cid) == 1
    # up and down strictly alternate, ending up.
    st = link_statuses(bench)
    assert st and st[-1] == "ami_up"
    assert all(a != b for a, b in zip(st, st[1:])), st


def test_repeated_drops_right_after_login(procs, tmp_path, site, kafka_bootstrap):
    """Five sessions cut right after login, one after the other: five ups and
    five downs, in turn, then the link stays up and commands run."""
    bench = Bench(procs, tmp_path, site, kafka_bootstrap, amisim_args=("--drop-after-login", "5"))
    bench.amisim.wait_for(r"client 6 logged in", timeout=30)
    wait_until(lambda: metrics(bench.http)["callbus_agent_ami_up"] == 1, timeout=10, what="AMI up")
    cid = bench.send("pause", {"operator_id": "op101", "reason": "Break"})
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    st = wait_until(lambda: (lambda s: s if s.count("ami_up") == 6 else None)(link_statuses(bench)),
                    timeout=10, what="six ami_up statuses")
    assert st == ["ami_up", "ami_down"] * 5 + ["ami_up"], st
