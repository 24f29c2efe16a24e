"""The ops subcommands of the `callbus` CLI against real Kafka brokers:
`check` (schemas), `replay` (time windows) and `lag` (replication and
consumer group lag between a site cluster and a central one).

The centre is a second private broker; "replication" is done the way
MirrorMaker 2 does it (same topic, partition, key, headers and timestamp,
offsets not kept), so the centre can be put exactly N records behind."""

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callbus_harness import SAMPLES, start_agent, start_amisim, write_agent_conf
from conftest import build_path, consume_all, create_topic, mm2_errors, produce, wait_until
from schema_check import load_registry, validate_message

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ["01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
            "04-queue-member-management"]


def cli(*args, timeout=90, stdin=None):
    """Runs build/callbus; returns CompletedProcess (text)."""
    r = subprocess.run([str(build_path("callbus")), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, input=stdin)
    print(f"$ callbus {' '.join(map(str, args))}\n-> {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
    # Under CALLBUS_BUILD=build-san a sanitizer report fails the test even
    # when the exit code happens to be the one expected.
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in r.stderr, r.stderr[-4000:]
    return r


# ---------------------------------------------------------------- check

@pytest.fixture(scope="module")
def agent_output(tmp_path_factory, kafka_bootstrap):
    """Every value the real agent published for a few real captures (amisim
    replaying them), as (topic, value bytes); the topics stay for check."""
    from conftest import ProcGroup, Site
    import uuid
    tmp = tmp_path_factory.mktemp("captures")
    group = ProcGroup(tmp)
    site = Site(f"t-cliops-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:8]}")
    out = []
    try:
        for i, name in enumerate(CAPTURES):
            sim, port = start_amisim(group, "--replay", SAMPLES / f"{name}.ami", "--max", name=f"amisim{i}")
            conf, _ = write_agent_conf(tmp, site, kafka_bootstrap, port, name=f"agent{i}")
            agent = start_agent(group, conf, name=f"agent{i}")
            sim.wait_for(r"replay finished", timeout=60)
            agent.wait_for(r"resync done", timeout=30, which="err")
            agent.stop(timeout=30)  # a clean stop flushes everything to Kafka
            sim.stop()
        for kind in ("ami", "calls", "operators", "status"):
            for r in consume_all(kafka_bootstrap, site.topic(kind), timeout=30, idle=1.0):
                out.append((site.topic(kind), r.value))
    finally:
        group.stop_all()
    return site, out


def violations(stdout):
    """--json report lines -> {line or (partition, offset): {pointer, ...}}."""
    got = {}
    for line in stdout.splitlines():
        v = json.loads(line)
        where = v.get("line") if "file" in v and "topic" not in v else (v["partition"], v["offset"])
        got.setdefault(where, set()).add(v["pointer"] or "/")
    return got


def python_pointers(msg):
    return {e.split(":", 1)[0] for e in validate_message(msg) if not e.startswith("  ")}


def mutations(msg):
    """Broken variants of one valid message: every attribute removed, wrong
    types and bad values in every data field, extra fields, ids that lie."""
    out = []
    for k in msg:
        d = copy.deepcopy(msg)
        del d[k]
        out.append(d)
    for k, v in (("epoch", "x"), ("seq", 0), ("id", "bad id"), ("time", "2026-02-30T00:00:00Z"),
                 ("time", "2026-11-26 05:00:00Z"), ("Extra", 1), ("seq", msg.get("seq", 1) + 1),
                 ("type", "callbus.nope"), ("specversion", "0.3"), ("source", "callbus://elsewhere/agent/a")):
        d = copy.deepcopy(msg)
        d[k] = v
        out.append(d)
    data = msg.get("data") or {}
    for k in data:
        for nv in (None, 12, -1, "x" * 300, "", [1], {"a": 1}, "bad\tvalue", 1.5, True):
            d = copy.deepcopy(msg)
            d["data"][k] = nv
            out.append(d)
    d = copy.deepcopy(msg)
    d["data"]["zz_extra"] = "x"
    out.append(d)
    return out


@pytest.mark.sanitizer
def test_check_passes_agent_output_and_agrees_with_python(agent_output, tmp_path, kafka_bootstrap):
    site, values = agent_output
    load_registry()
    types = {json.loads(v)["type"] for _, v in values}
    assert len(values) > 100 and len(types) >= 8, (len(values), types)
    # Every topic the agent wrote passes, read straight from Kafka.
    for kind in ("ami", "calls", "operators", "status"):
        r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "check", site.topic(kind))
        n = sum(1 for t, _ in values if t == site.topic(kind))
        assert r.returncode == 0, r.stdout
        assert f"check: {n} messages, 0 invalid, 0 violations" in r.stdout
    # The same messages, plus broken variants of one message of each type,
    # through a file: C and Python flag the same places of the same lines.
    msgs = [json.loads(v) for _, v in values]
    one_per_type = {m["type"]: m for m in msgs}
    # Every example in schemas/ (all 34 types, commands included), and
    # broken variants of those too.
    examples = [e for f in sorted((ROOT / "schemas").glob("*.schema.json"))
                for e in json.loads(f.read_text()).get("examples", [])
                if isinstance(e, dict) and "specversion" in e]
    assert len({e["type"] for e in examples}) == 34
    msgs += examples
    msgs += [b for m in list(one_per_type.values()) + examples for b in mutations(m)]
    f = tmp_path / "messages.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    r = cli("check", "--json", "--file", f)
    assert r.returncode == 1
    got = violations(r.stdout)
    disagree = [(i, python_pointers(m), got.get(i, set())) for i, m in enumerate(msgs, 1)
                if python_pointers(m) != got.get(i, set())]
    bad = sum(1 for i in range(1, len(msgs) + 1) if got.get(i))
    print(f"{len(msgs)} messages ({len(values)} from the agent, {len(types)} types; {len(examples)} schema "
          f"examples; the rest broken variants), "
          f"{bad} invalid, {len(disagree)} disagreements with Python's jsonschema")
    assert not disagree, disagree[:10]
    assert bad > 0.8 * (len(msgs) - len(values) - len(examples))
    assert f"{len(msgs)} messages, {bad} invalid" in r.stderr


@pytest.mark.sanitizer
def test_check_and_python_reject_a_trailing_newline_alike(tmp_path):
    """JSON Schema patterns are ECMA-262: `$` is the very end of the string.
    Python's re.search also lets `$` match before a final newline, so the
    test-side validator must not use it as is: a value with a trailing
    newline is rejected by both validators, at the same places."""
    import re
    load_registry()
    ex = json.loads((ROOT / "schemas" / "callbus.call.answered.schema.json").read_text())["examples"][0]
    source_pattern = json.loads((ROOT / "schemas" / "cloudevent.schema.json").read_text())["properties"]["source"]["pattern"]
    assert re.search(source_pattern, ex["source"] + "\n")  # what plain re would let through
    msgs = []
    for k, v in list(ex.items()) + [(f"data/{k}", v) for k, v in ex["data"].items()]:
        if isinstance(v, str):
            d = copy.deepcopy(ex)
            (d["data"] if k.startswith("data/") else d)[k.split("/")[-1]] = v + "\n"
            msgs.append(d)
    d = copy.deepcopy(ex)
    d["seq\n"] = d.pop("seq")  # propertyNames: ^[a-z0-9]{1,20}$
    msgs.append(d)
    f = tmp_path / "newlines.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    r = cli("check", "--json", "--file", f)
    assert r.returncode == 1
    got = violations(r.stdout)
    assert [python_pointers(m) for m in msgs] == [got.get(i, set()) for i in range(1, len(msgs) + 1)]
    # Rejected wherever a pattern (or date-time) applies, the attribute name too.
    assert {"/source", "/id", "/time", "/data/call_id", "/data/queue", "/data/operator_id"} <= set().union(*got.values())
    assert got[len(msgs)]


@pytest.mark.sanitizer
def test_check_reports_violations_in_a_topic_and_a_file(tmp_path, site, kafka_bootstrap):
    good = json.loads((ROOT / "schemas" / "callbus.call.ended.schema.json").read_text())["examples"][0]
    broken = copy.deepcopy(good)
    broken["data"]["disposition"] = "lost"
    topic = site.topic("calls")
    create_topic(kafka_bootstrap, topic, partitions=1)
    produce(kafka_bootstrap, topic, [("k", json.dumps(good)), ("k", json.dumps(broken)), ("k", b"not json")])
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "check", topic)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert f"{topic} [0] @1 [riga:agent1:calls:1795670000:19] /data/disposition: \"lost\" is not one of" in lines[0]
    assert f"{topic} [0] @2 [?] /: not JSON" in lines[1]
    assert "check: 3 messages, 2 invalid, 2 violations" in r.stdout
    # --json gives the same, machine-readable.
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "check", "--json", topic)
    assert violations(r.stdout) == {(0, 1): {"/data/disposition"}, (0, 2): {"/"}}
    # From stdin; a CR or LF at the end of a safe text is a violation (ECMA
    # regexes: $ is the very end; Python's plain re would let it pass).
    cmd = json.loads((ROOT / "schemas" / "callbus.command.pause.schema.json").read_text())["examples"][0]
    cmd["data"]["reason"] = "lunch\n"
    r = cli("check", "--file", "-", stdin=json.dumps(good) + "\n\n" + json.dumps(cmd) + "\n")
    assert r.returncode == 1
    assert "stdin:3 [central:crm1:1795669000:5] /data/reason: \"lunch\\n\" does not match" in r.stdout
    load_registry()
    assert [e.split(":")[0] for e in validate_message(cmd)] == ["/data/reason"]  # the test side agrees


@pytest.mark.sanitizer
def test_check_refuses_bad_schemas_and_arguments(tmp_path, kafka_bootstrap):
    sdir = tmp_path / "schemas"
    sdir.mkdir()
    (sdir / "x.schema.json").write_text('{"type": "object", "unevaluatedProperties": false}')
    f = tmp_path / "m.jsonl"
    f.write_text("{}\n")
    r = cli("check", "--schemas", sdir, "--file", f)
    assert r.returncode == 2
    assert 'keyword "unevaluatedProperties" is not implemented' in r.stderr
    r = cli("check", "--schemas", tmp_path / "nowhere", "--file", f)
    assert r.returncode == 2 and "nowhere" in r.stderr
    r = cli("check", "--file", tmp_path / "missing.jsonl")
    assert r.returncode == 3 and "missing.jsonl" in r.stderr
    r = cli("check")
    assert r.returncode == 2 and "usage: callbus check" in r.stderr
    r = cli("check", "--from", "yesterday", "calls")
    assert r.returncode == 2 and 'bad time "yesterday"' in r.stderr
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "check", "no.such.topic")
    assert r.returncode == 3 and "topic no.such.topic does not exist" in r.stderr


# ---------------------------------------------------------------- helpers for lag and replay

def produce_records(bootstrap, topic, records):
    """records: dicts with partition, key, value, timestamp (ms), headers;
    produced in order, waited for."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors = []
    for r in records:
        p.produce(topic, key=r.get("key"), value=r["value"], partition=r["partition"],
                  timestamp=r["timestamp"], headers=r.get("headers"),
                  on_delivery=lambda e, m: errors.append(e) if e else None)
    assert p.flush(30) == 0 and not errors, errors


def mirror(src, dst, topic, keep_last=None):
    """Copies topic from src to dst the way MirrorMaker 2 does: same
    partition, key, headers and timestamp (offsets are the target's own).
    keep_last {partition: n}: the last n records of that partition stay
    behind (the centre is n behind). Returns the records left behind."""
    keep_last = keep_last or {}
    recs = consume_all(src, topic, timeout=30, idle=0.5)
    by_part = {}
    for r in recs:
        by_part.setdefault(r.partition, []).append(r)
    copied, behind = [], []
    for p, rs in by_part.items():
        n = keep_last.get(p, 0)
        copied += rs[:len(rs) - n]
        behind += rs[len(rs) - n:]
    produce_records(dst, topic, [dict(partition=r.partition, key=r.key, value=r.value, timestamp=r.timestamp,
                                      headers=r.headers) for r in copied])
    return behind


def events(site_id, stream, n, base_ms, step_ms=1000, partitions=3, first_seq=1):
    """n CloudEvent-like records, one every step_ms from base_ms, keyed and
    spread over the partitions."""
    out = []
    for i in range(n):
        seq = first_seq + i
        ev = {"specversion": "1.0", "id": f"{site_id}:agent1:{stream}:1795670000:{seq}", "seq": seq}
        out.append(dict(partition=i % partitions, key=f"call-{i % 5}".encode(), value=json.dumps(ev).encode(),
                        timestamp=base_ms + i * step_ms, headers=[("trace", f"t{i}".encode()), ("bin", b"\xff\x00")]))
    return out


def site_conf(tmp_path, site, bootstrap=None):
    """-c FILE arguments naming the site's topic prefix (and cluster)."""
    kafka = f'kafka = [ "bootstrap.servers={bootstrap}" ];' if bootstrap else ""
    path = tmp_path / "callbus.conf"
    path.write_text(f'site = "{site.id}";\ntopic_prefix = "{site.prefix}";\n{kafka}\n')
    return ["-c", path]


def lag_json(conf, *args, rc=0):
    r = cli(*conf, "lag", "--json", *args)
    assert r.returncode == rc, r.stderr
    return json.loads(r.stdout)


def row(doc, topic):
    return next(r for r in doc["replication"] if r["topic"] == topic)


# ---------------------------------------------------------------- lag

@pytest.fixture(scope="module")
def central(tmp_path_factory):
    """A second cluster standing in for the centre (shared by this module's
    tests; their topics are their own)."""
    from conftest import KafkaBroker
    b = KafkaBroker(tmp_path_factory.mktemp("central-kafka"))
    b.start()
    yield b.bootstrap
    try:
        b.stop()
    except Exception:
        b.kill()


@pytest.mark.sanitizer
def test_lag_counts_exactly_what_the_centre_lacks(site, kafka_bootstrap, central, tmp_path):
    calls, ami, commands = site.topic("calls"), site.topic("ami"), site.topic("commands")
    for t in (calls, ami):
        create_topic(kafka_bootstrap, t, partitions=3)
        create_topic(central, t, partitions=3)
    create_topic(central, commands, partitions=2)
    create_topic(kafka_bootstrap, commands, partitions=2)
    base = int(time.time() * 1000) - 600_000
    recs = events(site.id, "calls", 30, base)
    produce_records(kafka_bootstrap, calls, recs)
    produce_records(kafka_bootstrap, ami, events(site.id, "ami", 9, base))
    # An at-least-once duplicate at the centre first, so its offsets differ
    # from the site's, then all but 3 records of p0 and 1 of p1.
    produce_records(central, calls, [recs[0]])
    behind = mirror(kafka_bootstrap, central, calls, keep_last={0: 3, 1: 1})
    mirror(kafka_bootstrap, central, ami)
    # Commands flow the other way: the site lacks the last 2 of p1.
    produce_records(central, commands, events("crm", "cmd", 6, base, partitions=2))
    behind_cmd = mirror(central, kafka_bootstrap, commands, keep_last={1: 2})
    assert len(behind) == 4 and len(behind_cmd) == 2

    t0 = time.time()
    # No --site: the configured site and cluster (-c agent.conf).
    r = cli(*site_conf(tmp_path, site, kafka_bootstrap), "lag", "--json", "--central", central,
            "--topics", "calls,ami,commands")
    t1 = time.time()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    c = row(doc, calls)
    assert (c["messages"], c["exact"], c["direction"]) == (4, True, "site -> central")
    assert {p["partition"]: p["messages"] for p in c["partitions"]} == {0: 3, 1: 1, 2: 0}
    oldest = min(b.timestamp for b in behind) / 1000
    assert t0 - oldest - 0.01 <= c["seconds"] <= t1 - oldest + 0.01, (c["seconds"], t0 - oldest)
    p2 = next(p for p in c["partitions"] if p["partition"] == 2)
    assert p2["seconds"] == 0
    assert (row(doc, ami)["messages"], row(doc, ami)["seconds"]) == (0, 0)
    cm = row(doc, commands)
    assert (cm["messages"], cm["direction"]) == (2, "central -> site")
    oldest_cmd = min(b.timestamp for b in behind_cmd) / 1000
    assert t0 - oldest_cmd - 0.01 <= cm["seconds"] <= t1 - oldest_cmd + 0.01
    print(f"lag: calls {c['messages']} messages / {c['seconds']:.1f} s, commands {cm['messages']}")

    # Thresholds: non-zero exit only when exceeded, with a clear table.
    conf = site_conf(tmp_path, site)
    common = ["--central", central, "--site", f"{site.id}={kafka_bootstrap}", "--topics", "calls,ami,commands"]
    r = cli(*conf, "lag", *common, "--max-lag", "3")
    assert r.returncode == 1
    assert "OVER THRESHOLD" in r.stdout and "LAG: 1 row(s) over the threshold" in r.stdout
    assert cli(*conf, "lag", *common, "--max-lag", "4").returncode == 0
    assert cli(*conf, "lag", *common, "--max-seconds", "1").returncode == 1

    # The centre catches up: 0 and 0, exit 0 even with zero thresholds.
    produce_records(central, calls, [dict(partition=b.partition, key=b.key, value=b.value, timestamp=b.timestamp,
                                          headers=b.headers) for b in behind])
    produce_records(kafka_bootstrap, commands, [dict(partition=b.partition, key=b.key, value=b.value,
                                                     timestamp=b.timestamp, headers=b.headers) for b in behind_cmd])
    r = cli(*conf, "lag", *common, "--max-lag", "0", "--max-seconds", "0")
    assert r.returncode == 0, r.stdout
    assert "OK: every row within the thresholds" in r.stdout
    doc = lag_json(conf, *common)
    assert [(x["messages"], x["seconds"]) for x in doc["replication"]] == [(0, 0)] * 3


@pytest.mark.sanitizer
def test_lag_is_exact_when_the_site_wrote_an_event_twice(site, kafka_bootstrap, central, tmp_path):
    """A producer retry at the site writes the last event twice, same id and
    timestamp. Mirrored, the centre has everything: 0 behind, not 1. With
    the second copy not mirrored yet it is exactly 1; with MM2 itself
    duplicating it, 0."""
    calls = site.topic("calls")
    create_topic(kafka_bootstrap, calls, partitions=1)
    create_topic(central, calls, partitions=1)
    recs = events(site.id, "calls", 5, int(time.time() * 1000) - 60_000, partitions=1)
    produce_records(kafka_bootstrap, calls, recs + [recs[-1]])
    behind = mirror(kafka_bootstrap, central, calls, keep_last={0: 1})
    conf = site_conf(tmp_path, site)
    common = ["--central", central, "--site", f"{site.id}={kafka_bootstrap}", "--topics", "calls"]
    c = row(lag_json(conf, *common), calls)
    assert (c["messages"], c["exact"], c["partitions"][0]["next_source_offset"]) == (1, True, 5)
    produce_records(central, calls, [dict(partition=0, key=b.key, value=b.value, timestamp=b.timestamp,
                                          headers=b.headers) for b in behind])
    c = row(lag_json(conf, *common), calls)
    assert (c["messages"], c["exact"], c["partitions"][0]["next_source_offset"]) == (0, True, 6)
    produce_records(central, calls, [recs[-1]])  # an at-least-once copy by MM2 on top
    c = row(lag_json(conf, *common), calls)
    assert (c["messages"], c["exact"]) == (0, True)


@pytest.mark.sanitizer
def test_lag_of_a_topic_the_centre_has_not_seen_and_of_a_consumer_group(site, kafka_bootstrap, central, tmp_path):
    calls = site.topic("calls")
    create_topic(kafka_bootstrap, calls, partitions=2)
    create_topic(central, site.topic("operators"), partitions=2)
    base = int(time.time() * 1000) - 120_000
    recs = events(site.id, "calls", 6, base, partitions=2)
    produce_records(kafka_bootstrap, calls, recs)
    conf = site_conf(tmp_path, site)
    # The sites of a deployment in a file: "NAME BOOTSTRAP" a line.
    sites = tmp_path / "sites"
    sites.write_text(f"# site cluster\n{site.id} {kafka_bootstrap}  # the only one\n\n")
    common = ["--central", central, "--sites", sites]
    doc = lag_json(conf, *common, "--topics", "calls,operators")
    c = row(doc, calls)
    assert c["messages"] == 6 and c["note"] == "no such topic at the target yet"
    assert row(doc, site.topic("operators")).get("note") == "no such topic at the source"
    # The centre consumes calls in group crm: 2 of p0's 3 and none of p1.
    mirror(kafka_bootstrap, central, calls)
    from confluent_kafka import Consumer, TopicPartition
    group = f"crm-{site.id}"
    cons = Consumer({"bootstrap.servers": central, "group.id": group, "enable.auto.commit": False})
    cons.commit(offsets=[TopicPartition(calls, 0, 2), TopicPartition(calls, 1, 0)], asynchronous=False)
    cons.close()
    t0 = time.time()
    doc = lag_json(conf, *common, "--topics", "calls", "--group", group)
    t1 = time.time()
    g = doc["groups"][0]
    assert (g["group"], g["state"], g["members"]) == (group, "Empty", 0)
    (t,) = g["topics"]
    assert t["topic"] == calls and t["messages"] == 1 + 3
    parts = {p["partition"]: p for p in t["partitions"]}
    assert (parts[0]["committed"], parts[0]["end"], parts[0]["messages"]) == (2, 3, 1)
    # Seconds: from the first unconsumed record (p1 offset 0 = recs[1]).
    oldest = recs[1]["timestamp"] / 1000
    assert t0 - oldest - 0.01 <= t["seconds"] <= t1 - oldest + 0.01
    r = cli(*conf, "lag", *common, "--topics", "calls", "--group", group, "--max-lag", "3")
    assert r.returncode == 1 and f"consumer group {group} on the central cluster (Empty, 0 members)" in r.stdout


@pytest.mark.sanitizer
def test_lag_refuses_bad_arguments_and_bounds_its_wait_on_a_dead_cluster(site, kafka_bootstrap, tmp_path):
    from conftest import free_port
    dead = f"127.0.0.1:{free_port()}"
    r = cli("lag", "--site", f"x={kafka_bootstrap}")
    assert r.returncode == 2 and "--central BOOTSTRAP is required" in r.stderr
    r = cli("lag", "--central", kafka_bootstrap, "--site", "bad site=x:1")
    assert r.returncode == 2 and 'bad site "bad site"' in r.stderr
    r = cli("lag", "--central", kafka_bootstrap, "--site", f"a={kafka_bootstrap}", "--topics", "calls,cdr")
    assert r.returncode == 2 and 'unknown topic kind "cdr"' in r.stderr
    r = cli("lag", "--central", kafka_bootstrap, "--site", f"a={kafka_bootstrap}", "--max-lag", "ten")
    assert r.returncode == 2 and "--max-lag: not a count" in r.stderr
    r = cli("lag", "--central", kafka_bootstrap, "--sites", "/nonexistent/sites")
    assert r.returncode == 2 and "--sites /nonexistent/sites: No such file" in r.stderr
    (tmp_path / "sites").write_text("riga\n")
    r = cli("lag", "--central", kafka_bootstrap, "--sites", tmp_path / "sites")
    assert r.returncode == 2 and 'sites:1: expected "NAME BOOTSTRAP"' in r.stderr
    for args, who in ((["--central", dead, "--site", f"{site.id}={kafka_bootstrap}"], f"central cluster {dead}"),
                      (["--central", kafka_bootstrap, "--site", f"{site.id}={dead}"], f"site {site.id} cluster {dead}")):
        t0 = time.time()
        r = cli("lag", *args, "--group", "g", "--timeout", "3", timeout=60)
        assert r.returncode == 3
        assert f"ERROR: {who}: cannot reach the cluster" in r.stdout
        assert time.time() - t0 < 20  # one bounded wait per cluster, not one per topic


@pytest.mark.sanitizer
def test_per_cluster_kafka_properties(site, kafka_bootstrap, central, tmp_path):
    """-X CLUSTER:name=value goes to that cluster only (after the plain -X,
    which still goes to all). SSL against these plaintext brokers shows which
    cluster a property reached: exactly that one becomes unreachable."""
    calls = site.topic("calls")
    for bs in (kafka_bootstrap, central):
        create_topic(bs, calls, partitions=1)
    produce_records(kafka_bootstrap, calls, events(site.id, "calls", 3, int(time.time() * 1000) - 60_000,
                                                   partitions=1))
    mirror(kafka_bootstrap, central, calls)
    conf = site_conf(tmp_path, site)
    common = ["--central", central, "--site", f"{site.id}={kafka_bootstrap}", "--topics", "calls", "--timeout", "3"]

    def lag(*xs):
        return cli(*conf, *[a for x in xs for a in ("-X", x)], "lag", *common, timeout=60)
    r = lag("central:no.such.property=1")
    assert r.returncode == 3 and "callbus lag: cluster central: kafka property no.such.property:" in r.stderr
    r = lag(f"{site.id}:no.such.property=1")
    assert r.returncode == 3 and f"callbus lag: cluster {site.id}: kafka property no.such.property:" in r.stderr
    r = lag("central:security.protocol=SSL")
    assert r.returncode == 3 and f"ERROR: central cluster {central}: cannot reach the cluster" in r.stdout
    r = lag(f"{site.id}:security.protocol=SSL")
    assert r.returncode == 3 and f"ERROR: site {site.id} cluster {kafka_bootstrap}: cannot reach" in r.stdout
    assert "central cluster" not in r.stdout.split("\n", 1)[1]
    r = lag("security.protocol=SSL", "central:security.protocol=PLAINTEXT")
    assert r.returncode == 3 and f"ERROR: site {site.id} cluster {kafka_bootstrap}: cannot reach" in r.stdout
    r = lag("security.protocol=SSL", "central:security.protocol=PLAINTEXT", f"{site.id}:security.protocol=PLAINTEXT")
    assert r.returncode == 0 and "callbus lag at" in r.stdout
    # A cluster the command does not have is a typo: refused, not ignored.
    r = lag("centrl:security.protocol=SSL")
    assert r.returncode == 2 and f'-X centrl:security.protocol=SSL: no cluster "centrl" here; its clusters: central, {site.id}' in r.stderr
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "-X", "central:client.id=x", "tail", calls)
    assert r.returncode == 2 and "tail talks to one cluster: use plain -X name=value" in r.stderr

    # replay: "source" (the topic's cluster) and "target" (--to-bootstrap).
    def replay(*xs, to=True):
        more = ["--to-topic", calls, "--to-bootstrap", central] if to else []
        return cli("-X", f"bootstrap.servers={kafka_bootstrap}", *[a for x in xs for a in ("-X", x)], "replay",
                   calls, "--from", "-1h", *more, "--timeout", "3", timeout=60)
    r = replay("target:no.such.property=1")
    assert r.returncode == 3 and "callbus replay: cluster target: kafka property no.such.property:" in r.stderr
    r = replay("target:security.protocol=SSL")
    assert r.returncode == 3 and "cannot reach the cluster" in r.stderr
    r = replay("security.protocol=SSL", "source:security.protocol=PLAINTEXT", "target:security.protocol=PLAINTEXT")
    assert r.returncode == 0 and "DRY RUN: nothing written" in r.stdout
    r = replay("target:security.protocol=SSL", to=False)
    assert r.returncode == 2 and 'no cluster "target" here; its clusters: source' in r.stderr


# ---------------------------------------------------------------- replay

def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@pytest.fixture
def window_topic(site, kafka_bootstrap):
    """30 records, one a minute over the last 40 minutes, in 3 partitions;
    returns (topic, records, base ms)."""
    topic = site.topic("calls")
    create_topic(kafka_bootstrap, topic, partitions=3)
    base = (int(time.time()) - 2400) * 1000
    recs = events(site.id, "calls", 30, base, step_ms=60_000)
    produce_records(kafka_bootstrap, topic, recs)
    return topic, recs, base


def key_of(r):
    return (r.partition, r.key, r.value, r.timestamp, tuple((k, bytes(v)) for k, v in r.headers))


@pytest.mark.sanitizer
def test_replay_prints_exactly_the_window(window_topic, kafka_bootstrap):
    topic, recs, base = window_topic
    frm, to = base + 10 * 60_000, base + 20 * 60_000  # records 10..19
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "replay", topic, "--from", iso(frm), "--to", iso(to))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    want = [x for x in recs if frm <= x["timestamp"] < to]
    assert len(lines) == len(want) == 10
    assert sorted((x["partition"], x["timestamp"], x["key"], json.dumps(x["value"], sort_keys=True)) for x in lines) == \
        sorted((w["partition"], w["timestamp"], w["key"].decode(), json.dumps(json.loads(w["value"]), sort_keys=True))
               for w in want)
    # Offsets are the real ones; headers kept, non-UTF-8 bytes as base64.
    all_recs = {(x.partition, x.offset): x for x in consume_all(kafka_bootstrap, topic, timeout=30)}
    for x in lines:
        assert all_recs[(x["partition"], x["offset"])].timestamp == x["timestamp"]
        assert x["headers"][0]["name"] == "trace" and x["headers"][1] == {"name": "bin", "value_base64": "/wA="}
        assert x["time"] == iso(x["timestamp"])
    assert "10 records" in r.stderr
    # Relative times: the last 5 minutes hold nothing of it; -1d holds all.
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "replay", topic, "--from", "-5m")
    assert r.returncode == 0 and r.stdout == ""
    r = cli("-X", f"bootstrap.servers={kafka_bootstrap}", "replay", topic, "--from", "-1d")
    assert len(r.stdout.splitlines()) == 30
    # What replay prints, check reads back (topic, partition, offset named).
    r2 = cli("check", "--file", "-", stdin=r.stdout)
    assert r2.returncode == 1 and f"{topic} [0] @0" in r2.stdout


@pytest.mark.sanitizer
def test_replay_into_another_cluster_keeps_keys_headers_timestamps(window_topic, kafka_bootstrap, central):
    topic, recs, base = window_topic
    frm, to = iso(base + 10 * 60_000), iso(base + 20 * 60_000)
    target = topic + ".replayed"
    src = ["-X", f"bootstrap.servers={kafka_bootstrap}", "replay", topic, "--from", frm, "--to", to]
    r = cli(*src, "--to-topic", target, "--to-bootstrap", central)
    assert r.returncode == 3 and f"target topic {target} does not exist on {central}: create it first" in r.stderr
    create_topic(central, target, partitions=3)
    r = cli(*src, "--to-topic", target, "--to-bootstrap", central)  # dry run
    assert r.returncode == 0
    assert "total: 10 messages in 3 partitions" in r.stdout
    assert "DRY RUN: nothing written. Add --execute to copy these 10 messages." in r.stdout
    assert consume_all(central, target, timeout=5, idle=1) == []
    r = cli(*src, "--to-topic", target, "--to-bootstrap", central, "--execute")
    assert r.returncode == 0 and "copied 10 messages into" in r.stdout
    want = [x for x in consume_all(kafka_bootstrap, topic, timeout=30)
            if base + 10 * 60_000 <= x.timestamp < base + 20 * 60_000]
    got = consume_all(central, target, expected_count=10, timeout=30)
    assert sorted(map(key_of, got)) == sorted(map(key_of, want))
    # Into another topic of the same cluster, too; never into itself.
    same = topic + ".copy"
    create_topic(kafka_bootstrap, same, partitions=3)
    r = cli(*src, "--to-topic", same, "--execute")
    assert r.returncode == 0
    assert sorted(map(key_of, consume_all(kafka_bootstrap, same, expected_count=10, timeout=30))) == \
        sorted(map(key_of, want))
    r = cli(*src, "--to-topic", topic, "--execute")
    assert r.returncode == 2 and "refusing to copy" in r.stderr


def committed(bootstrap, group, topic, partitions=3):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)}
    finally:
        c.close()


def consume_group(bootstrap, group, topic, count, timeout=60):
    """A real group member: subscribes, reads count records, commits, leaves."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
        if out:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return out


@pytest.mark.sanitizer
def test_replay_resets_an_inactive_group_and_refuses_an_active_one(window_topic, kafka_bootstrap, site):
    import threading
    topic, recs, base = window_topic
    group = f"crm-{site.id}"
    assert len(consume_group(kafka_bootstrap, group, topic, 30)) == 30
    assert committed(kafka_bootstrap, group, topic) == {0: 10, 1: 10, 2: 10}
    args = ["-X", f"bootstrap.servers={kafka_bootstrap}", "replay", topic, "--from", iso(base + 15 * 60_000),
            "--reset-group", group]
    r = cli(*args)  # dry run: records 15..29, offsets 5 in every partition
    assert r.returncode == 0
    assert "DRY RUN: offsets unchanged" in r.stdout and "reprocesses 15 messages" in r.stdout
    assert committed(kafka_bootstrap, group, topic) == {0: 10, 1: 10, 2: 10}
    r = cli(*args, "--execute")
    assert r.returncode == 0 and f"consumer group {group} now starts {topic}" in r.stdout
    assert committed(kafka_bootstrap, group, topic) == {0: 5, 1: 5, 2: 5}
    again = consume_group(kafka_bootstrap, group, topic, 15)
    assert sorted(m.timestamp()[1] for m in again) == [x["timestamp"] for x in recs[15:]]

    # An active member: refused, offsets untouched.
    from confluent_kafka import Consumer
    stop, assigned = threading.Event(), threading.Event()
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.set())

    def run():
        while not stop.is_set():
            c.poll(0.2)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        assert assigned.wait(60), "the group member got no assignment"
        r = cli(*args, "--execute")
        assert r.returncode == 1
        assert f"REFUSED: consumer group {group} is active (Stable, 1 members)" in r.stderr
        assert committed(kafka_bootstrap, group, topic) == {0: 10, 1: 10, 2: 10}
    finally:
        stop.set()
        t.join(10)
        c.close()


@pytest.mark.sanitizer
def test_replay_refuses_bad_arguments_with_clear_errors(kafka_bootstrap, site):
    from conftest import free_port
    k = ["-X", f"bootstrap.servers={kafka_bootstrap}", "replay"]
    for args, msg in (
            (["calls"], "--from is required"),
            (["calls", "--from", "yesterday"], 'bad time "yesterday"'),
            (["calls", "--from", "2026-11-26T05:00:00"], "has no zone: add Z for UTC"),
            (["calls", "--from", "-2 hours"], "bad relative time"),
            (["calls", "--from", "-1h", "--to", "-2h"], "--to must be later than --from"),
            (["calls", "--from", "-1h", "--to", "-1m", "--reset-group", "g"], "--to has no meaning"),
            (["calls", "--from", "-1h", "--execute"], "--execute only applies"),
            (["calls", "other", "--from", "-1h"], "give exactly one TOPIC")):
        r = cli(*k, *args)
        assert r.returncode == 2 and msg in r.stderr, args
    r = cli(*k, "no.such.topic", "--from", "-1h")
    assert r.returncode == 3 and "topic no.such.topic does not exist" in r.stderr
    t0 = time.time()
    r = cli("-X", f"bootstrap.servers=127.0.0.1:{free_port()}", "replay", "x.y", "--from", "-1h",
            "--timeout", "3", timeout=60)
    assert r.returncode == 3 and "cannot reach the cluster" in r.stderr
    assert time.time() - t0 < 20


# ---------------------------------------------------------------- lag with real MirrorMaker 2

def mm2_config(path, site_bs, central_bs, topic_regex):
    """Dedicated-mode MirrorMaker 2, site -> central only, topic names kept."""
    rf = "".join(f"{k}.replication.factor = 1\n" for k in
                 ("checkpoints.topic", "heartbeats.topic", "offset-syncs.topic", "offset.storage",
                  "status.storage", "config.storage"))
    path.write_text(f"""clusters = site, central
site.bootstrap.servers = {site_bs}
central.bootstrap.servers = {central_bs}
site->central.enabled = true
site->central.topics = {topic_regex}
central->site.enabled = false
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
replication.factor = 1
{rf}emit.heartbeats.enabled = false
emit.checkpoints.enabled = false
sync.group.offsets.enabled = false
sync.topic.acls.enabled = false
refresh.topics.interval.seconds = 5
""")
    return path


def test_lag_through_real_mirrormaker2(site, kafka_bootstrap, central, procs, tmp_path):
    """MM2 (the pinned release) replicates calls; lag reaches 0; with MM2
    stopped, exactly the records produced since are counted."""
    from conftest import KAFKA_SH
    calls = site.topic("calls")
    create_topic(kafka_bootstrap, calls, partitions=3)
    base = int(time.time() * 1000) - 60_000
    produce_records(kafka_bootstrap, calls, events(site.id, "calls", 20, base))
    cfg = mm2_config(tmp_path / "mm2.properties", kafka_bootstrap, central, calls.replace(".", r"\."))
    mm2 = procs.start([KAFKA_SH, "mirror-maker", cfg, "--clusters", "central"], name="mm2")
    common = ["--central", central, "--site", f"{site.id}={kafka_bootstrap}", "--topics", "calls"]
    conf = site_conf(tmp_path, site)

    def caught_up():
        assert mm2.alive, mm2.log_tail()
        r = cli(*conf, "lag", "--json", *common)
        return r.returncode == 0 and row(json.loads(r.stdout), calls).get("messages") == 0
    t0 = time.monotonic()
    wait_until(caught_up, timeout=300, interval=3, what="MM2 to replicate the calls topic")
    print(f"MM2 caught up {time.monotonic() - t0:.0f} s after its start")
    # Its log: only the documented ERROR of the checkpoint connector.
    assert mm2_errors(mm2) == ({"site->central"}, [])
    assert len(consume_all(central, calls, timeout=30)) >= 20
    mm2.stop(timeout=30)
    produce_records(kafka_bootstrap, calls, events(site.id, "calls", 7, base + 30_000, first_seq=21))
    doc = lag_json(conf, *common)
    c = row(doc, calls)
    assert (c["messages"], c["exact"]) == (7, True)
    assert c["seconds"] >= 29
