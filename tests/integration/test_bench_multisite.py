"""The catch-up bench's (tests/bench/bench_multisite.py) reading of the
sites' last events. With a standby agent the last offsets of a partition are
transaction markers, never delivered to a consumer. Every partition must get
its last data record's id: a partition without one is not waited for."""

import importlib.util
import json
import uuid
from pathlib import Path

from conftest import create_topic, wait_until
from multisite import end_offsets

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_multisite.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_multisite", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_last_ids_past_transaction_markers(kafka_bootstrap, unique_topic_prefix):
    from confluent_kafka import Producer
    topics = [f"{unique_topic_prefix}-{i}" for i in range(6)]
    for t in topics:
        create_topic(kafka_bootstrap, t, partitions=3)
    p = Producer({"bootstrap.servers": kafka_bootstrap,
                  "transactional.id": f"{unique_topic_prefix}-{uuid.uuid4().hex}"})
    p.init_transactions()
    want = {}
    for _ in range(5):
        p.begin_transaction()
        for t in topics:
            for part in range(3):
                for _ in range(7):
                    i = str(uuid.uuid4())
                    want[(t, part)] = i
                    p.produce(t, json.dumps({"id": i}).encode(), partition=part)
        p.commit_transaction()
    # 7 records and a marker, 5 times; the coordinator writes the last
    # markers after commit_transaction() returns.
    wait_until(lambda: set(end_offsets(kafka_bootstrap, topics).values()) == {5 * 8},
               timeout=30, what="the last transaction markers")
    marks = end_offsets(kafka_bootstrap, topics)
    got = load_bench().last_ids(kafka_bootstrap, marks)
    assert got == want


def test_centre_watch_sees_committed_targets_only(kafka_bootstrap, unique_topic_prefix):
    """The catch-up watch (the last committed records of each partition, by
    the order of the agent's ids) finds committed targets, and does not count
    a target in a transaction still open: it reads committed records only,
    as the CRM does."""
    import time
    import pytest
    from confluent_kafka import KafkaException, Producer
    topic = f"{unique_topic_prefix}-centre"
    create_topic(kafka_bootstrap, topic, partitions=2)

    def ends():   # None until the new topic's partitions have a leader
        try:
            return end_offsets(kafka_bootstrap, [topic])
        except KafkaException:
            return None
    start = wait_until(ends, timeout=30, what="the topic's leaders")
    p = Producer({"bootstrap.servers": kafka_bootstrap,
                  "transactional.id": f"{unique_topic_prefix}-{uuid.uuid4().hex}"})
    p.init_transactions()
    p.begin_transaction()
    for n in range(300):
        p.produce(topic, json.dumps({"id": f"x:agent-x:calls:7:{n}"}).encode(), partition=n % 2)
    p.commit_transaction()
    # The end offsets read_committed clients see (the last stable offset)
    # pass the transaction only once its markers are written, which the
    # coordinator does after commit_transaction returns: read at once, a
    # partition's could still be 0 (1 run in ~8 here). 150 records and the
    # marker in each partition.
    def committed():
        m = ends()
        return m if m and set(m.values()) == {151} else None
    marks = wait_until(committed, timeout=30, what="the transaction's markers")
    bench = load_bench()
    targets = bench.last_ids(kafka_bootstrap, marks)
    assert set(targets.values()) == {"x:agent-x:calls:7:298", "x:agent-x:calls:7:299"}
    secs, first = bench.wait_centre_has(kafka_bootstrap, targets, start, time.monotonic(), timeout=30)
    assert first is not None and first <= secs < 30

    p.begin_transaction()
    p.produce(topic, json.dumps({"id": "x:agent-x:calls:7:300"}).encode(), partition=0)
    p.flush()
    with pytest.raises(TimeoutError):
        bench.wait_centre_has(kafka_bootstrap, {(topic, 0): "x:agent-x:calls:7:300"}, start,
                              time.monotonic(), timeout=3)
    p.abort_transaction()
    assert bench.id_order("tallinn:agent-tallinn:ami:1796656125:99") < \
        bench.id_order("tallinn:agent-tallinn:ami:1796656125:100") < \
        bench.id_order("tallinn:agent-tallinn:ami:1796656126:1")


def test_gc_pauses_counts_only_what_came_after_the_mark(tmp_path):
    log = tmp_path / "gc.log"
    before = "[1.201s][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 24M->5M(256M) 3.456ms\n"
    log.write_text(before +
                   "[2.000s][info][gc] GC(1) Pause Young (Normal) (G1 Evacuation Pause) 30M->6M(256M) 10.5ms\n"
                   "[2.100s][info][gc] GC(2) Concurrent Mark Cycle\n"
                   "[2.300s][info][gc] GC(2) Pause Remark 40M->40M(256M) 1ms\n")
    gc_pauses = load_bench().gc_pauses
    assert gc_pauses(log, 0) == (3, 14.956)
    assert gc_pauses(log, len(before)) == (2, 11.5)
    assert gc_pauses(tmp_path / "missing.log", 0) == (0, 0.0)
