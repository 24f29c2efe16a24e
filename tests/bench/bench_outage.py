"""The agent's memory through a broker outage (issue 14, goal 2): a private
broker (it is stopped, so never the shared one), a call-centre simulation
into the agent, the broker stopped for BENCH_OUTAGE_S seconds while the
events go on, then started again. Prints the agent's peak RSS before, during
and after the outage, what the spool held, the drain time, and whether
every event arrived: the ami topic's seq from 1 without a gap or a
duplicate, as many as amisim sent events and replies.

Usage: bench_outage.py   (make bench runs it)
    BENCH_OUTAGE_S=30 BENCH_OUTAGE_RATE=60 (amisim calls/s; ~50 AMI events a
    call) BENCH_OUTAGE_CALLS=3500 BENCH_AGENT_KAFKA="name=value,..." (as bench.py)"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BUILD, metrics, peak_rss_kb, start_pair

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import consume_all  # noqa: E402

KAFKA_SH = ROOT / "tests/kafka/kafka.sh"
OUTAGE_S = float(os.environ.get("BENCH_OUTAGE_S", "30"))
RATE = float(os.environ.get("BENCH_OUTAGE_RATE", "60"))
CALLS = int(os.environ.get("BENCH_OUTAGE_CALLS", "3500"))


def rss_kb(pid):
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")))


def wait_drained(http, amisim, timeout=300):
    """Until amisim has ended its calls and the agent has delivered all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = metrics(http)
        if (amisim.poll() is not None and m["callbus_agent_spool_bytes"] == 0
                and m["callbus_agent_kafka_delivered_total"] == m["callbus_agent_kafka_sent_total"]):
            return m
        time.sleep(0.2)
    raise RuntimeError("the agent did not drain")


def run(work):
    kdir = work / "kafka"
    bootstrap = subprocess.run([KAFKA_SH, "start", kdir], capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
    stats = work / "amisim-stats.json"
    amisim, agent, http, site = start_pair(
        bootstrap, work, "o",
        ["--simulate", "--operators", "500", "--queues", "support", "--rate", str(RATE), "--talk", "1-3",
         "--calls", str(CALLS), "--seed", "7", "--abandon", "0", "--linger", "0", "--exit-after",
         "--stats-file", stats, "--writetimeout", "100"])
    try:
        time.sleep(10)
        before = peak_rss_kb(agent.pid)
        ev0 = metrics(http)["callbus_agent_ami_events_total"]
        subprocess.run([KAFKA_SH, "stop", kdir], check=True, capture_output=True)
        t_down = time.monotonic()
        rss_max, spool_max = 0, 0
        while time.monotonic() - t_down < OUTAGE_S:
            m = metrics(http)
            rss_max = max(rss_max, rss_kb(agent.pid))
            spool_max = max(spool_max, m["callbus_agent_spool_bytes"])
            time.sleep(0.2)
        during = peak_rss_kb(agent.pid)
        m = metrics(http)
        ev_outage = m["callbus_agent_ami_events_total"] - ev0
        subprocess.run([KAFKA_SH, "start", kdir], check=True, capture_output=True)
        t_up = time.monotonic()
        outage = t_up - t_down
        m = wait_drained(http, amisim)
        drained_s = time.monotonic() - t_up
        after = peak_rss_kb(agent.pid)
        sent = json.loads(stats.read_text())
        [session] = sent["sessions"].values()
        seqs = [json.loads(r.value)["seq"] for r in consume_all(bootstrap, f"callbus.{site}.ami", timeout=120,
                                                                   idle=3)]
        complete = sorted(seqs) == list(range(1, len(seqs) + 1))
        return dict(outage=outage, events=m["callbus_agent_ami_events_total"], ev_outage=ev_outage,
                    spool_mb=spool_max / 2**20, before=before / 1024, during=during / 1024,
                    after=after / 1024, drained_s=drained_s, ami=len(seqs), distinct=len(set(seqs)),
                    complete=complete, amisim_events=session["events"],
                    dropped=m["callbus_agent_dropped_total"], failed=m["callbus_agent_kafka_failed_total"])
    finally:
        agent.terminate()
        agent.wait(30)
        amisim.terminate()
        amisim.wait(10)
        subprocess.run([KAFKA_SH, "stop", kdir], capture_output=True)


def main():
    with tempfile.TemporaryDirectory(prefix="callbus-outage.") as d:
        r = run(Path(d))
    print(f"RESULT broker outage: {r['outage']:.1f} s down under {r['ev_outage'] / r['outage']:.0f} AMI events/s "
          f"({r['ev_outage']:.0f} events during it), spool up to {r['spool_mb']:.1f} MB; agent peak RSS "
          f"{r['before']:.1f} MB before, {r['during']:.1f} MB at the end of the outage, {r['after']:.1f} MB "
          f"after the drain ({r['drained_s']:.1f} s); ami topic {r['ami']} records, {r['distinct']} distinct seqs, "
          f"{'1..N without a gap' if r['complete'] else 'WITH GAPS'}; amisim sent {r['amisim_events']} events; "
          f"dropped {r['dropped']:.0f}, failed {r['failed']:.0f}", flush=True)
    return 0 if r["complete"] and r["ami"] == r["distinct"] and not r["dropped"] else 1


if __name__ == "__main__":
    sys.exit(main())
