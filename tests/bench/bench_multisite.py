"""Multi-site catch-up figure for `make bench`: after a WAN cut of
BENCH_MS_CUT seconds (300) with both sites producing about 1,000 events/s
each, how many seconds until the centre has every event the sites wrote
before the link came back (the replication lag is back to zero).

The topology is the one of tests/integration/test_multisite.py (three
brokers, Toxiproxy WAN, MirrorMaker 2 with compose/mm2.properties), without
gateways. Lag is measured by ids: at the moment the link returns, the last
record of every site partition is noted; a partition has caught up when that
record (same CloudEvent id, same partition) is at the centre. MM2 keeps
partition order, so everything before it is there too (the integration
test checks that event by event).

    python3 tests/bench/bench_multisite.py
    BENCH_MS_CUT=300 BENCH_MS_RATE=6.5 (amisim calls/s per site) BENCH_MS_OPERATORS=80
    BENCH_MS_MM2_HEAP="-Xmx768m -Xms768m" (MirrorMaker's KAFKA_HEAP_OPTS)
    BENCH_MS_MM2_JVM_OPTS="" (its KAFKA_OPTS, after kafka.sh's G1 settings)
    BENCH_MS_MM2_SET="key=value;key=value" (mm2.properties keys to try on top)
    BENCH_MS_JFR=FILE records MirrorMaker with Java Flight Recorder from its start
        (default settings) and dumps the recording when the centre has caught up
        (then: jfr print --events jdk.ExecutionSample FILE)
    BENCH_KEEP=1 keeps the dir (logs)
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from multisite import UP_KINDS, Topology, end_offsets  # noqa: E402

CUT = float(os.environ.get("BENCH_MS_CUT", "300"))
RATE = float(os.environ.get("BENCH_MS_RATE", "6.5"))
OPERATORS = int(os.environ.get("BENCH_MS_OPERATORS", "80"))
WARMUP = float(os.environ.get("BENCH_MS_WARMUP", "30"))
MM2_HEAP = os.environ.get("BENCH_MS_MM2_HEAP", "-Xmx768m -Xms768m")
MM2_JVM_OPTS = os.environ.get("BENCH_MS_MM2_JVM_OPTS", "")
MM2_SET = dict(kv.strip().split("=", 1) for kv in os.environ.get("BENCH_MS_MM2_SET", "").split(";")
               if kv.strip())


def say(msg):
    print(f"bench_multisite: {msg}", flush=True)


def last_ids(bootstrap, marks):
    """{(topic, partition): id of the last data record below marks[tp]}.

    All partitions in one consumer, done when its position has passed the
    mark (the last offsets below a mark can be transaction markers, with a
    standby agent, and those are never delivered). It runs after the link
    is back, so its time counts in the catch-up figure: one partition at a
    time, each waiting 1 s for a batch of 100 when 20 records were there,
    took ~12 s for the 36 partitions."""
    import json
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ms-last",
                  "enable.auto.commit": False})
    out = {}
    todo = {tp: hi for tp, hi in marks.items() if hi > 0}
    try:
        c.assign([TopicPartition(t, p, max(0, hi - 20)) for (t, p), hi in todo.items()])
        deadline = time.monotonic() + 20
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, 0.1):
                tp = (m.topic(), m.partition())
                if not m.error() and tp in todo and m.offset() < todo[tp]:
                    out[tp] = json.loads(m.value())["id"]
            for pos in c.position([TopicPartition(t, p) for (t, p) in todo]):
                if pos.offset >= todo[(pos.topic, pos.partition)]:
                    del todo[(pos.topic, pos.partition)]
    finally:
        c.close()
    return out


def id_order(cloudevent_id):
    """The agent's CloudEvent ids end in its start time and a counter per
    topic ("site:agent:kind:EPOCH:SEQ"), which grow along a partition."""
    epoch, seq = cloudevent_id.rsplit(":", 2)[-2:]
    return int(epoch), int(seq)


def wait_centre_has(central, targets, start, t0, timeout, tail=30):
    """(seconds until every target is in its partition at the centre, seconds
    until the first replicated record was there), both from t0.

    The catch-up uses both cores, so the watch must cost next to nothing:
    reading every replicated record took 5-12 % of a core, taken from
    MirrorMaker and the brokers. Instead, every 0.2 s, the last few committed
    records of each pending partition: MirrorMaker keeps a partition's order,
    so once one of them is the target or later (by id_order) the target is
    there. (Not by timestamp: a catch-up's transaction markers carry the
    time of their commit, later than the records before them.) read_committed,
    as the CRM reads: the end offset it is given is the last stable one."""
    from confluent_kafka import Consumer, TopicPartition
    # A short fetch wait: each round moves the consumer to other offsets,
    # and a fetch the broker holds for the old ones (500 ms by default)
    # would hold the new ones back.
    c = Consumer({"bootstrap.servers": central, "group.id": "bench-ms-scan",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "fetch.wait.max.ms": 10})
    todo = {tp: id_order(i) for tp, i in targets.items()}
    first = None
    try:
        while todo:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{len(todo)} partitions not caught up after {timeout}s")
            ends = {tp: c.get_watermark_offsets(TopicPartition(*tp), timeout=5, cached=False)[1]
                    for tp in todo}
            if first is None and any(ends[tp] > start.get(tp, 0) for tp in ends):
                first = time.monotonic() - t0
            for tp in last_records_reach(c, ends, start, todo, tail):
                del todo[tp]
            time.sleep(0.2)
    finally:
        c.close()
    return time.monotonic() - t0, first


def last_records_reach(consumer, ends, start, wanted, tail, wait=1.0):
    """The partitions whose last `tail` records before ends[tp] hold one at
    or after wanted[tp] (by id_order)."""
    import json
    from confluent_kafka import TopicPartition
    span = {tp: (max(start.get(tp, 0), end - tail), end) for tp, end in ends.items()
            if end > start.get(tp, 0)}
    if not span:
        return set()
    consumer.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in span.items()])
    reached, done = set(), set()
    deadline = time.monotonic() + wait
    while len(done) < len(span) and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.05):
            tp = (m.topic(), m.partition())
            if m.error() or tp not in span:
                continue
            if id_order(json.loads(m.value())["id"]) >= wanted[tp]:
                reached.add(tp)
            if m.offset() >= span[tp][1] - 2:  # the last record, or the one before the commit marker
                done.add(tp)
    return reached


def gc_pauses(log, since):
    """(count, ms) of the JVM pauses logged in `log` after byte `since`
    (-Xlog:gc lines such as "GC(3) Pause Young (Normal) ... 5.123ms")."""
    import re
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return 0, 0.0
    ms = [float(x) for x in re.findall(r"Pause.* (\d+(?:\.\d+)?)ms$", text, re.M)]
    return len(ms), sum(ms)


def cpu_ticks():
    """{label: CPU clock ticks so far} of every process on the machine,
    labelled by what it is in the topology (the rest is "other")."""
    import re
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        ticks = int(f[11]) + int(f[12])  # utime + stime
        m = re.search(r"kafka\.logs\.dir=\S*/(\w+) ", cmd)
        if int(d.name) == os.getpid():
            label = "bench (its scan of the centre)"
        elif "MirrorMaker" in cmd:
            label = "MirrorMaker 2"
        elif m:
            label = f"broker {m.group(1)}"
        else:
            label = next((k for k in ("toxiproxy", "callbus-agent", "amisim") if k in cmd), "other")
        out[label] = out.get(label, 0) + ticks
    return out


def jfr_opts():
    return "-XX:StartFlightRecording=name=bench,settings=default" if os.environ.get("BENCH_MS_JFR") else ""


def mm2_uptime(pid):
    """Seconds since MirrorMaker's JVM started (kafka.sh execs it)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    started = int(stat[stat.rindex(")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def cpu_report(before, after, secs):
    hz = os.sysconf("SC_CLK_TCK")
    shares = {k: (after.get(k, 0) - before.get(k, 0)) / hz / secs for k in after}
    return ", ".join(f"{k} {v * 100:.0f} %" for k, v in sorted(shares.items(), key=lambda x: -x[1])
                     if v >= 0.005)


def total(marks):
    return sum(marks.values())


def main():
    root = Path(tempfile.mkdtemp(prefix="callbus-bench-multisite."))
    say(f"dir {root}; cut {CUT:.0f}s, amisim --rate {RATE} calls/s, {OPERATORS} operators per site")
    if MM2_SET:
        say(f"mm2.properties with {MM2_SET}")
    gc_log = root / "mm2-gc.log"
    t = Topology(root, rate=RATE, operators=OPERATORS, talk="3-8", gateways=False,
                 agent_log_level="info", mm2_heap=MM2_HEAP, mm2_overrides=MM2_SET,
                 mm2_jvm_opts=f"{MM2_JVM_OPTS} {jfr_opts()} -Xlog:gc:file={gc_log}".strip(), log=say)
    try:
        t.start()
        sites = list(t.sites.values())
        topics = {s.name: [s.topic(k) for k in UP_KINDS] for s in sites}
        time.sleep(10)
        m0 = {s.name: end_offsets(s.lan, topics[s.name]) for s in sites}
        time.sleep(WARMUP)
        m1 = {s.name: end_offsets(s.lan, topics[s.name]) for s in sites}
        for s in sites:
            say(f"{s.name}: {(total(m1[s.name]) - total(m0[s.name])) / WARMUP:.0f} events/s "
                "before the cut")
        say(f"cutting the WAN of both sites for {CUT:.0f}s")
        for s in sites:
            t.cut(s.name)
        t_cut = time.monotonic()
        c_cut = end_offsets(t.central_bootstrap, [x for s in sites for x in topics[s.name]])
        time.sleep(CUT)
        marks, targets = {}, {}
        for s in sites:
            marks[s.name] = end_offsets(s.lan, topics[s.name])
        start = end_offsets(t.central_bootstrap, [x for s in sites for x in topics[s.name]])
        frozen = start == c_cut
        gc_at_restore = gc_log.stat().st_size if gc_log.exists() else 0
        cpu_at_restore = cpu_ticks()
        say(f"the link returns at MirrorMaker's uptime {mm2_uptime(t.mm2.pid):.1f} s (for its JIT and GC logs)")
        for s in sites:
            t.restore(s.name)
        t_back = time.monotonic()
        say(f"link back after {time.monotonic() - t_cut:.0f}s "
            f"(central offsets {'unchanged' if frozen else 'MOVED'} during the cut)")
        for s in sites:
            backlog = total(marks[s.name]) - total(m1[s.name])
            say(f"{s.name}: {backlog} events written during the cut "
                f"({backlog / CUT:.0f} events/s)")
            targets.update(last_ids(s.lan, marks[s.name]))
        say(f"last ids at the sites read in {time.monotonic() - t_back:.1f}s")
        secs, first = wait_centre_has(t.central_bootstrap, targets, start, t_back, timeout=max(600, CUT * 3))
        backlog = sum(total(marks[s.name]) - total(m1[s.name]) for s in sites)
        done = end_offsets(t.central_bootstrap, [x for s in sites for x in topics[s.name]])
        moved = sum(done.values()) - sum(start.values())
        say(f"RESULT catch-up after a {CUT:.0f}s cut: {secs:.1f} s until the centre had every "
            f"event written before the link returned ({backlog} events behind at restore; the "
            f"centre's offsets moved {moved} meanwhile, {moved / secs:.0f}/s)")
        say(f"CPU during the catch-up, share of one core: {cpu_report(cpu_at_restore, cpu_ticks(), secs)}")
        say(f"the first replicated record reached the centre {first:.1f} s after the link returned")
        if os.environ.get("BENCH_MS_JFR"):
            import subprocess
            subprocess.run(["jcmd", str(t.mm2.pid), "JFR.dump", "name=bench",
                            f"filename={os.environ['BENCH_MS_JFR']}"], stdout=subprocess.DEVNULL)
        n, ms = gc_pauses(gc_log, gc_at_restore)
        say(f"MirrorMaker's JVM paused {n} times for {ms:.0f} ms in all during the catch-up "
            f"(heap {MM2_HEAP!r}, options {MM2_JVM_OPTS!r})")
    finally:
        t.stop()
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(root, ignore_errors=True)  # brokers hold GBs of backlog
    return 0


if __name__ == "__main__":
    sys.exit(main())
