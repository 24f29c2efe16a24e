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
