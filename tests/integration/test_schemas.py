"""The message schemas in schemas/ (no Kafka needed).

Every schema is a valid draft 2020-12 schema, its examples validate, typical
mistakes are rejected, and schemas/asyncapi.yaml parses and only references
schema files that exist. Needs jsonschema (>= 4.18, with referencing) and
PyYAML.
"""

import copy
import json
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema_check  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))

CALL_TYPES = ["started", "queued", "offered", "answered", "held", "unheld", "transferred",
              "abandoned", "ended"]
OPERATOR_TYPES = ["logged_in", "logged_out", "paused", "ready", "ringing", "busy", "unavailable"]
COMMAND_TYPES = ["originate", "answer", "hangup", "transfer", "pause", "unpause", "queue_login",
                 "queue_logout", "listen", "whisper"]
STATE_TYPES = {"callbus.state.call": "state.calls", "callbus.state.operator": "state.operators",
               "callbus.queue.stats": "state.queues"}
EXPECTED_TYPES = (["callbus.ami.event", "callbus.agent.status", "callbus.agent.gap", "callbus.agent.lease",
                   "callbus.result"]
                  + list(STATE_TYPES)
                  + ["callbus.call." + t for t in CALL_TYPES]
                  + ["callbus.operator." + t for t in OPERATOR_TYPES]
                  + ["callbus.command." + t for t in COMMAND_TYPES])


@pytest.fixture(scope="module")
def reg():
    return schema_check.load_registry(SCHEMAS)


def example(reg, mtype, i=0):
    return copy.deepcopy(reg.schemas[mtype]["examples"][i])


def errors_of(reg, msg):
    return schema_check.validate_message(msg, reg)


def assert_rejected(reg, msg, needle):
    errs = errors_of(reg, msg)
    assert errs, f"accepted: {json.dumps(msg)}"
    assert any(needle in e for e in errs), f"{needle!r} not in {errs}"


# ---- the schema files themselves ------------------------------------------

def test_one_schema_per_type(reg):
    assert sorted(reg.types) == sorted(EXPECTED_TYPES)
    assert (SCHEMAS / "cloudevent.schema.json").is_file()


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    stem = path.name[: -len(".schema.json")]
    if stem in schema_check.NON_TYPE_SCHEMAS:
        assert schema["$id"] == f"https://callbus.dev/schemas/{path.name}"
        return
    assert schema["$id"] == f"https://callbus.dev/schemas/{stem}.json"
    assert {"$ref": "cloudevent.schema.json"} in schema["allOf"]
    assert schema["properties"]["type"] == {"const": stem}
    assert schema["examples"], "every type schema has at least one example"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_examples_validate(reg, path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    stem = path.name[: -len(".schema.json")]
    if stem == "defs":
        return
    assert schema.get("examples"), "no examples"
    for ex in schema["examples"]:
        assert errors_of(reg, ex) == [], json.dumps(ex)
        if stem != "cloudevent":
            assert ex["type"] == stem


def test_examples_look_real(reg):
    for mtype in reg.types:
        for ex in reg.schemas[mtype]["examples"]:
            text = json.dumps(ex)
            assert "riga" in text or "central" in text
            for junk in ("foo", "bar", "string", "xxx", "example.com"):
                assert junk not in text.lower(), (mtype, junk)


def test_every_ref_resolves(reg):
    """Every $ref of every schema resolves through the registry."""
    def refs(node, acc):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                acc.append(node["$ref"])
            for v in node.values():
                refs(v, acc)
        elif isinstance(node, list):
            for v in node:
                refs(v, acc)
        return acc
    for stem, schema in reg.schemas.items():
        resolver = reg.registry.resolver(base_uri=schema["$id"])
        for r in refs(schema, []):
            resolver.lookup(r)  # raises Unresolvable when dangling


# ---- negative cases ---------------------------------------------------------

def test_missing_id_rejected(reg):
    msg = example(reg, "callbus.call.answered")
    del msg["id"]
    assert_rejected(reg, msg, "'id' is a required property")


def test_bad_id_rejected(reg):
    msg = example(reg, "callbus.call.answered")
    msg["id"] = "riga-agent1-42"
    assert_rejected(reg, msg, "/id")


def test_id_must_agree_with_epoch_and_seq(reg):
    msg = example(reg, "callbus.call.answered")
    msg["seq"] += 1
    assert_rejected(reg, msg, "seq")
    msg = example(reg, "callbus.call.answered")
    msg["source"] = "callbus://tallinn/agent/agent1"
    assert_rejected(reg, msg, "site")


def test_wrong_type_const_rejected(reg):
    # each type schema pins its own type
    msg = example(reg, "callbus.call.ended")
    msg["type"] = "callbus.call.answered"
    errs = [e.message for e in reg.validators["callbus.call.ended"].iter_errors(msg)]
    assert any("'callbus.call.ended' was expected" in e for e in errs), errs
    # and an ended payload labelled started lacks what started requires
    msg["type"] = "callbus.call.started"
    assert_rejected(reg, msg, "'channel' is a required property")


def test_unknown_type_rejected(reg):
    msg = example(reg, "callbus.call.ended")
    msg["type"] = "callbus.call.exploded"
    assert_rejected(reg, msg, "unknown message type")
    assert errors_of(reg, [1, 2]) and errors_of(reg, {"data": {}})


@pytest.mark.parametrize("bad", ["2026-11-26 05:17:42Z", "2026-11-26T05:17:42", "2026-13-01T00:00:00Z",
                                 "2026-02-30T00:00:00Z", "yesterday", "1795670259"])
def test_bad_time_rejected(reg, bad):
    msg = example(reg, "callbus.call.answered")
    msg["time"] = bad
    assert_rejected(reg, msg, "/time")


def test_format_checker_is_strict():
    assert schema_check.is_rfc3339("2026-11-26T05:17:42.907184Z")
    assert schema_check.is_rfc3339("2026-11-26T08:17:42+03:00")
    assert not schema_check.is_rfc3339("2026-11-26T25:17:42Z")
    assert not schema_check.is_rfc3339("2026-11-26T05:17:42+24:00")


@pytest.mark.parametrize("field,value,needle", [
    ("seq", 0, "minimum of 1"), ("seq", "42", "not of type 'integer'"), ("seq", 4.2, "integer"),
    ("epoch", "1795670000", "integer"), ("specversion", "0.3", "/specversion"),
    ("source", "http://riga/agent/agent1", "/source"), ("datacontenttype", "text/plain", "/datacontenttype"),
    ("data", "x", "/data"), ("subject", "", "/subject"), ("Bad_Attr", "x", "Bad_Attr"),
])
def test_envelope_violations_rejected(reg, field, value, needle):
    msg = example(reg, "callbus.call.answered")
    msg[field] = value
    assert_rejected(reg, msg, needle)


def test_subject_may_be_absent(reg):
    msg = example(reg, "callbus.ami.event", 1)
    assert "subject" not in msg
    assert errors_of(reg, msg) == []


@pytest.mark.parametrize("headers", [
    [["Event", "Newchannel", "extra"]], [["Event"]], [{"Event": "Newchannel"}], {"Event": "Newchannel"},
    [["Event", 1]], [], "Event: Newchannel",
])
def test_ami_headers_must_be_pairs(reg, headers):
    msg = example(reg, "callbus.ami.event")
    msg["data"]["headers"] = headers
    assert_rejected(reg, msg, "/data")


def test_ami_repeated_keys_allowed(reg):
    msg = example(reg, "callbus.ami.event")
    keys = [k for k, _ in msg["data"]["headers"]]
    assert keys.count("ChanVariable") == 2
    assert errors_of(reg, msg) == []


def test_ami_kind_and_raw(reg):
    msg = example(reg, "callbus.ami.event")
    msg["data"]["kind"] = "action"
    assert_rejected(reg, msg, "/data/kind")
    msg = example(reg, "callbus.ami.event")
    msg["data"]["raw_base64"] = "not base64!"
    assert_rejected(reg, msg, "raw_base64")
    msg = example(reg, "callbus.ami.event")
    msg["data"]["unexpected"] = 1
    assert_rejected(reg, msg, "unexpected")


def test_ami_refused(reg):
    msg = example(reg, "callbus.ami.event", 2)
    assert msg["data"]["kind"] == "refused"
    assert errors_of(reg, msg) == []
    del msg["data"]["raw_len"]
    assert_rejected(reg, msg, "raw_len")
    msg = example(reg, "callbus.ami.event", 2)
    msg["data"]["headers"] = [["Event", "VarSet"]]
    assert_rejected(reg, msg, "headers")


@pytest.mark.parametrize("field,value", [
    ("duration_s", "97.412"), ("talk_s", -1), ("hangup_cause", "16"), ("hangup_cause", 16.5),
    ("disposition", "completed"), ("operators", "op101"), ("started_at", "05:17:39"),
    ("reason", "because"), ("answered_by", 101),
])
def test_ended_bad_fields_rejected(reg, field, value):
    msg = example(reg, "callbus.call.ended")
    msg["data"][field] = value
    assert_rejected(reg, msg, "/data/" + field)


@pytest.mark.parametrize("field", ["disposition", "duration_s", "talk_s", "ended_at", "call_id"])
def test_ended_required_fields(reg, field):
    msg = example(reg, "callbus.call.ended")
    del msg["data"][field]
    assert_rejected(reg, msg, repr(field))


def test_ended_by_reconciliation(reg):
    msg = example(reg, "callbus.call.ended")
    msg["data"].update(hangup_cause=None, hangup_cause_text=None, answered_at=None, answered_by=None,
                       operators=[], disposition="unknown", reason="ended_while_link_down")
    assert errors_of(reg, msg) == []


def test_call_events_allow_extra_fields_but_not_wrong_core(reg):
    msg = example(reg, "callbus.call.answered")
    msg["data"]["bridge_id"] = "4b6f1c3a-7d55-4c8e-9a31-0f9e2f6c1d20"
    del msg["data"]["operator_id"]
    assert errors_of(reg, msg) == []
    msg["data"]["operator_id"] = None
    assert errors_of(reg, msg) == []
    msg["data"]["operator_id"] = 101
    assert_rejected(reg, msg, "/data/operator_id")
    msg = example(reg, "callbus.call.started")
    msg["data"]["direction"] = "sideways"
    assert_rejected(reg, msg, "/data/direction")


def test_operator_events(reg):
    msg = example(reg, "callbus.operator.paused")
    msg["data"]["reason"] = ""
    assert errors_of(reg, msg) == []
    del msg["data"]["reason"]
    assert_rejected(reg, msg, "'reason'")
    msg = example(reg, "callbus.operator.ready")
    del msg["data"]["operator_id"]
    assert_rejected(reg, msg, "'operator_id'")


def test_agent_status_counters_are_integers(reg):
    msg = example(reg, "callbus.agent.status")
    msg["data"]["counters"]["ami_events"] = "18211"
    assert_rejected(reg, msg, "/data/counters/ami_events")
    msg = example(reg, "callbus.agent.status")
    msg["data"]["ami"] = "maybe"
    assert_rejected(reg, msg, "/data/ami")


# ---- commands and results ------------------------------------------------------

@pytest.mark.parametrize("name", COMMAND_TYPES)
def test_command_needs_expires_and_sender(reg, name):
    for attr in ("expires", "sender", "subject"):
        msg = example(reg, "callbus.command." + name)
        del msg[attr]
        assert_rejected(reg, msg, repr(attr))
    msg = example(reg, "callbus.command." + name)
    msg["expires"] = "in 30 seconds"
    assert_rejected(reg, msg, "/expires")
    msg = example(reg, "callbus.command." + name)
    msg["data"]["unexpected"] = "x"
    assert_rejected(reg, msg, "unexpected")


@pytest.mark.parametrize("field,value", [
    ("number", "5551001\r\nAction: Command"), ("number", "555-1001; rm -rf"), ("operator_id", "op101\nx"),
    ("context", "outbound\r\nApplication: System"), ("variables", {"X": "a\r\nAction: Logoff"}),
    ("variables", {"BAD NAME": "1"}), ("variables", {"X": "1,CALLERID(num)=112"}),
    ("variables", {"X": "a(b"}), ("variables", {"X": "a|b"}), ("variables", {"X": "a\\b"}),
])
def test_originate_injection_rejected(reg, field, value):
    msg = example(reg, "callbus.command.originate")
    msg["data"][field] = value
    assert_rejected(reg, msg, "/data")


def test_transfer_kind(reg):
    msg = example(reg, "callbus.command.transfer")
    msg["data"]["kind"] = "redirect"
    assert_rejected(reg, msg, "/data/kind")


def test_results(reg):
    for i, _ in enumerate(reg.schemas["callbus.result"]["examples"]):
        assert errors_of(reg, example(reg, "callbus.result", i)) == []
    msg = example(reg, "callbus.result")
    msg["data"]["status"] = "ok"
    assert_rejected(reg, msg, "/data/status")
    msg = example(reg, "callbus.result")
    msg["data"]["status"] = "failed"
    assert_rejected(reg, msg, "'reason'")
    msg["data"]["reason"] = "Originate failed: channel unavailable"
    assert errors_of(reg, msg) == []


# ---- AsyncAPI ---------------------------------------------------------------

def load_asyncapi():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8"))


def all_refs(node, acc):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                acc.append(v)
            else:
                all_refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            all_refs(v, acc)
    return acc


def resolve_pointer(doc, pointer):
    node = doc
    for part in pointer.lstrip("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def test_asyncapi_structure():
    doc = load_asyncapi()
    assert doc["asyncapi"].startswith("3.0")
    for key in ("info", "servers", "channels", "operations", "components"):
        assert key in doc
    assert doc["servers"]["site"]["protocol"] == "kafka"
    for kind in ("ami", "calls", "operators", "commands", "results", "status", "leases") + tuple(STATE_TYPES.values()):
        assert doc["channels"][kind]["address"] == "{prefix}.{site}." + kind
        assert doc["channels"][kind]["messages"]
    gw = doc["channels"]["gateway"]
    assert "callbus.v1" in json.dumps(gw)
    names = {resolve_pointer(doc, m["$ref"])["name"] for m in gw["messages"].values()}
    assert {"clientAuth", "clientCommand", "serverSnapshot", "serverEvent", "serverError"} <= names
    for op in doc["operations"].values():
        assert op["action"] in ("send", "receive")
        resolve_pointer(doc, op["channel"]["$ref"])


def test_asyncapi_refs_exist(reg):
    doc = load_asyncapi()
    files = set()
    for ref in all_refs(doc, []):
        if ref.startswith("#"):
            resolve_pointer(doc, ref)  # KeyError when dangling
        else:
            path = (SCHEMAS / ref.split("#")[0]).resolve()
            assert path.is_file(), ref
            files.add(path.name[: -len(".schema.json")])
    # every message type is described, with the 2020-12 schema format
    assert files == set(EXPECTED_TYPES)
    for name, m in doc["components"]["messages"].items():
        assert m["payload"]["schemaFormat"] == "application/schema+json;version=draft-2020-12", name
        # Kafka messages are the callbus types; gateway messages are named clientX/serverX.
        assert m["name"] in EXPECTED_TYPES or name.startswith("gateway"), name


def test_asyncapi_topic_of_each_type(reg):
    doc = load_asyncapi()
    where = {}
    for kind, ch in doc["channels"].items():
        for ref in ch["messages"].values():
            where[resolve_pointer(doc, ref["$ref"])["name"]] = kind
    for t in EXPECTED_TYPES:
        assert where[t] == reg.schemas[t]["x-callbus-topic"], t
    assert where["callbus.call.ended"] == "calls" and where["callbus.agent.gap"] == "status"


def test_asyncapi_state_topics_are_compacted():
    """The configs the agent creates the state topics with (docs/operations.md)."""
    doc = load_asyncapi()
    want = {"cleanup.policy": "compact", "segment.ms": 60000, "min.cleanable.dirty.ratio": 0.1,
            "max.compaction.lag.ms": 120000, "delete.retention.ms": 3600000}
    for kind in STATE_TYPES.values():
        ch = doc["channels"][kind]
        assert ch["x-callbus-topic-config"] == want, kind
        assert ch["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["compact"]
        assert ch["bindings"]["kafka"]["partitions"] == 1


# ---- the state records ----------------------------------------------------------

def test_state_ids_name_their_topic(reg):
    for t, topic in STATE_TYPES.items():
        for ex in reg.schemas[t]["examples"]:
            assert ex["id"].split(":")[2] == topic
            assert ex["subject"] == ex["data"][{"callbus.state.call": "call_id", "callbus.state.operator":
                                                 "operator_id", "callbus.queue.stats": "queue"}[t]]
    msg = example(reg, "callbus.queue.stats")
    msg["id"] = "riga:agent1:state.:1795670000:212"
    assert_rejected(reg, msg, "/id")


@pytest.mark.parametrize("path,value", [
    ("state", "talking"), ("state", None), ("operators", "op101"),
    ("position", -1), ("offered_to", [5]), ("caller", "5551001"), ("answered_at", "05:17:42"), ("direction", "sideways"),
])
def test_state_call_bad_fields_rejected(reg, path, value):
    msg = example(reg, "callbus.state.call")
    msg["data"][path] = value
    assert_rejected(reg, msg, "/data/" + path)


@pytest.mark.parametrize("path,value", [
    ("state", "busy"), ("device", "on_call"), ("logged_in", "yes"), ("queues", [{"queue": "support"}]),
    ("recent", [{}]), ("today", {"date": "26.11.2026", "handled": 1, "talk_s": 1, "missed": 0}),
    ("today", {"date": "2026-11-26", "handled": -1, "talk_s": 1, "missed": 0}),
    ("offered", {"call_id": "1795670259.0"}), ("call", {"call_id": "1795670259.0", "held": "no"}),
])
def test_state_operator_bad_fields_rejected(reg, path, value):
    msg = example(reg, "callbus.state.operator")
    msg["data"][path] = value
    assert_rejected(reg, msg, "/data/" + path)


def test_state_operator_recent_is_bounded(reg):
    msg = example(reg, "callbus.state.operator")
    msg["data"]["recent"] = msg["data"]["recent"] * 11
    assert_rejected(reg, msg, "/data/recent")


@pytest.mark.parametrize("path,value", [
    ("service_level", 1.2), ("service_level", "87%"), ("waiting", -1), ("avg_wait_s", -3),
    ("operators", {"logged_in": 1}), ("date", "2026-11-26T00:00:00Z"), ("timezone", ""),
])
def test_queue_stats_bad_fields_rejected(reg, path, value):
    msg = example(reg, "callbus.queue.stats")
    msg["data"][path] = value
    assert_rejected(reg, msg, "/data/" + path)


@pytest.mark.parametrize("mtype", list(STATE_TYPES))
def test_state_records_need_their_key(reg, mtype):
    msg = example(reg, mtype)
    del msg["subject"]
    assert_rejected(reg, msg, "'subject' is a required property")
    msg = example(reg, mtype)
    msg["data"]["extra"] = 1
    assert_rejected(reg, msg, "extra")


# ---- CLI ----------------------------------------------------------------------

def test_cli(reg, tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(reg.schemas[t]["examples"][0]) for t in reg.types) + "\n")
    assert schema_check.main([str(good)]) == 0
    bad_msg = example(reg, "callbus.call.ended")
    bad_msg["data"]["duration_s"] = "97"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(bad_msg) + "\n{not json\n")
    capsys.readouterr()
    assert schema_check.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.jsonl:1:" in out and "duration_s" in out and "bad.jsonl:2:" in out
