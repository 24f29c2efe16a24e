"""Two agents for one Asterisk (agent.standby): the leader dies (kill -9) or
is paused and wakes up again (SIGSTOP, SIGCONT: the zombie leader) under a
stream of calls and commands. The standby leads within 5 s, no command runs
twice (amisim's counts), the zombie publishes and executes nothing once
replaced, and the only hole in the event stream is inside the announced
gap."""

import json
import re
import signal
import threading
import time

import pytest
from confluent_kafka import Producer

from callbus_harness import by_command, messages, metrics, start_agent, start_amisim, write_agent_conf
from conftest import consume_all, free_port, producer_ids, wait_until
from schema_check import validate_message
from test_commands import COMMANDS_CONF, FINAL, command

STANDBY = "standby: { enabled = true; };"   # the defaults: takeover after 3 s
CALLS = 180   # 45 s of calls at 4 a second: the faults happen while they come
LEADING = r"leading now \(epoch (\d+)\)"


class Pair:
    """amisim with a call centre running, and two agents with one agent id."""

    def __init__(self, procs, tmp_path, site, bootstrap, amisim_args=(), calls=CALLS):
        self.procs, self.site, self.bootstrap = procs, site, bootstrap
        self.stats_file = tmp_path / "amisim-stats.json"
        self.amisim, port = start_amisim(
            procs, "--simulate", "--operators", "20", "--queues", "support", "--rate", "4",
            "--talk", "2-6", "--calls", str(calls), "--linger", "-1",
            "--stats-file", self.stats_file, "--stats-interval", "0.3", *amisim_args)
        conf_a, self.http_a = write_agent_conf(tmp_path, site, bootstrap, port, top_extra=COMMANDS_CONF,
                                               agent_extra=STANDBY)
        # The same agent id on another host: its own state directory and port.
        self.http_b = free_port()
        text = conf_a.read_text().replace("agent1-state", "agent1b-state").replace(
            f"127.0.0.1:{self.http_a}", f"127.0.0.1:{self.http_b}")
        conf_b = tmp_path / "agent1b.conf"
        conf_b.write_text(text)
        self.a = start_agent(procs, conf_a, name="agent-a")
        self.epoch_a = int(self.a.wait_for(LEADING, timeout=30, which="err").group(1))
        self.b = start_agent(procs, conf_b, name="agent-b")
        self.b.wait_for(r"standby: instance \S+ leads \(epoch %d\)" % self.epoch_a, timeout=30, which="err")
        self.sent = []
        self._stop = threading.Event()
        self._thread = None

    def stream_commands(self, per_second=10):
        """pause/unpause commands for op101..op120 until stop_commands()."""
        def run():
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
            n = 0
            while not self._stop.is_set():
                c = command("pause" if n % 2 == 0 else "unpause", {"operator_id": f"op1{n % 20 + 1:02d}"},
                            expires_in=60)
                producer.produce(self.site.topic("commands"), key=c["subject"], value=json.dumps(c))
                producer.flush(10)
                self.sent.append((time.time(), c["id"]))
                n += 1
                time.sleep(1.0 / per_second)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_commands(self):
        self._stop.set()
        self._thread.join(30)

    def stats(self):
        return json.loads(self.stats_file.read_text())

    def executions(self):
        return by_command(json.loads(self.stats_file.read_text()))

    def results(self):
        by = {}
        for r in messages(self.bootstrap, self.site.topic("results"), timeout=20, idle=1.0):
            by.setdefault(r["data"]["command_id"], []).append(r["data"]["status"])
        return by

    def takeover_gap(self, old_epoch):
        """The gap the standby announced when it took over from old_epoch's leader."""
        gaps = [m for m in messages(self.bootstrap, self.site.topic("status"), timeout=20, idle=1.0)
                if m["type"] == "callbus.agent.gap" and m["data"]["reason"] == "leader_takeover"
                and m["epoch"] > old_epoch]
        assert len(gaps) == 1, gaps
        assert not validate_message({k: v for k, v in gaps[0].items() if not k.startswith("_")})
        return gaps[0]


def rfc(t):
    from datetime import datetime
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def check_after_takeover(pair, t_fault, old_epoch):
    """What must hold once the standby leads, whatever happened to the leader."""
    pair.stop_commands()
    t_last = pair.sent[-1][0]
    # Every command sent after the takeover is answered, and so is every
    # one the old leader accepted and never finished (the new leader fails
    # it: outcome unknown).
    by = wait_until(lambda: (lambda r: r if all(FINAL & set(r.get(c, [])) for t, c in pair.sent
                                                 if t > t_fault + 6) else None)(pair.results()),
                    timeout=60, interval=1, what="results for the commands sent after the takeover")
    unanswered = {c: st for c, st in by.items() if "accepted" in st and not FINAL & set(st)}
    assert not unanswered, f"accepted and never answered: {unanswered}"
    ran = pair.executions()
    twice = {c: v for c, v in ran.items() if v["count"] > 1}
    assert not twice, f"executed more than once: {twice}"
    for t, c in pair.sent:
        if "succeeded" in by.get(c, []):
            assert ran.get(c, {}).get("count") == 1, (c, by[c])
    after = [c for t, c in pair.sent if t > t_fault + 6]
    assert len(after) >= 20 and all("succeeded" in by[c] for c in after), \
        [(c, by.get(c)) for c in after if "succeeded" not in by.get(c, [])]
    gap = pair.takeover_gap(old_epoch)
    g_from, g_to = rfc(gap["data"]["from"]), rfc(gap["data"]["to"])
    assert g_from <= t_fault + 0.1 and g_from > t_fault - 3 and g_to >= t_fault + 2, (gap, t_fault)
    assert f"(epoch {old_epoch})" in gap["data"]["detail"]
    # The raw AMI stream has no hole outside the gap: calls arrive four a
    # second, each with many events, so a second without one is a loss.
    times = sorted(rfc(m["time"]) for m in messages(pair.bootstrap, pair.site.topic("ami"), timeout=30,
                                                     idle=2.0))
    holes = [(a, b) for a, b in zip(times, times[1:]) if b - a > 1.0 and b < t_last]
    outside = [(a, b) for a, b in holes if a < g_from - 0.5 or b > g_to + 0.5]
    assert not outside, (outside, g_from, g_to)
    # The live state is right again: once amisim's last call has ended, no
    # call is left live in state.calls, also none that ended while nobody
    # led (its end is in the gap, its tombstone must not be).
    wait_until(lambda: pair.stats()["truth"]["over"], timeout=120, interval=1, what="amisim's calls to end")
    def live_calls():
        latest = {}
        for r in consume_all(pair.bootstrap, pair.site.topic("state.calls"), timeout=20, idle=1.0):
            latest[r.key] = r.value
        return sorted(k.decode() for k, v in latest.items() if v is not None)
    deadline = time.monotonic() + 30
    left = live_calls()
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = live_calls()
    assert not left, f"{len(left)} calls still live in state.calls after every call ended: {left[:10]}"
    return by, gap


def test_kill9_of_the_leader_the_standby_takes_over(procs, tmp_path, site, kafka_bootstrap):
    pair = Pair(procs, tmp_path, site, kafka_bootstrap)
    pair.stream_commands()
    time.sleep(4)
    t_kill = time.time()
    pair.a.stop(sig=signal.SIGKILL)
    pair.b.wait_for(LEADING, timeout=10, which="err")
    took = time.time() - t_kill
    assert took <= 5.0, f"the standby led {took:.1f} s after the kill"
    time.sleep(8)
    by, gap = check_after_takeover(pair, t_kill, pair.epoch_a)
    m = metrics(pair.http_b)
    assert m["callbus_agent_leader"] == 1 and m["callbus_agent_takeovers_total"] == 1
    leases = messages(kafka_bootstrap, site.topic("leases"), timeout=20, idle=1.0)
    assert {l["data"]["epoch"] for l in leases} >= {pair.epoch_a, gap["epoch"]}
    for lease in leases[:3] + leases[-3:]:
        assert not validate_message({k: v for k, v in lease.items() if not k.startswith("_")})
    # With a standby every topic is written in the one transaction, so by the
    # one transactional producer (no connection of their own for the state
    # topics and results, test_commands.py): the same producer id.
    ami = producer_ids(kafka_bootstrap, site.topic("ami"))
    assert len(ami) == 1, ami
    assert producer_ids(kafka_bootstrap, site.topic("state.calls")) == ami
    assert producer_ids(kafka_bootstrap, site.topic("results")) == ami
    print(f"kill -9: the standby led after {took:.2f} s; gap {gap['data']['from']} .. {gap['data']['to']}; "
          f"{len(pair.sent)} commands, none executed twice")


def test_a_paused_leader_is_fenced_when_it_wakes_up(procs, tmp_path, site, kafka_bootstrap):
    pair = Pair(procs, tmp_path, site, kafka_bootstrap)
    pair.stream_commands()
    time.sleep(4)
    t_stop = time.time()
    pair.a.send_signal(signal.SIGSTOP)
    try:
        pair.b.wait_for(LEADING, timeout=10, which="err")
        took = time.time() - t_stop
        assert took <= 5.0, f"the standby led {took:.1f} s after the leader stopped"
        time.sleep(3)
    finally:
        t_cont = time.time()
        pair.a.send_signal(signal.SIGCONT)
    # The zombie learns it was replaced and leaves, for its service manager
    # to start it again as the standby.
    assert pair.a.wait(timeout=30) == 3
    assert re.search(r"fenced", pair.a.output("err"))
    time.sleep(5)
    by, gap = check_after_takeover(pair, t_stop, pair.epoch_a)
    # Nothing from the zombie is visible after the takeover: every message of
    # its epoch is older than the gap's end.
    for kind in ("ami", "calls", "operators", "results", "status"):
        late = [m for m in messages(kafka_bootstrap, site.topic(kind), timeout=20, idle=1.0)
                if m.get("epoch") == pair.epoch_a and rfc(m["time"]) > rfc(gap["data"]["to"])]
        assert not late, (kind, late[:3])
    m = metrics(pair.http_b)
    assert m["callbus_agent_leader"] == 1
    print(f"SIGSTOP: the standby led after {took:.2f} s; the zombie woke {t_cont - t_stop:.1f} s after "
          f"its stop and exited fenced; {len(pair.sent)} commands, none executed twice")


def test_a_command_the_dead_leader_accepted_is_answered_by_the_new_one(procs, tmp_path, site, kafka_bootstrap):
    """The leader commits an originate's `accepted` and sends the action;
    the operator's phone rings (amisim --no-answer: 30 s, the Originate's
    timeout) and the leader dies before Asterisk answers. The new leader's
    journal never saw the command; the results topic did: the new leader
    gives it `failed` (outcome unknown, not retried), once, and the action
    ran once."""
    pair = Pair(procs, tmp_path, site, kafka_bootstrap, amisim_args=("--no-answer", "op103"), calls=8)
    c = command("originate", {"operator_id": "op103", "number": "5552001"}, expires_in=120)
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(site.topic("commands"), key=c["subject"], value=json.dumps(c))
    p.flush(10)
    wait_until(lambda: "accepted" in pair.results().get(c["id"], []), timeout=30, interval=0.5,
               what="the leader to accept the originate")
    assert pair.executions().get(c["id"], {}).get("count") == 1
    pair.a.stop(sig=signal.SIGKILL)
    pair.b.wait_for(LEADING, timeout=10, which="err")
    statuses = wait_until(lambda: (lambda st: st if FINAL & set(st) else None)(pair.results().get(c["id"], [])),
                          timeout=30, interval=0.5, what="a final result for the originate")
    assert statuses == ["accepted", "failed"], statuses
    failed = [r for r in messages(kafka_bootstrap, site.topic("results"), timeout=20, idle=1.0)
              if r["data"]["command_id"] == c["id"] and r["data"]["status"] == "failed"]
    assert len(failed) == 1 and "outcome unknown, not retried" in failed[0]["data"]["reason"], failed
    assert failed[0]["data"]["command_type"] == c["type"] and failed[0]["data"].get("sender") == c["sender"]
    assert not validate_message({k: v for k, v in failed[0].items() if not k.startswith("_")})
    time.sleep(2)
    assert pair.executions()[c["id"]]["count"] == 1
    assert re.search(r"1 accepted by the instance leading before and never answered", pair.b.output("err"))


@pytest.mark.sanitizer
def test_a_clean_stop_hands_over_at_once(procs, tmp_path, site, kafka_bootstrap):
    """SIGTERM of the leader (an upgrade, one host at a time): its last lease
    says it is released, so the standby leads without waiting for it to
    lapse."""
    pair = Pair(procs, tmp_path, site, kafka_bootstrap)
    t_stop = time.time()
    assert pair.a.stop() == 0
    pair.b.wait_for(LEADING, timeout=10, which="err")
    took = time.time() - t_stop
    assert took < 2.5, f"the standby waited {took:.1f} s after a clean stop"
