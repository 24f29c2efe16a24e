"""make bench: amisim's own throughput at 1,000 seats. Does the simulator keep
up with a working day at speed, so that what a benchmark measures is the
agent and the gateway and not amisim?

For each --speed: a day at 1,000 seats held at its peak rate (--profile 1.4
of --rate 10: 14 callers a second, real-time), read by one client as fast as
it can; after a warm-up, over BENCH_AMISIM_SECONDS: AMI events/s sent, events
per CPU-second of amisim, its CPU share, and how far its simulated clock
fell behind (sim_lag_max_s, from its stats file). Lag with amisim below
100 % CPU is the reader's or the machine's, not amisim's. Then the same
day with --max: events per CPU-second with no pacing at all."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
SECONDS = float(os.environ.get("BENCH_AMISIM_SECONDS", "15"))
SPEEDS = [s for s in os.environ.get("BENCH_AMISIM_SPEEDS", "50,100,200").split(",") if s]


def day(hours):
    return ["--simulate", "--day", str(hours), "--operators", "1000", "--queues", "support,sales",
            "--rate", "10", "--profile", "1.4", "--talk", "30-90", "--abandon", "2",
            "--patience", "40-240", "--rna", "3", "--seed", "1"]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    """amisim with a client that reads (and drops) everything it sends."""

    def __init__(self, stats, args):
        self.stats = stats
        self.proc = subprocess.Popen([BUILD / "amisim", "--listen", "127.0.0.1:0", "--stats-file", stats,
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(re.search(r":(\d+)$", self.proc.stdout.readline().strip()).group(1))
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.recv(100)
        self.sock.sendall(b"Action: Login\r\nUsername: callbus\r\nSecret: callbus\r\nEvents: on\r\n\r\n")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        buf = bytearray(4 << 20)
        try:
            while self.sock.recv_into(buf):
                pass
        except OSError:
            pass

    def snapshot(self):
        """(stats document, amisim CPU seconds, monotonic time), written on SIGUSR1."""
        before = self.stats.stat().st_mtime_ns if self.stats.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        while not self.stats.exists() or self.stats.stat().st_mtime_ns == before:
            time.sleep(0.02)
        time.sleep(0.05)
        return json.loads(self.stats.read_text()), cpu_seconds(self.proc.pid), time.monotonic()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.sock.close()


def paced(work, speed):
    run = Run(work / f"speed-{speed}.json", [*day(8), "--speed", speed])
    try:
        time.sleep(3)
        a, ca, ta = run.snapshot()
        time.sleep(SECONDS)
        b, cb, tb = run.snapshot()
    finally:
        run.stop()
    events, cpu = b["events_sent"] - a["events_sent"], cb - ca
    return dict(speed=speed, events_per_s=events / (tb - ta), per_cpu_s=events / max(cpu, 1e-6),
                cpu_pct=100 * cpu / (tb - ta), lag=b["sim_lag_max_s"], live=b["truth"]["live"])


def unpaced(work):
    stats = work / "max.json"
    t0 = os.times()
    run = Run(stats, [*day(0.5), "--max", "--exit-after"])
    run.proc.wait(600)
    t1 = os.times()
    cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    doc = json.loads(stats.read_text())
    run.sock.close()
    return doc["events_sent"], cpu


def main():
    work = Path(tempfile.mkdtemp(prefix="callbus-bench-amisim."))
    print(f"bench amisim: 1,000 seats, 2 queues, the day's peak (14 callers/s of simulated time); "
          f"{SECONDS:.0f} s per speed", flush=True)
    for speed in SPEEDS:
        r = paced(work, speed)
        print(f"  --speed {r['speed']:>4}: {r['events_per_s']:>9,.0f} AMI events/s, "
              f"{r['per_cpu_s']:>9,.0f} per amisim CPU-second, amisim CPU {r['cpu_pct']:3.0f} %, "
              f"clock behind by at most {r['lag']:.3f} s", flush=True)
    events, cpu = unpaced(work)
    print(f"  --max (half an hour of the day): {events:,} events, "
          f"{events / max(cpu, 1e-6):,.0f} per amisim CPU-second", flush=True)


if __name__ == "__main__":
    sys.exit(main())
