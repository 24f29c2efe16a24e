#!/usr/bin/env python3
"""Standby takeover (agent.standby): how long after the leader dies (kill -9)
or stops cleanly (SIGTERM) the standby leads, with a call centre running.

    python3 tests/bench/bench_takeover.py BOOTSTRAP [RUNS]

Two agents with one agent id serve one amisim (4 calls/s); the time is from
the signal to the standby's "leading now" log line. Default
agent.standby.takeover_ms (3000); median of RUNS (3) runs of each."""

import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BUILD, start_pair

LEADING = re.compile(r"leading now")


def wait_log(path, rx, since, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")[since:]
        if rx.search(text):
            return time.time()
        time.sleep(0.01)
    raise RuntimeError(f"no /{rx.pattern}/ in {path} within {timeout} s")


def one_run(bootstrap, work, sig):
    amisim, a, http, site = start_pair(bootstrap, work, "t", ["--simulate", "--operators", "20", "--rate", "4",
                                                            "--talk", "2-6"],
                                       agent_conf="standby: { enabled = true; };")
    log_a = work / f"{site}.log"
    conf_b = work / f"{site}b.conf"
    conf_b.write_text((work / f"{site}.conf").read_text().replace(f'state_dir = "{work / site}"',
                                                                   f'state_dir = "{work / site}b"')
                      .replace(f"listen = \"127.0.0.1:{http}\"", 'listen = ""'))
    log_b = work / f"{site}b.log"
    b = None
    try:
        wait_log(log_a, LEADING, 0)
        b = subprocess.Popen([BUILD / "callbus-agent", "-c", conf_b], stderr=open(log_b, "w"))
        wait_log(log_b, re.compile(r"standby: instance \S+ leads"), 0)
        time.sleep(2)
        since = log_b.stat().st_size
        t0 = time.time()
        a.send_signal(sig)
        return wait_log(log_b, LEADING, since) - t0
    finally:
        for p in (a, b, amisim):
            if p and p.poll() is None:
                p.kill()
                p.wait()


def main():
    bootstrap = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="callbus-bench-takeover.") as d:
        work = Path(d)
        for name, sig in (("kill -9 of the leader", signal.SIGKILL), ("SIGTERM of the leader", signal.SIGTERM)):
            times = [one_run(bootstrap, work, sig) for _ in range(runs)]
            print(f"standby takeover after {name}: median {statistics.median(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)}; agent.standby.takeover_ms 3000)")


if __name__ == "__main__":
    main()
