"""make bench: callbus-agent throughput from amisim (max speed) through the
agent into a real Kafka broker, with the agent's CPU and peak RSS, plus the
AMI parser alone. Prints every run and the median of RUNS runs."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
CAPTURE = ROOT / "tests/fixtures/ami-samples/01-inbound-queue-answered.ami"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LOOPS = int(os.environ.get("BENCH_LOOPS", "3000"))  # x 165 events per loop


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) ([0-9.e+-]+)$", text, re.M)}


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid):
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1))


def start_pair(bootstrap, work, tag, amisim_args, extra_conf=""):
    """amisim with amisim_args and an agent connected to it; returns
    (amisim, agent, http port, site)."""
    amisim = subprocess.Popen([BUILD / "amisim", "--listen", "127.0.0.1:0", *amisim_args],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r":(\d+)$", amisim.stdout.readline().strip()).group(1))
    http = free_port()
    site = tag + uuid.uuid4().hex[:8]
    conf = work / f"{site}.conf"
    conf.write_text(f"""site = "{site}"; state_dir = "{work / site}";
kafka = [ "bootstrap.servers={bootstrap}" ];
agent: {{ ami: {{ port = {port}; secret = "callbus"; }}; http: {{ listen = "127.0.0.1:{http}"; }}; }};
{extra_conf}
""")
    agent = subprocess.Popen([BUILD / "callbus-agent", "-c", conf], stderr=open(work / f"{site}.log", "w"))
    return amisim, agent, http, site


def end_to_end(bootstrap, work):
    amisim, agent, http, site = start_pair(bootstrap, work, "b", ["--replay", CAPTURE, "--max",
                                                                 "--loop", str(LOOPS)])
    try:
        for _ in range(100):
            try:
                m = metrics(http)
                break
            except OSError:
                time.sleep(0.1)
        # The clock starts when the first event arrives.
        while metrics(http)["callbus_agent_ami_events_total"] == 0:
            time.sleep(0.01)
        t0, cpu0 = time.monotonic(), cpu_seconds(agent.pid)
        # Done when every event read has been acknowledged by the broker and
        # amisim has had nothing more to send for a second.
        last, t_change, t_done = -1, time.monotonic(), None
        while True:
            m = metrics(http)
            now = time.monotonic()
            if m["callbus_agent_ami_events_total"] != last:
                last, t_change, t_done = m["callbus_agent_ami_events_total"], now, None
            done = (m["callbus_agent_kafka_delivered_total"] == m["callbus_agent_kafka_sent_total"]
                    and m["callbus_agent_spool_bytes"] == 0)
            if not done:
                t_done = None
            elif t_done is None:
                t_done = now
            if t_done and now - t_change > 1.0:
                break
            time.sleep(0.02)
        elapsed = t_done - t0
        cpu = cpu_seconds(agent.pid) - cpu0
        rss = peak_rss_kb(agent.pid)
        events = m["callbus_agent_ami_events_total"]
        msgs = m["callbus_agent_kafka_delivered_total"]
        return dict(events=events, messages=msgs, seconds=elapsed, events_per_s=events / elapsed,
                    cpu_pct=100 * cpu / elapsed, rss_mb=rss / 1024,
                    spooled=m["callbus_agent_spooled_total"])
    finally:
        agent.terminate()
        agent.wait(30)
        amisim.terminate()
        amisim.wait(10)


def command_latency(bootstrap, work, n=300, rate=50.0):
    """Produce -> the AMI action arriving at amisim, for pause/unpause
    commands at a steady rate. Both ends read this machine's clock."""
    import json
    from confluent_kafka import Producer
    stats = work / "cmd-stats.json"
    amisim, agent, http, site = start_pair(
        bootstrap, work, "c",
        ["--operators", "5", "--queues", "support", "--rate", "0", "--stats-file", stats,
         "--stats-interval", "0.5"],
        'commands: { operator_phone = "Local/%s@phones"; };')
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    topic = f"callbus.{site}.commands"
    sent = {}

    def send(i):
        now = time.time()
        cid = f"bench:{site}:{int(now)}:{i}"
        cmd = {"specversion": "1.0", "id": cid, "source": "callbus://bench", "sender": "bench",
               "type": "callbus.command." + ("pause" if i % 2 == 0 else "unpause"),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z",
               "expires": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 60)) + "Z",
               "data": {"operator_id": "op101"}}
        producer.produce(topic, key="op101", value=json.dumps(cmd))
        producer.poll(0)
        sent[f"cmd/{cid}"] = now
    try:
        time.sleep(6)  # consumer group join
        send(-1)       # warm-up, not measured
        producer.flush(10)
        time.sleep(2)
        sent.clear()
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send(i)
        producer.flush(10)
        time.sleep(3)
        by_id = json.loads(stats.read_text())["by_action_id"]
        lat = sorted((by_id[k]["first_at"] - t) * 1000 for k, t in sent.items() if k in by_id)
        return dict(n=len(lat), sent=len(sent), p50=lat[len(lat) // 2], p99=lat[int(len(lat) * 0.99) - 1],
                    max=lat[-1])
    finally:
        agent.terminate()
        agent.wait(30)
        amisim.terminate()
        amisim.wait(10)


def parser_alone():
    out = subprocess.run([BUILD / "bench_parser", ROOT / "tests/fixtures/ami-samples", "300"],
                         capture_output=True, text=True, check=True).stdout
    print(out, end="")
    rates = [float(x) for x in re.findall(r": ([0-9.]+) messages/s", out)]
    return statistics.median(rates)


def main():
    bootstrap = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="callbus-bench."))
    print(f"bench: Kafka at {bootstrap}; amisim --replay 01-inbound-queue-answered --max "
          f"--loop {LOOPS}; {RUNS} runs; logs in {work}")
    runs = []
    for i in range(RUNS):
        r = end_to_end(bootstrap, work)
        runs.append(r)
        print(f"end-to-end run {i + 1}: {r['events']:.0f} AMI events -> {r['messages']:.0f} Kafka "
              f"messages in {r['seconds']:.2f} s: {r['events_per_s']:.0f} events/s, agent CPU "
              f"{r['cpu_pct']:.0f}%, peak RSS {r['rss_mb']:.1f} MB, spooled {r['spooled']:.0f}")
    med = lambda k: statistics.median(r[k] for r in runs)
    lats = []
    for i in range(RUNS):
        r = command_latency(bootstrap, work)
        lats.append(r)
        print(f"command latency run {i + 1}: {r['n']}/{r['sent']} commands at 50/s, produce -> AMI action "
              f"at amisim: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms")
    parser = parser_alone()
    print()
    print(f"RESULT end-to-end (median of {RUNS}): {med('events_per_s'):.0f} AMI events/s into Kafka, "
          f"agent CPU {med('cpu_pct'):.0f}%, agent peak RSS {med('rss_mb'):.1f} MB")
    print(f"RESULT command latency (median of {RUNS}): p50 "
          f"{statistics.median(r['p50'] for r in lats):.2f} ms, p99 "
          f"{statistics.median(r['p99'] for r in lats):.2f} ms")
    print(f"RESULT parser alone (median of 5): {parser:.0f} messages/s")


if __name__ == "__main__":
    main()
