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


def wait_centre_has(central, targets, start, t0, timeout):
    """Seconds until every target id is in its partition at the centre,
    scanning from `start` offsets (the centre's ends when the link returned)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": central, "group.id": "bench-ms-scan",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "fetch.max.bytes": 52428800})
    todo = {tp: f'"id":"{i}"'.encode() for tp, i in targets.items()}
    seen = 0
    next_report = time.monotonic() + 15
    try:
        c.assign([TopicPartition(t, p, start.get((t, p), 0)) for (t, p) in todo])
        while todo:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{len(todo)} partitions not caught up after {timeout}s")
            for m in c.consume(5000, 0.5):
                if m.error():
                    continue
                seen += 1
                tp = (m.topic(), m.partition())
                if tp in todo and todo[tp] in m.value():
                    del todo[tp]
            if time.monotonic() >= next_report:
                say(f"  {time.monotonic() - t0:.0f}s after the link returned: {seen} records "
                    f"replicated, {len(todo)} partitions still behind")
                next_report += 15
    finally:
        c.close()
    return time.monotonic() - t0, seen


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


def total(marks):
    return sum(marks.values())


def main():
    root = Path(tempfile.mkdtemp(prefix="callbus-bench-multisite."))
    say(f"dir {root}; cut {CUT:.0f}s, amisim --rate {RATE} calls/s, {OPERATORS} operators per site")
    gc_log = root / "mm2-gc.log"
    t = Topology(root, rate=RATE, operators=OPERATORS, talk="3-8", gateways=False,
                 agent_log_level="info", mm2_heap=MM2_HEAP,
                 mm2_jvm_opts=f"{MM2_JVM_OPTS} -Xlog:gc:file={gc_log}".strip(), log=say)
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
        secs, seen = wait_centre_has(t.central_bootstrap, targets, start, t_back, timeout=max(600, CUT * 3))
        backlog = sum(total(marks[s.name]) - total(m1[s.name]) for s in sites)
        say(f"RESULT catch-up after a {CUT:.0f}s cut: {secs:.1f} s until the centre had every "
            f"event written before the link returned ({backlog} events behind at restore, "
            f"{seen} records replicated meanwhile, {seen / secs:.0f} records/s)")
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
