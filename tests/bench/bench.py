"""make bench: callbus-agent throughput from amisim (max speed) through the
agent into a real Kafka broker, with the agent's CPU and peak RSS, plus the
AMI parser alone. Prints every run and the median of RUNS runs.

First, on the fresh broker, the command latency: a warm-up run of
BENCH_CMD_WARM_UP commands (6000: 2 minutes), then max(5, RUNS) runs of 300
commands at 50/s, every run an agent restarted on the same site's topics,
while amisim makes BENCH_CMD_AMI_RATE calls/s (14: ~2,200 AMI events/s)
through the same agent.

Next to it, in the same run and interleaved run by run: kcat producing the
same AMI events raw (one message each, keyed like the agent's) into the same
broker with the agent's producer guarantees, and the agent with its
write-ahead spool off, as configured (librdkafka's 128 MiB queue) and at
the queue bound write-ahead on uses (so the write-ahead's own cost shows
apart from the memory bound's); printed as a table of events/s and ratios
to kcat.

Usage: bench.py BOOTSTRAP [end_to_end|command_latency]   (only the table, or
only the command-latency runs)
BENCH_PERF=FILE records the first write-ahead-on agent run with perf.
BENCH_AGENT_KAFKA="name=value,..." adds librdkafka properties to the agents'.
BENCH_STAGES=1 splits the command latency by stage (the broker's append
time, the agent's wake-up, its durable decision, the action sent; from the
agent's debug log, the commands topic set to LogAppendTime, 1 ms steps).

The command latency's anchor, in the same runs: every command is followed
by a message to an echo topic that a plain consumer reads back (Kafka's own
produce -> consume on this machine and broker at that moment). A command
cannot arrive sooner than its echo; what the agent adds is the gap."""

import os
import signal
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
sys.path.insert(0, str(ROOT / "tests"))
from ports import free_port  # noqa: E402  (bench_day.py imports it from here too)

BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
CAPTURE = ROOT / "tests/fixtures/ami-samples/01-inbound-queue-answered.ami"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LOOPS = int(os.environ.get("BENCH_LOOPS", "3000"))  # x 165 events per loop
KCAT = os.environ.get("KCAT", "/usr/bin/kcat")
# The agent's own producer defaults (agent/publisher.c build_conf) that make
# its guarantees, and the partitions it creates its topics with (agent.c).
PRODUCER_GUARANTEES = {"enable.idempotence": "true", "acks": "all", "compression.type": "lz4",
                       "linger.ms": "0"}
AGENT_PARTITIONS = 6
WRITE_AHEAD_OFF = "spool: { write_ahead = false; };"
# Write-ahead on bounds librdkafka's queue (agent/publisher.c build_conf);
# off keeps librdkafka's 128 MiB. Off at on's bound too, so that the table
# shows what writing ahead costs apart from what the memory bound costs.
ON_QUEUE_BOUND = ("queue.buffering.max.kbytes=3072", "batch.size=262144")
# BENCH_AGENT_KAFKA="name=value,name=value" (as bench_gateway.py): librdkafka
# properties added to the agents' kafka list, overriding their defaults as a
# site's own would.
KAFKA_EXTRA = [p for p in os.environ.get("BENCH_AGENT_KAFKA", "").split(",") if p]
STAGES = os.environ.get("BENCH_STAGES") == "1"
# Calls/s amisim makes while the command latency is measured (14: ~2,000 AMI
# events/s, issue 14's rate), so commands share the agent with its stream.
CMD_AMI_RATE = float(os.environ.get("BENCH_CMD_AMI_RATE", "14"))
# Issue 14 asks for the command p99 stable over at least 5 runs.
CMD_RUNS = max(5, RUNS)
# Commands of the warm-up run (at 50/s), which the broker's JIT needs.
CMD_WARM_UP = int(os.environ.get("BENCH_CMD_WARM_UP", "6000"))
# Cumulative from produce(): (column, label of the stage that ends there).
STAGE_COLUMNS = [("append", "produce -> broker append"), ("woken", "append -> agent woken"),
                 ("durable", "woken -> decision durable"), ("sent", "durable -> action sent"),
                 ("total", "sent -> amisim")]


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) ([0-9.e+-]+)$", text, re.M)}


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid):
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1))


def start_pair(bootstrap, work, tag, amisim_args, extra_conf="", agent_conf="", site=None, kafka_extra=()):
    """amisim with amisim_args and an agent connected to it; returns
    (amisim, agent, http port, site). agent_conf goes inside agent: { },
    kafka_extra after BENCH_AGENT_KAFKA's properties. A new site (so new
    topics) unless one is given."""
    amisim = subprocess.Popen([BUILD / "amisim", "--listen", "127.0.0.1:0", *amisim_args],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r":(\d+)$", amisim.stdout.readline().strip()).group(1))
    http = free_port()
    site = site or tag + uuid.uuid4().hex[:8]
    conf = work / f"{site}.conf"
    kafka = "".join(f', "{prop}"' for prop in (*KAFKA_EXTRA, *kafka_extra))
    conf.write_text(f"""site = "{site}"; state_dir = "{work / site}";
kafka = [ "bootstrap.servers={bootstrap}"{kafka} ];
agent: {{ ami: {{ port = {port}; secret = "callbus"; }}; http: {{ listen = "127.0.0.1:{http}"; }}; {agent_conf} }};
{extra_conf}
""")
    agent = subprocess.Popen([BUILD / "callbus-agent", "-c", conf], stderr=open(work / f"{site}.log", "w"))
    return amisim, agent, http, site


def end_to_end(bootstrap, work, agent_conf="", perf_file=None, kafka_extra=()):
    amisim, agent, http, site = start_pair(bootstrap, work, "b", ["--replay", CAPTURE, "--max",
                                                                 "--loop", str(LOOPS)], agent_conf=agent_conf,
                                           kafka_extra=kafka_extra)
    perf = None
    if perf_file:
        perf = subprocess.Popen(["perf", "record", "-g", "-o", perf_file, "-p", str(agent.pid)],
                                stdout=subprocess.DEVNULL, stderr=open(work / "perf.log", "w"))
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
                    cpu_pct=100 * cpu / elapsed, rss_mb=rss / 1024, us_per_event=1e6 * cpu / events,
                    spooled=m["callbus_agent_spooled_total"], load=os.getloadavg()[0])
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        agent.terminate()
        agent.wait(30)
        amisim.terminate()
        amisim.wait(10)


def capture_events():
    """The capture's messages as amisim --replay sends them on each round
    (tools/amisim/replay.c: no banner, login response, FullyBooted right
    after it or Logoff reply), each with the agent's key: Linkedid, else
    Uniqueid."""
    data = CAPTURE.read_bytes()
    if data.startswith(b"Asterisk Call Manager"):
        data = data.split(b"\r\n", 1)[1]
    msgs = [m.strip(b"\r\n") + b"\r\n\r\n" for m in re.split(rb"(?:\r\n){2,}", data) if m.strip(b"\r\n")]
    if msgs and msgs[0].startswith(b"Response:"):
        msgs.pop(0)
    if msgs and msgs[0].startswith(b"Event: FullyBooted") and b"\r\nTimestamp:" not in msgs[0]:
        msgs.pop(0)
    if msgs and msgs[-1].startswith(b"Response: Goodbye"):
        msgs.pop()
    out = []
    for m in msgs:
        k = re.search(rb"\r\nLinkedid: ([^\r]+)", m) or re.search(rb"\r\nUniqueid: ([^\r]+)", m)
        key = k.group(1) if k and k.group(1) != b"<unknown>" else b""
        out.append((key, m))
    return out


def kcat_input(work, loops=LOOPS):
    """loops rounds of the capture's events as kcat -P input: key \\x1f
    message \\x1e (neither byte is in the capture)."""
    path = work / f"kcat-input-{loops}.bin"
    one = b"".join(k + b"\x1f" + m + b"\x1e" for k, m in capture_events())
    path.write_bytes(one * loops)
    return path, len(capture_events()) * loops


def kcat_produce(bootstrap, work, path, n):
    """kcat producing the raw events into a fresh topic with the agent's
    partitions and guarantees; the clock covers the whole kcat process
    (connect and metadata included, which counts against kcat)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "bench.kcat." + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, AGENT_PARTITIONS, 1)])[topic].result(30)
    conf = [a for k, v in PRODUCER_GUARANTEES.items() for a in ("-X", f"{k}={v}")]
    t0 = time.monotonic()
    kcat = subprocess.Popen([KCAT, "-P", "-b", bootstrap, "-t", topic, "-K", "\\x1f", "-D", "\\x1e",
                             *conf, "-l", str(path)], stderr=subprocess.PIPE)
    _, status, ru = os.wait4(kcat.pid, 0)
    elapsed = time.monotonic() - t0
    kcat.returncode = os.waitstatus_to_exitcode(status)
    err = kcat.stderr.read().decode(errors="replace")
    if kcat.returncode != 0:
        raise RuntimeError(f"kcat failed ({kcat.returncode}): {err}")
    return dict(events=n, seconds=elapsed, events_per_s=n / elapsed,
                cpu_pct=100 * (ru.ru_utime + ru.ru_stime) / elapsed,
                us_per_event=1e6 * (ru.ru_utime + ru.ru_stime) / n, rss_mb=ru.ru_maxrss / 1024,
                load=os.getloadavg()[0])


def e2e_line(label, i, r):
    return (f"{label} {i + 1}: {r['events']:.0f} AMI events -> {r['messages']:.0f} Kafka "
            f"messages in {r['seconds']:.2f} s: {r['events_per_s']:.0f} events/s, agent CPU "
            f"{r['cpu_pct']:.0f}%, peak RSS {r['rss_mb']:.1f} MB, spooled {r['spooled']:.0f}, "
            f"load {r['load']:.1f}")


def throughput_runs(bootstrap, work):
    """RUNS rounds of: the agent with write-ahead on (the default), kcat, the
    agent with write-ahead off, and off at on's queue bound; interleaved so
    that the machine's load, shared with other work, falls on all alike."""
    path, n = kcat_input(work)
    # kcat's clock includes its start, connect and metadata, the agent's
    # does not (it starts at the first AMI event): shown as one round's time.
    small, n_small = kcat_input(work, 1)
    k = kcat_produce(bootstrap, work, small, n_small)
    print(f"kcat fixed cost: one round ({n_small} events) takes {k['seconds']:.3f} s", flush=True)
    ons, kcats, offs, bounded = [], [], [], []
    for i in range(RUNS):
        r = end_to_end(bootstrap, work, perf_file=os.environ.get("BENCH_PERF") if i == 0 else None)
        ons.append(r)
        print(e2e_line("end-to-end run", i, r), flush=True)
        k = kcat_produce(bootstrap, work, path, n)
        kcats.append(k)
        print(f"kcat run {i + 1}: {n} raw AMI events -> {n} Kafka messages in {k['seconds']:.2f} s: "
              f"{k['events_per_s']:.0f} events/s, kcat CPU {k['cpu_pct']:.0f}%, "
              f"peak RSS {k['rss_mb']:.1f} MB, load {k['load']:.1f}", flush=True)
        r = end_to_end(bootstrap, work, agent_conf=WRITE_AHEAD_OFF)
        offs.append(r)
        print(e2e_line("end-to-end write-ahead off run", i, r), flush=True)
        r = end_to_end(bootstrap, work, agent_conf=WRITE_AHEAD_OFF, kafka_extra=ON_QUEUE_BOUND)
        bounded.append(r)
        print(e2e_line("end-to-end write-ahead off, on's queue bound, run", i, r), flush=True)
    return ons, kcats, offs, bounded


def print_table(kcats, ons, offs, bounded):
    med = lambda runs, k: statistics.median(r[k] for r in runs)
    # Ratios run by run (each against the kcat run next to it), then the median.
    ratio = lambda runs: statistics.median(r["events_per_s"] / k["events_per_s"] for r, k in zip(runs, kcats))
    print()
    print(f"RESULT agent vs kcat (median of {RUNS}, interleaved; load average "
          f"{min(r['load'] for r in kcats + ons + offs + bounded):.1f}-"
          f"{max(r['load'] for r in kcats + ons + offs + bounded):.1f}):")
    print(f"  {'producer':<28} {'events/s':>10} {'x kcat':>7} {'CPU us/event':>13} {'peak RSS MB':>12}")
    for name, runs in (("kcat (raw AMI events)", kcats), ("agent, write-ahead on", ons),
                       ("agent, write-ahead off", offs), ("  off, at on's queue bound", bounded)):
        print(f"  {name:<28} {med(runs, 'events_per_s'):>10.0f} {ratio(runs):>7.2f} "
              f"{med(runs, 'us_per_event'):>13.2f} {med(runs, 'rss_mb'):>12.1f}")
    cost = lambda base: 100 * (1 - med(ons, 'events_per_s') / med(base, 'events_per_s'))
    print(f"  write-ahead cost: {cost(offs):.0f}% of events/s against off as configured (128 MiB queue), "
          f"{cost(bounded):.0f}% against off at on's queue bound")


class KafkaEcho:
    """A latency anchor: Kafka's own produce -> consume on this machine and
    broker, in the same run as what it anchors. Messages to a one-partition
    topic (ping(), or pinging() at a steady rate from a thread) are read
    back by a librdkafka consumer in a thread, as the agent reads its
    commands and the gateway its topics: a consumer woken by the fetch,
    nothing else in its way. bench_gateway.py uses it too."""

    def __init__(self, bootstrap, topic):
        import threading
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition, OFFSET_BEGINNING
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            try:
                f.result(10)
            except KafkaException as e:   # a run before this one made it
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        self.bootstrap, self.topic = bootstrap, topic
        self.sent, self.arrived = {}, {}
        self.producer = None
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-echo",
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.running, self.pinger = True, None
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        while self.running:
            m = self.consumer.poll(0.1)
            if m is not None and not m.error():
                self.arrived[m.value().decode()] = time.time()

    def ping(self, producer, key):
        self.sent[key] = time.time()
        producer.produce(self.topic, value=key)
        producer.poll(0)

    def pinging(self, rate):
        """Pings at rate per second from a thread of its own until close()."""
        import threading
        from confluent_kafka import Producer
        self.producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0, "acks": "all"})
        # The consumer's first fetch, and the producer's first connection, are
        # not what is measured: one ping through first.
        self.ping(self.producer, "warm-up")
        until = time.monotonic() + 10
        while "warm-up" not in self.arrived and time.monotonic() < until:
            time.sleep(0.01)
        self.sent.clear()

        def loop():
            t0, i = time.monotonic(), 0
            while self.running:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.ping(self.producer, f"ping-{i}")
                i += 1
        self.pinger = threading.Thread(target=loop, daemon=True)
        self.pinger.start()

    def latencies(self):
        """ms from each ping to its arrival; the pings still on their way
        do not count."""
        return [(self.arrived[k] - t) * 1000 for k, t in list(self.sent.items()) if k in self.arrived]

    def close(self):
        if not self.running:
            return
        self.running = False
        for t in (self.pinger, self.thread):
            if t:
                t.join(5)
        if self.producer:
            self.producer.flush(5)
        self.consumer.close()


def pct(xs, p):
    """The p-th percentile (0 < p <= 1) of xs, nearest rank; the benches'
    one definition (bench_gateway.py and bench_day.py use it too)."""
    xs = sorted(xs)
    return xs[max(0, int(len(xs) * p) - 1)] if p < 1 else xs[-1]


def percentiles(lat):
    return dict(n=len(lat), p50=pct(lat, .5), p99=pct(lat, .99), max=max(lat))


def command_latency(bootstrap, work, site, n=300, rate=50.0):
    """Produce -> the AMI action arriving at amisim, for pause/unpause
    commands at a steady rate, and the echo anchor (KafkaEcho) of the same
    moments. Both ends read this machine's clock."""
    import json
    from confluent_kafka import Producer
    stats = work / "cmd-stats.json"
    amisim, agent, http, site = start_pair(
        bootstrap, work, "c",
        ["--simulate", "--operators", str(max(5, int(CMD_AMI_RATE * 10))), "--queues", "support", "--rate",
         f"{CMD_AMI_RATE:g}", "--talk", "2-5", "--stats-file", stats, "--stats-interval", "0.5"],
        'commands: { operator_phone = "Local/%s@phones"; };' + (' log_level = "debug";' if STAGES else ""),
        site=site)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    topic = f"callbus.{site}.commands"
    sent = {}
    echo = KafkaEcho(bootstrap, f"bench.echo.{site}")

    def send(i):
        now = time.time()
        cid = f"bench:{site}:{int(now)}:{i}"
        cmd = {"specversion": "1.0", "id": cid, "source": "callbus://bench", "sender": "bench",
               "type": "callbus.command." + ("pause" if i % 2 == 0 else "unpause"),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z",
               "expires": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 60)) + "Z",
               "data": {"operator_id": "op101"}}
        producer.produce(topic, key="op101", value=json.dumps(cmd))
        echo.ping(producer, cid)
        sent[cid] = now
    try:
        time.sleep(6)  # consumer group join
        if STAGES:
            log_append_time(bootstrap, topic)
        send(-1)       # warm-up, not measured
        producer.flush(10)
        time.sleep(2)
        sent.clear()
        echo.sent.clear()
        events0 = json.loads(stats.read_text())["events_sent"]
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send(i)
        producer.flush(10)
        # The stream the commands shared the agent with (amisim's own count).
        ami_per_s = (json.loads(stats.read_text())["events_sent"] - events0) / (time.monotonic() - t0)
        time.sleep(3)
        # The agent's ActionIDs are "callbus/<nonce>/cmd/<command id>".
        by_id = {k.split("/cmd/", 1)[1]: v for k, v in json.loads(stats.read_text())["by_action_id"].items()
                 if "/cmd/" in k}
        r = percentiles([(by_id[k]["first_at"] - t) * 1000 for k, t in sent.items() if k in by_id])
        r["sent"] = len(sent)
        r["ami_per_s"] = ami_per_s
        r["echo"] = percentiles(echo.latencies())
        if STAGES:
            r["stages"] = stage_split(work / f"{site}.log", sent, by_id)
        return r
    finally:
        echo.close()
        agent.terminate()
        agent.wait(30)
        amisim.terminate()
        amisim.wait(10)


def log_append_time(bootstrap, topic):
    """The broker stamps the commands it appends: their Kafka timestamp
    becomes the time of the broker's append (ms)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(10)


def stage_split(log, sent, by_id):
    """Per stage (STAGE_COLUMNS), p50/p99/max in ms over the commands, from
    the agent's debug line for each and amisim's arrival."""
    line = re.compile(r"command (\S+): kafka timestamp ([0-9.]+), woken ([0-9.]+), "
                      r"decision durable ([0-9.]+), action sent ([0-9.]+)")
    at = {m.group(1): [float(x) for x in m.groups()[1:]] for m in map(line.search, log.read_text().splitlines()) if m}
    rows = [dict(zip(("append", "woken", "durable", "sent"), at[k]), total=by_id[k]["first_at"], t=t)
            for k, t in sent.items() if k in at and k in by_id]
    out = {}
    prev = "t"
    for col, label in STAGE_COLUMNS:
        d = sorted((r[col] - r[prev]) * 1000 for r in rows)
        out[label] = (pct(d, .5), pct(d, .99), max(d), sum(x > 2 for x in d))
        prev = col
    return out


def parser_alone():
    """The parser from memory, then over loopback TCP next to a read +
    frame-scan baseline (tests/bench/bench_parser.c); returns the memory
    median and bench_parser's TCP median line."""
    out = subprocess.run([BUILD / "bench_parser", ROOT / "tests/fixtures/ami-samples", "1000"],
                         capture_output=True, text=True, check=True).stdout
    print(out, end="")
    rates = [float(x) for x in re.findall(r"^parser run \d+: .*?: ([0-9.]+) messages/s", out, re.M)]
    tcp = re.search(r"^tcp median of (\d+): (.*)$", out, re.M)
    return statistics.median(rates), f"(median of {tcp.group(1)}): {tcp.group(2)}"


def latency_runs(bootstrap, work):
    """A warm-up run first, not counted: a just-started broker (its JIT)
    gives Kafka's own produce -> consume a p99 of 5-9 ms for its first
    minutes. One site for every run: fresh topics cost the broker a core or
    two in their first second, 30-80 ms of Kafka's own p99. Before the
    throughput runs, whose gigabytes the disk is still writing back after
    them (docs/benchmarks.md, "The bench's own stalls")."""
    lats = []
    site = "c" + uuid.uuid4().hex[:8]
    for i in range(CMD_RUNS + 1):
        r = command_latency(bootstrap, work, site, n=300 if i else CMD_WARM_UP)
        if i:
            lats.append(r)
        print(f"command latency {f'run {i}' if i else 'warm-up (not counted)'}: {r['n']}/{r['sent']} commands "
              f"at 50/s, AMI {CMD_AMI_RATE:g} calls/s ({r['ami_per_s']:.0f} events/s), produce -> AMI action "
              f"at amisim: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms; "
              f"echo ({r['echo']['n']}) p50 {r['echo']['p50']:.2f} ms, p99 {r['echo']['p99']:.2f} ms, "
              f"max {r['echo']['max']:.2f} ms; load {os.getloadavg()[0]:.1f}", flush=True)
        for label, (p50, p99, mx, over) in r.get("stages", {}).items():
            print(f"  {label:<27} p50 {p50:6.2f} p99 {p99:6.2f} max {mx:6.2f} ms, {over} over 2 ms", flush=True)
    return lats


def print_latency(lats):
    p99s = ", ".join(f"{r['p99']:.1f}" for r in lats)
    echo99s = ", ".join(f"{r['echo']['p99']:.1f}" for r in lats)
    print(f"RESULT command latency (median of {len(lats)}): p50 "
          f"{statistics.median(r['p50'] for r in lats):.2f} ms, p99 "
          f"{statistics.median(r['p99'] for r in lats):.2f} ms (p99 of the runs: {p99s} ms); "
          f"anchor, Kafka produce -> consume of an echo topic in the same runs: p50 "
          f"{statistics.median(r['echo']['p50'] for r in lats):.2f} ms, p99 "
          f"{statistics.median(r['echo']['p99'] for r in lats):.2f} ms (runs: {echo99s} ms)")


def main():
    bootstrap = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="callbus-bench."))
    print(f"bench: Kafka at {bootstrap}; amisim --replay 01-inbound-queue-answered --max "
          f"--loop {LOOPS}; {RUNS} runs; logs in {work}")
    only_end_to_end = sys.argv[2:] == ["end_to_end"]
    if sys.argv[2:] == ["command_latency"]:
        print_latency(latency_runs(bootstrap, work))
        return
    lats = [] if only_end_to_end else latency_runs(bootstrap, work)
    runs, kcats, offs, bounded = throughput_runs(bootstrap, work)
    med = lambda k: statistics.median(r[k] for r in runs)
    if only_end_to_end:
        print(f"\nRESULT end-to-end (median of {RUNS}): {med('events_per_s'):.0f} AMI events/s into Kafka, "
              f"agent CPU {med('cpu_pct'):.0f}%, agent peak RSS {med('rss_mb'):.1f} MB")
        print_table(kcats, runs, offs, bounded)
        return
    parser, tcp = parser_alone()
    print()
    print(f"RESULT end-to-end (median of {RUNS}): {med('events_per_s'):.0f} AMI events/s into Kafka, "
          f"agent CPU {med('cpu_pct'):.0f}%, agent peak RSS {med('rss_mb'):.1f} MB")
    print_latency(lats)
    print(f"RESULT parser alone, from memory (median of 5): {parser:.0f} messages/s")
    print(f"RESULT parser over loopback TCP {tcp}")
    print_table(kcats, runs, offs, bounded)


if __name__ == "__main__":
    main()
