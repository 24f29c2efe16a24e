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
from conftest import build_path, consume_all, create_topic, produce, wait_until
from schema_check import load_registry, validate_message

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ["01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
            "04-queue-member-management"]


def cli(*args, timeout=90, stdin=None):
    """Runs build/callbus; returns CompletedProcess (text)."""
    r = subprocess.run([str(build_path("callbus")), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, input=stdin)
    print(f"$ callbus {' '.join(map(str, args))}\n-> {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
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
    msgs += [b for m in one_per_type.values() for b in mutations(m)]
    f = tmp_path / "messages.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    r = cli("check", "--json", "--file", f)
    assert r.returncode == 1
    got = violations(r.stdout)
    disagree = [(i, python_pointers(m), got.get(i, set())) for i, m in enumerate(msgs, 1)
                if python_pointers(m) != got.get(i, set())]
    bad = sum(1 for i in range(1, len(msgs) + 1) if got.get(i))
    print(f"{len(msgs)} messages ({len(values)} from the agent, {len(types)} types), "
          f"{bad} invalid, {len(disagree)} disagreements with Python's jsonschema")
    assert not disagree, disagree[:10]
    assert bad > 0.8 * (len(msgs) - len(values))
    assert f"{len(msgs)} messages, {bad} invalid" in r.stderr


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
    # regexes: $ is the very end; Python's re would let it pass).
    cmd = json.loads((ROOT / "schemas" / "callbus.command.pause.schema.json").read_text())["examples"][0]
    cmd["data"]["reason"] = "lunch\n"
    r = cli("check", "--file", "-", stdin=json.dumps(good) + "\n\n" + json.dumps(cmd) + "\n")
    assert r.returncode == 1
    assert "stdin:3 [central:crm1:1795669000:5] /data/reason: \"lunch\\n\" does not match" in r.stdout
    load_registry()
    assert validate_message(cmd) == []  # the known difference, kept visible


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
