"""The agent's memory at full load (issue 14, goal 2): with the write-ahead
spool (the default) librdkafka's queue is kept small and the spool is the
buffer, so the agent's peak RSS stays under 20 MB while amisim replays a
capture as fast as the agent reads it; and everything is delivered."""

import time
from pathlib import Path

from callbus_harness import SAMPLES, metrics, start_agent, start_amisim, write_agent_conf
from conftest import wait_until

LOOPS = 1500  # x 166 messages: ~250,000 events, ~260 MB of Kafka messages


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_full_load_peak_rss_under_20_mb(procs, tmp_path, site, kafka_bootstrap):
    amisim, port = start_amisim(procs, "--replay", SAMPLES / "01-inbound-queue-answered.ami", "--max",
                                "--loop", str(LOOPS))
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port, ping_interval=3600)
    agent = start_agent(procs, conf)

    def delivered():
        m = metrics(http)
        done = (m["callbus_agent_ami_events_total"] >= LOOPS * 165
                and m["callbus_agent_kafka_delivered_total"] == m["callbus_agent_kafka_sent_total"]
                and m["callbus_agent_spool_bytes"] == 0)
        return done and m
    t0 = time.monotonic()
    m = wait_until(delivered, timeout=240, interval=0.2, what="every event delivered")
    hwm = peak_rss_kib(agent.pid)
    print(f"{m['callbus_agent_ami_events_total']:.0f} events, {m['callbus_agent_kafka_delivered_total']:.0f} "
          f"messages delivered in {time.monotonic() - t0:.1f} s, spooled {m['callbus_agent_spooled_total']:.0f}; "
          f"peak RSS {hwm / 1024:.1f} MiB")
    assert m["callbus_agent_dropped_total"] == 0 and m["callbus_agent_kafka_failed_total"] == 0
    assert hwm < 20 * 1024, f"peak RSS {hwm} KiB at full load"
