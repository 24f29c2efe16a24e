"""make bench: a 500-seat site after a whole working day (issue 11).

0. The model (why the day is compressed, and what is scaled with it): the
   day runs BENCH_DAY_SPEED (60) times faster than a real one, so 8 hours
   take 8 minutes. Kafka's log cleaner runs on the wall clock, so the site's
   topics get the agent's configuration (it creates them; agent/publisher.c)
   with their time settings divided by the same factor: on the state topics
   segment.ms, max.compaction.lag.ms and delete.retention.ms (1 h of call
   tombstones becomes 1 simulated hour), so that at the end of the
   compressed day they hold what a real day's end holds: one record per
   key, the last hour's tombstones and a few minutes of uncompacted tail.
   The event topics get retention.ms 7 days (not scaled: they hold this
   one day either way; the gateway never reads them, which step 2 shows).
   The broker's cleaner backoff (a broker setting, 1 s on kafka.sh's test
   broker) is not scaled: 1 minute of simulated time at 60x.
1. The day: amisim --simulate --day 8 at 500 seats, two queues, a busy
   centre's rate (5 calls/s on average, 7 at the peak of the profile; talk
   30-90 s; callers who give up, queue timeouts, phones nobody picks up),
   at --speed BENCH_DAY_SPEED into the agent and Kafka. Its wall time, AMI
   events, how far amisim fell behind its clock (the agent did not keep up
   if it did), and the agent's RSS after it.
2. After the day: a gateway starts, and a supervisor connects: time from
   the gateway's start to serving (the first supervisor snapshot whole),
   the supervisor snapshot's bytes and parts, time from connecting to part 1
   (the page's first paint) and to the last part. Then the gateway restarts
   BENCH_DAY_RESTARTS (3) times: restart to serving again (the median; with
   BENCH_DAY_BASELINE_GATEWAY=PATH each restart is preceded by one of that
   build, for a before/after in the same run), the records it read (its
   log) and the topics
   it read, against what the state topics hold (read back here: keys,
   tombstones and how old the oldest is in simulated minutes, superseded
   records not compacted yet) and what the event topics hold. That restart
   is also day 7 of a 7-day retention: the state topics are compacted with
   no time retention, so they hold the same at the end of every day, and
   the retention is in the event topics, which the gateway does not read.
3. Live: 500 operators and 20 supervisors connected to the gateway; amisim
   is replaced (an Asterisk restart on the same port) by a real-time
   500-seat simulation at the same rate, with a burst of 220 callers at
   once (over 6,500 AMI events in its busiest second) BENCH_DAY_BURST_AT s
   in. AMI event -> WebSocket client latency over BENCH_DAY_LATENCY_S s:
   each update's `time` is the Timestamp of the AMI event that changed the
   record (amisim's clock = the wall clock at --speed 1), less its arrival;
   p50/p99 at steady load and in the burst's seconds, at one supervisor
   (every call, operator and queue update) and the operators (their own
   record); the other 19 supervisors read in a process of their own, as
   fast as a browser would, without parsing, so that the process that
   measures does not become the bottleneck it measures. The supervisor's
   latency split in two at the agent's produce() (the Kafka timestamp of
   the update's record on the calls or operators topic): the agent's part,
   amisim's lag included, and the rest (Kafka, the gateway, the client).
   What the agent queued on its disk spool meanwhile. The agent's and the
   gateway's RSS at the end. The live step runs in real time, so the state
   topics get the agent's time settings back first.
4. The gateway restarts at load (the live simulation still running):
   restart to serving.

Environment: BENCH_DAY_HOURS (8), BENCH_DAY_SEATS (500), BENCH_DAY_RATE (5),
BENCH_DAY_SPEED (60), BENCH_DAY_RESTARTS (3), BENCH_DAY_BASELINE_GATEWAY,
BENCH_DAY_SUPERVISORS (20), BENCH_DAY_LATENCY_S (50),
BENCH_DAY_BURST_AT (20), BENCH_KEEP=1 (keep the work directory with the
programs' logs, and the site's topics, otherwise deleted). ~12 minutes on
the 2-core machine.
Usage: bench_day.py BOOTSTRAP (tests/bench/run.sh passes its broker).

Clients are bench_gateway.py's raw asyncio WebSocket clients."""

import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import bench_gateway as bg
from bench import free_port, metrics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import consume_all  # noqa: E402
from multisite import end_offsets  # noqa: E402

BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
HOURS = float(os.environ.get("BENCH_DAY_HOURS", "8"))
SEATS = int(os.environ.get("BENCH_DAY_SEATS", "500"))
RATE = float(os.environ.get("BENCH_DAY_RATE", "5"))
SUPERVISORS = int(os.environ.get("BENCH_DAY_SUPERVISORS", "20"))
LATENCY_S = float(os.environ.get("BENCH_DAY_LATENCY_S", "50"))
BURST_AT = int(os.environ.get("BENCH_DAY_BURST_AT", "20"))
SPEED = float(os.environ.get("BENCH_DAY_SPEED", "60"))
RESTARTS = int(os.environ.get("BENCH_DAY_RESTARTS", "3"))
BASELINE = os.environ.get("BENCH_DAY_BASELINE_GATEWAY")
QUEUES = "support,sales"
CALLS = ["--operators", str(SEATS), "--queues", QUEUES, "--rate", str(RATE), "--talk", "30-90",
         "--abandon", "3", "--patience", "40-240", "--rna", "3", "--seed", "1"]


# The agent's topic settings that are times, scaled with the day (step 0).
STATE_KINDS = ("state.operators", "state.calls", "state.queues")
EVENT_KINDS = ("ami", "calls", "operators")
SCALED = ("segment.ms", "max.compaction.lag.ms", "delete.retention.ms")
EVENT_RETENTION_MS = 7 * 24 * 3600 * 1000


def topic(site, kind):
    return f"callbus.{site}.{kind}"


def alter_topics(admin, alter):
    for f in admin.incremental_alter_configs(alter).values():
        f.result(30)


def unscale_topics(bootstrap, site, settings):
    """The state topics' time settings back to the agent's, for the live
    step: it runs in real time, and with a 1 s segment.ms the broker rolls
    three segments a second and its cleaner is never idle, which a real
    site's broker does not do (docs/benchmarks.md, goal 4)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    alter_topics(AdminClient({"bootstrap.servers": bootstrap}), [
        ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry(k, str(v[0]), incremental_operation=AlterConfigOpType.SET) for k, v in settings[name].items()])
        for name in (topic(site, k) for k in STATE_KINDS)])


def scale_topics(bootstrap, site, factor):
    """The state topics as the agent created them, their time settings
    divided by factor; the event topics' retention.ms 7 days. Returns the
    settings as {topic: {name: (agent's, now)}} and the broker's
    log.cleaner.backoff.ms."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = [ConfigResource(ConfigResource.Type.TOPIC, topic(site, k)) for k in STATE_KINDS]
    got = {r.name: f.result(30) for r, f in a.describe_configs(res).items()}
    settings, alter = {}, []
    for name, cfg in got.items():
        if "compact" not in cfg["cleanup.policy"].value:
            raise RuntimeError(f"{name} is not compacted: {cfg['cleanup.policy'].value}")
        settings[name] = {k: (int(cfg[k].value), max(1, round(int(cfg[k].value) / factor))) for k in SCALED}
        alter.append(ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry(k, str(v[1]), incremental_operation=AlterConfigOpType.SET) for k, v in settings[name].items()]))
    for k in EVENT_KINDS:
        settings[topic(site, k)] = {"retention.ms": (None, EVENT_RETENTION_MS)}
        alter.append(ConfigResource(ConfigResource.Type.TOPIC, topic(site, k), incremental_configs=[
            ConfigEntry("retention.ms", str(EVENT_RETENTION_MS), incremental_operation=AlterConfigOpType.SET)]))
    alter_topics(a, alter)
    broker = ConfigResource(ConfigResource.Type.BROKER, str(next(iter(a.list_topics(timeout=10).brokers))))
    backoff = next(iter(a.describe_configs([broker]).values())).result(30)["log.cleaner.backoff.ms"].value
    return settings, int(backoff)


def state_held(bootstrap, site, factor):
    """What the state topics hold now, read back: records, keys whose latest
    record is a value, tombstones (latest), superseded records (an older
    record of a key, not compacted yet), and how old the oldest tombstone
    is against the newest record, in simulated minutes."""
    out = dict(records=0, live=0, tombstones=0, superseded=0, oldest_tombstone_min=0.0)
    newest, oldest_tomb = 0, None
    for kind in STATE_KINDS:
        recs = consume_all(bootstrap, topic(site, kind), timeout=120, idle=0.3)
        latest = {}
        for r in recs:
            latest[r.key] = r
            newest = max(newest, r.timestamp)
        out["records"] += len(recs)
        out["superseded"] += len(recs) - len(latest)
        for r in latest.values():
            if r.value is None:
                out["tombstones"] += 1
                oldest_tomb = r.timestamp if oldest_tomb is None else min(oldest_tomb, r.timestamp)
            else:
                out["live"] += 1
    if oldest_tomb is not None:
        out["oldest_tombstone_min"] = (newest - oldest_tomb) / 1000 * factor / 60
    return out


def mem_mb(pid, field="VmRSS"):
    return int(re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def write_conf(work, site, bootstrap, ami_port, http_port):
    """One file for both programs (each reads its own sections)."""
    conf = work / "callbus.conf"
    conf.write_text(f"""site = "{site}"; state_dir = "{work / 'state'}";
kafka = [ "bootstrap.servers={bootstrap}" ];
agent: {{ ami: {{ port = {ami_port}; secret = "callbus"; reconnect_min_ms = 100; reconnect_max_ms = 500; }};
          http: {{ listen = "127.0.0.1:{http_port}"; }}; }};
gateway: {{ id = "gwday"; listen = "127.0.0.1:0"; www_dir = "{ROOT / 'gateway' / 'www'}";
  jwt_alg = "HS256"; jwt_secret = "{bg.SECRET}"; max_connections = {SEATS + SUPERVISORS + 100};
  idle_timeout = 3600; max_unauthed_per_address = 0; }};
""")
    return conf


def start_amisim(work, name, args, port=0):
    p = subprocess.Popen([BUILD / "amisim", "--listen", f"127.0.0.1:{port}", "--stats-file", work / f"{name}.json",
                          "--stats-interval", "2", *args],
                         stdout=subprocess.PIPE, stderr=open(work / f"{name}.log", "w"), text=True)
    return p, int(re.search(r":(\d+)$", p.stdout.readline().strip()).group(1))


def stats(work, name):
    try:
        return json.loads((work / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def agent_drained(http, quiet=3.0, timeout=600):
    """Until the agent has read nothing new for `quiet` s and Kafka has every message."""
    last, since, end = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < end:
        m = metrics(http)
        now = time.monotonic()
        if m["callbus_agent_ami_events_total"] != last:
            last, since = m["callbus_agent_ami_events_total"], now
        elif (now - since >= quiet and m["callbus_agent_kafka_delivered_total"] == m["callbus_agent_kafka_sent_total"]
              and m["callbus_agent_spool_bytes"] == 0):
            return m
        time.sleep(0.5)
    raise RuntimeError("the agent did not drain")


async def read_message(reader):
    """One WebSocket message (fragments joined): (opcode, payload bytes)."""
    b0, b1 = await reader.readexactly(2)
    op, data = b0 & 0x0F, bytearray()
    while True:
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        data += await reader.readexactly(n)
        if b0 & 0x80:
            return op, bytes(data)
        b0, b1 = await reader.readexactly(2)


async def connect(port, site, who, role):
    """Connects and authenticates; reads the snapshot whole. Returns
    (reader, writer, snapshot info: bytes, parts, seconds to part 1 and to
    the last part, from the TCP connect)."""
    t0 = time.monotonic()
    reader, writer = await bg.ws_upgrade(port)
    writer.write(bg.frame(json.dumps({"type": "auth", "token": bg.token(site, who, role)})))
    info = dict(bytes=0, parts=0, first=None, whole=None)
    while True:
        op, data = await read_message(reader)
        if op == 8:
            raise RuntimeError(f"{who} closed: {data[:2].hex()} {data[2:]}")
        m = json.loads(data)
        if m["type"] != "snapshot":
            continue
        info["bytes"] += len(data)
        info["parts"] += 1
        if m.get("part", 1) == 1:
            info["first"] = time.monotonic() - t0
        if m.get("part", 1) == m.get("parts", 1):
            info["whole"] = time.monotonic() - t0
            return reader, writer, info


def start_gateway(work, conf, binary=None):
    """Starts the gateway; returns (process, port, seconds from start to
    listening, seconds to a supervisor's whole snapshot, that snapshot, the
    records it read before listening). process.topics_read: the topics it
    assigned, from its log."""
    log = work / "gateway.log"
    t0 = time.monotonic()
    gw = subprocess.Popen([binary or BUILD / "callbus-gateway", "-c", conf], stderr=open(log, "a"))
    pos = log.stat().st_size if log.exists() else 0
    end = t0 + 120
    while time.monotonic() < end:
        m = re.search(r"listening on https?://[0-9.]+:(\d+)", log.read_text(errors="replace")[pos:])
        if m:
            break
        time.sleep(0.01)
    listening = time.monotonic() - t0
    port = int(m.group(1))
    loop = asyncio.new_event_loop()
    _, writer, snap = loop.run_until_complete(connect(port, site_of(conf), "sup0", "supervisor"))
    serving = time.monotonic() - t0
    writer.close()
    loop.close()
    text = log.read_text(errors="replace")[pos:]
    read = re.findall(r"read (\d+) records from \d+ partitions", text)
    gw.topics_read = re.findall(r"gateway: reading (\S+) \(", text)
    return gw, port, listening, serving, snap, int(read[-1]) if read else -1


def site_of(conf):
    return re.search(r'site = "([^"]+)"', Path(conf).read_text()).group(1)


def stop(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


async def live(port, site, seconds, start_sim):
    """500 operators and the supervisors connected, reading everything;
    start_sim() begins the load once all are in. Returns samples
    (role, kind, event time, arrival) and the connect figures."""
    sem = asyncio.Semaphore(100)
    conns = []

    async def one(who, role):
        async with sem:
            r, w, info = await connect(port, site, who, role)
            conns.append((who, role, r, w, info))
    t0 = time.monotonic()
    # The supervisors not measured read in a process of their own, as their
    # browsers would: in this one they would take the event loop (and the
    # core) the measured clients' arrival times are taken on.
    others = None
    if SUPERVISORS > 1:
        others = subprocess.Popen([sys.executable, bg.__file__, "--hold", str(port), site, "2", str(SUPERVISORS - 1),
                                   "20", "supervisor"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "BENCH_WS_PREFIX": "sup"})
    await asyncio.gather(*(one(f"op{101 + i}", "operator") for i in range(SEATS)), one("sup1", "supervisor"))
    if others and not others.stdout.readline().startswith("held"):
        raise RuntimeError(f"the supervisors' process failed (exit {others.poll()})")
    took = time.monotonic() - t0
    samples, closed = [], []

    async def follow(who, role, reader):
        while True:
            op, data = await read_message(reader)
            now = time.time()
            if op == 8:
                closed.append((who, data[:2].hex()))
                return
            if op != 1:
                continue
            m = json.loads(data)
            if m.get("type") == "update" and m.get("time"):
                samples.append((role, m["kind"], bg.rfc3339_s(m["time"]), now))
    tasks = [asyncio.ensure_future(follow(who, role, r)) for who, role, r, _, _ in conns]
    start_sim()
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    for _, _, _, w, _ in conns:
        w.close()
    if others:
        bg.stop_clients([others])
    return samples, closed, took, conns


def produce_times(bootstrap, starts):
    """{an update's time, as the clients parse it: the Kafka timestamp (s)
    of its record} for the event topics' records from `starts`
    ({(topic, partition): offset}) to their ends: the time the agent called
    produce(), to split each update's latency into the agent's part and
    the rest. The event topics are never compacted (the state topics are,
    60 times faster than a real day's)."""
    from confluent_kafka import Consumer, TopicPartition
    ends = end_offsets(bootstrap, sorted({t for t, _ in starts}))
    left = {tp for tp, off in starts.items() if ends[tp] > off}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-day-split", "enable.auto.commit": False})
    c.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in left])
    out, end = {}, time.monotonic() + 120
    while left and time.monotonic() < end:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.offset() + 1 >= ends[(m.topic(), m.partition())]:
            left.discard((m.topic(), m.partition()))
        if m.value():
            out.setdefault(round(bg.rfc3339_s(json.loads(m.value())["time"]), 6), m.timestamp()[1] / 1000)
    c.close()
    return out


def split(samples, kts):
    """The agent's part (AMI event -> produce(), amisim's lag included) and
    the rest (Kafka, the gateway, the client) of the samples whose time is
    a record's on the event topics (a queue update has the time of the AMI
    event that also changed a call or an operator)."""
    pairs = [(kts[k] - ts, now - kts[k]) for ts, now in samples if (k := round(ts, 6)) in kts]
    if not pairs:
        return "no record matched"
    a, r = [x * 1000 for x, _ in pairs], [x * 1000 for _, x in pairs]
    return (f"of which AMI event -> the agent's produce() p50 {bg.pct(a, .5):.1f} / p99 {bg.pct(a, .99):.1f} ms, "
            f"produce() -> client p50 {bg.pct(r, .5):.1f} / p99 {bg.pct(r, .99):.1f} ms ({len(pairs)} of "
            f"{len(samples)} matched)")


def pcts(xs):
    if not xs:
        return "no samples"
    return f"p50 {bg.pct(xs, .5):.1f} ms, p99 {bg.pct(xs, .99):.1f} ms, max {max(xs):.1f} ms ({len(xs)} updates)"


def delete_topics(bootstrap, site):
    """The day's topics (GBs of AMI events): a shared broker keeps no copy."""
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in a.list_topics(timeout=10).topics if t.startswith(f"callbus.{site}.")]
    for f in (a.delete_topics(topics, operation_timeout=60).values() if topics else ()):
        try:
            f.result(60)
        except Exception as e:   # reported, not fatal: the figures are out
            print(f"bench_day: deleting a topic: {e}")


def run(bootstrap):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(subprocess.check_output(["mktemp", "-d", "/tmp/callbus-bench-day.XXXXXX"], text=True).strip())
    site = "d" + uuid.uuid4().hex[:8]
    amisim = agent = gw = None
    live_sim = {}
    try:
        # 0. The agent first (its AMI port has no listener yet): it creates
        #    the site's topics; then their time settings are scaled.
        ami_port, http = free_port(), free_port()
        conf = write_conf(work, site, bootstrap, ami_port, http)
        agent = subprocess.Popen([BUILD / "callbus-agent", "-c", conf], stderr=open(work / "agent.log", "w"))
        end = time.monotonic() + 60
        while True:
            try:
                metrics(http)
                break
            except OSError:
                if agent.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"the agent did not start; see {work}")
                time.sleep(0.1)
        settings, backoff = scale_topics(bootstrap, site, SPEED)
        st = settings[topic(site, "state.calls")]
        print(f"model: the day at {SPEED:g}x; state topics as the agent creates them but "
              + ", ".join(f"{k} {v[0]:,} -> {v[1]:,} ms" for k, v in st.items())
              + f" (/ {SPEED:g}); event topics retention.ms {EVENT_RETENTION_MS:,} (7 days); the broker's "
              f"log.cleaner.backoff.ms {backoff:,} (not scaled: {backoff * SPEED / 60000:.1f} simulated min)",
              flush=True)

        # 1. The day, SPEED times faster than a real one.
        amisim, _ = start_amisim(work, "day", ["--simulate", "--day", str(HOURS), *CALLS, "--speed", str(SPEED),
                                               "--start-at", "08:00", "--tz", "UTC", "--linger", "-1"],
                                 port=ami_port)
        t0 = time.monotonic()
        while not ((s := stats(work, "day")) and s["truth"]["over"]):
            if amisim.poll() is not None or agent.poll() is not None:
                raise RuntimeError(f"amisim or the agent exited; see {work}")
            time.sleep(2)
        m = agent_drained(http)
        day_s = time.monotonic() - t0
        t = s["truth"]
        q = {k: sum(v[k] for v in t["queues"].values()) for k in ("offered", "answered", "abandoned", "timed_out")}
        print(f"day: {HOURS:g} h at {SEATS} seats, {t['arrived']} calls ({q['answered']} answered, "
              f"{q['abandoned']} abandoned, {q['timed_out']} timed out), {s['events_sent']:,} AMI events, "
              f"{m['callbus_agent_kafka_delivered_total']:,.0f} Kafka messages, in {day_s:.0f} s at {SPEED:g}x "
              f"({s['events_sent'] / day_s:,.0f} events/s; amisim at most {s.get('sim_lag_max_s', 0):.2f} s behind "
              f"its clock); agent RSS {mem_mb(agent.pid):.1f} MB, peak {mem_mb(agent.pid, 'VmHWM'):.1f} MB",
              flush=True)

        # 2. The gateway after the day: start, the supervisor's snapshot, a restart.
        gw, port, listening, serving, snap, read = start_gateway(work, conf)
        print(f"gateway start after the day: listening {listening:.2f} s, serving (a supervisor's snapshot whole) "
              f"{serving:.2f} s after its start, {read:,} state records read", flush=True)
        loop = asyncio.new_event_loop()
        _, w, snap2 = loop.run_until_complete(connect(port, site, "sup-late", "supervisor"))
        w.close()
        loop.close()
        print(f"supervisor snapshot: {snap['bytes']:,} bytes in {snap['parts']} parts; first paint (part 1) "
              f"{snap['first'] * 1000:.0f} ms, whole {snap['whole'] * 1000:.0f} ms after connecting (the first "
              f"supervisor of a fresh gateway); a second supervisor: {snap2['first'] * 1000:.0f} / "
              f"{snap2['whole'] * 1000:.0f} ms", flush=True)
        runs, base = [], []
        for i in range(RESTARTS):
            if BASELINE:
                stop(gw)
                gw, _, _, serving_base, _, _ = start_gateway(work, conf, binary=BASELINE)
                base.append(serving_base)
            stop(gw)
            gw, port, listening, serving_again, _, read_again = start_gateway(work, conf)
            runs.append(serving_again)
        serving_again = statistics.median(runs)
        held = state_held(bootstrap, site, SPEED)
        events = end_offsets(bootstrap, [topic(site, k) for k in EVENT_KINDS])
        print(f"gateway restart: serving {serving_again:.2f} s after its start (median of {RESTARTS}: "
              f"{', '.join(f'{x:.2f}' for x in runs)}), {read_again:,} records read from "
              f"{', '.join(gw.topics_read)}", flush=True)
        if BASELINE:
            print(f"gateway restart with {BASELINE} (alternated with this build's): serving "
                  f"{statistics.median(base):.2f} s (median of {RESTARTS}: {', '.join(f'{x:.2f}' for x in base)})",
                  flush=True)
        print(f"the state topics hold {held['records']:,} records: {held['live']:,} keys with a value, "
              f"{held['tombstones']:,} tombstones (ended calls; the oldest {held['oldest_tombstone_min']:.0f} "
              f"simulated min before the last record), {held['superseded']:,} superseded records not compacted "
              f"yet; the event topics hold {sum(events.values()):,} records (the day's; "
              + ", ".join(f"{k} {sum(v for (tp, _), v in events.items() if tp == topic(site, k)):,}"
                          for k in EVENT_KINDS)
              + f"), none of them read (7 days of retention would hold ~7 times that there); the gateway read "
              f"{read_again:,} (the state topics up to their ends at its start; read back here a moment later "
              f"{held['records']:,})",
              flush=True)

        # 3. Live: everyone connected, a real-time day with a burst.
        unscale_topics(bootstrap, site, settings)
        def start_sim():
            amisim.send_signal(signal.SIGTERM)
            amisim.wait(30)
            live_sim["p"], _ = start_amisim(work, "live", ["--simulate", *CALLS, "--speed", "1",
                                                           "--burst", str(BURST_AT)], port=ami_port)
            live_sim["t0"] = time.time()
        loop = asyncio.new_event_loop()
        spooled0 = metrics(http)["callbus_agent_spooled_total"]
        live_from = end_offsets(bootstrap, [topic(site, k) for k in ("calls", "operators")])
        gw_cpu0, me_cpu0, wall0 = bg.cpu_s(gw.pid), time.process_time(), time.monotonic()
        samples, closed, took, conns = loop.run_until_complete(live(port, site, LATENCY_S, start_sim))
        wall = time.monotonic() - wall0
        gw_cpu, me_cpu = (bg.cpu_s(gw.pid) - gw_cpu0) / wall * 100, (time.process_time() - me_cpu0) / wall * 100
        loop.close()
        if os.environ.get("BENCH_KEEP"):
            (work / "samples.json").write_text(json.dumps(samples))
        ls = stats(work, "live") or {}
        live_sim["p"].send_signal(signal.SIGUSR1)
        time.sleep(1)
        ls = stats(work, "live") or ls
        burst_events = ls.get("busiest_second", {}).get("sim", {}).get("events", 0)
        lat = lambda pred: [(now - ts) * 1000 for role, kind, ts, now in samples if pred(role, kind, ts)]
        # amisim's clock starts on the next whole second.
        burst_at = int(live_sim["t0"]) + 1 + BURST_AT
        in_burst = lambda ts: burst_at <= ts < burst_at + 6
        # Steady: from 5 s after the new amisim started (the agent has logged
        # in again and 500 operators came back at once) to the burst, and
        # from 15 s after it.
        steady = lambda ts: live_sim["t0"] + 5 <= ts < burst_at or ts >= burst_at + 15
        sups = [c for c in conns if c[1] == "supervisor"]
        print(f"live: {SEATS} operators and {SUPERVISORS} supervisors connected in {took:.1f} s "
              f"(the measured supervisor's snapshot {bg.pct([c[4]['whole'] * 1000 for c in sups], .5):.0f} ms); "
              f"{ls.get('events_sent', 0):,} AMI events in {LATENCY_S:g} s at {RATE:g} calls/s, the busiest "
              f"second {burst_events:,} events; clients closed by the gateway: {len(closed)}; CPU meanwhile: gateway "
              f"{gw_cpu:.0f} %, this script's clients {me_cpu:.0f} % of a core; messages the agent queued on its "
              f"disk spool (librdkafka's queue full): {metrics(http)['callbus_agent_spooled_total'] - spooled0:,.0f}",
              flush=True)
        print(f"AMI event -> WebSocket client, steady: a supervisor "
              f"{pcts(lat(lambda r, k, ts: r == 'supervisor' and steady(ts)))}; operators "
              f"{pcts(lat(lambda r, k, ts: r == 'operator' and steady(ts)))}", flush=True)
        print(f"AMI event -> WebSocket client, in the burst's 6 s: a supervisor "
              f"{pcts(lat(lambda r, k, ts: r == 'supervisor' and in_burst(ts)))}; operators "
              f"{pcts(lat(lambda r, k, ts: r == 'operator' and in_burst(ts)))}", flush=True)
        kts = produce_times(bootstrap, live_from)
        sup_at = lambda pred: [(ts, now) for role, kind, ts, now in samples if role == "supervisor" and pred(ts)]
        print(f"the supervisor's updates, steady: {split(sup_at(steady), kts)}; in the burst: "
              f"{split(sup_at(in_burst), kts)}", flush=True)
        print(f"RSS at the end: agent {mem_mb(agent.pid):.1f} MB (peak {mem_mb(agent.pid, 'VmHWM'):.1f}), "
              f"gateway {mem_mb(gw.pid):.1f} MB (peak {mem_mb(gw.pid, 'VmHWM'):.1f})", flush=True)
        # 4. A restart at load.
        stop(gw)
        gw, port, listening, serving_load, snap3, read3 = start_gateway(work, conf)
        print(f"gateway restart at load (the live simulation running): listening {listening:.2f} s, serving "
              f"{serving_load:.2f} s after its start, {read3:,} state records read; a supervisor's snapshot "
              f"{snap3['bytes']:,} bytes in {snap3['parts']} parts, whole {snap3['whole'] * 1000:.0f} ms", flush=True)
        all_sup = lat(lambda r, k, ts: r == "supervisor" and steady(ts))
        print(f"RESULT day ({HOURS:g} h, {SEATS} seats): supervisor snapshot {snap['bytes']:,} bytes in "
              f"{snap['parts']} parts, first paint {snap['first'] * 1000:.0f} ms; gateway start to serving "
              f"{serving:.2f} s, restart to serving {serving_again:.2f} s (goal 2 s: "
              f"{'met' if max(serving, serving_again) < 2 else 'NOT met'}; {read_again:,} records read; the same "
              f"on day 7 of a 7-day retention: the event topics are not read), at load {serving_load:.2f} s; "
              f"AMI event -> browser "
              f"{pcts(all_sup)} steady with {SEATS} operators "
              f"and {SUPERVISORS} supervisors connected")
    finally:
        stop(gw)
        stop(agent)
        stop(amisim)
        stop(live_sim.get("p"))
        if os.environ.get("BENCH_KEEP"):
            print(f"work directory and topics kept: {work}, callbus.{site}.*")
        else:
            shutil.rmtree(work, ignore_errors=True)
            delete_topics(bootstrap, site)


if __name__ == "__main__":
    run(sys.argv[1])
