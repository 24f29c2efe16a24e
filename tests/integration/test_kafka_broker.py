"""The test Kafka itself: the pinned Apache Kafka broker, and Debian's
librdkafka (what callbus links) against it."""

import subprocess
import time

from conftest import build_path, consume_all, create_topic, produce


def test_rdkafka_idempotent_producer_and_consumer_group(kafka_bootstrap, unique_topic_prefix):
    """build/tests/rdkafka_check: idempotent producer (acks=all) + consumer
    group subscribe/commit with the system librdkafka."""
    check = build_path("tests/rdkafka_check")
    topic = f"{unique_topic_prefix}.check"
    r = subprocess.run([str(check), kafka_bootstrap, topic, "2000"], capture_output=True,
                       text=True, timeout=120)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "produced 2000 messages idempotently" in r.stdout
    assert "OK" in r.stdout
    # and the Python client sees the same 2000 records
    recs = consume_all(kafka_bootstrap, topic, expected_count=2000, timeout=30)
    assert len(recs) == 2000
    assert sorted(int(r.value.split()[1]) for r in recs) == list(range(2000))


def test_compacted_topic_and_helpers(kafka_bootstrap, site):
    """create_topic / produce / consume_all round trip, keys and headers kept."""
    topic = site.topic("status")
    create_topic(kafka_bootstrap, topic, partitions=1, config={"cleanup.policy": "compact"})
    produce(kafka_bootstrap, topic, [("agent-1", "up", [("h", b"1")]), ("agent-2", "down")])
    recs = consume_all(kafka_bootstrap, topic)
    assert [(r.key, r.value) for r in recs] == [(b"agent-1", b"up"), (b"agent-2", b"down")]
    assert recs[0].headers == [("h", b"1")]
    key, value, partition, offset, ts = recs[1]
    assert (partition, offset) == (0, 1) and ts > 0


def test_private_broker_restart_keeps_data(private_broker):
    """Stop and restart a private broker: same address, data still there."""
    bs = private_broker.bootstrap
    topic = "restart-check"
    produce(bs, topic, [(f"k{i}", f"v{i}") for i in range(100)])
    assert len(consume_all(bs, topic, expected_count=100)) == 100

    private_broker.stop()
    assert not private_broker.running
    t0 = time.monotonic()
    assert private_broker.start() == bs
    print(f"broker restart took {time.monotonic() - t0:.1f}s")
    assert private_broker.running

    recs = consume_all(bs, topic, expected_count=100, timeout=30)
    assert sorted(r.value for r in recs) == sorted(f"v{i}".encode() for i in range(100))
    produce(bs, topic, [("k", "after-restart")])
    assert len(consume_all(bs, topic, expected_count=101)) == 101


def test_proc_helper(procs):
    p = procs.start(["sh", "-c", "echo starting; sleep 0.2; echo ready on port 42 >&2; sleep 60"],
                    name="dummy")
    m = p.wait_for(r"ready on port (\d+)", timeout=10)
    assert m.group(1) == "42"
    assert p.alive
    assert p.stop(timeout=5) == -15
    assert "starting" in p.output("out")
