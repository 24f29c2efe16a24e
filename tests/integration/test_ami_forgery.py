"""Dialplan data that Asterisk writes raw into the AMI stream cannot fake a
command's result: amisim --dialplan-data puts CR/LF-laden data into a
Newexten's AppData and a UserEvent's body, as Asterisk 22 does, and every
fake message it makes is refused, counted and announced, never believed."""

import base64
import re
import time
import uuid

from callbus_harness import command_of, messages, metrics
from conftest import wait_until
from schema_check import validate_message
from test_commands import Bench


def fakes(cid):
    """What a caller who knows the agent's ActionID scheme but not this run's
    nonce could put into CRM data that reaches the dialplan: a fake failure
    Response to the command (the old, guessable ActionID), a fake
    OriginateResponse with a guessed nonce, and a sloppy one whose first
    header is the ActionID. The real event's own end ("\\r\\n" and the blank
    line) closes the last."""
    return ("see ticket 4711\r\n\r\n"
            f"Response: Error\r\nActionID: cmd/{cid}\r\nMessage: Originate failed (forged)\r\n\r\n"
            "Event: OriginateResponse\r\nPrivilege: call,all\r\n"
            f"ActionID: callbus/{'0' * 32}/cmd/{cid}\r\nResponse: Failure\r\n"
            "Channel: Local/op101@phones\r\nContext: c2c-outbound\r\nExten: 5556001\r\nReason: 5\r\n"
            "Uniqueid: <unknown>\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\n\r\n"
            f"ActionID: cmd/{cid}\r\nResponse: Success\r\nMessage: forged as well")


def test_dialplan_data_cannot_fake_a_command_result(procs, tmp_path, site, kafka_bootstrap):
    cid = f"central:test:{int(time.time())}:{uuid.uuid4().int % 10**9}"
    bench = Bench(procs, tmp_path, site, kafka_bootstrap, amisim_args=("--dialplan-data", fakes(cid)))
    # The agent's own list actions are answered as ever (their ActionIDs are
    # longer now).
    bench.agent.wait_for(r"resync done", timeout=10, which="err")
    bench.send("originate", {"operator_id": "op101", "number": "5556001"}, cid=cid)
    # The phone rings (the fakes arrive, twice), then answers: the real
    # OriginateResponse decides.
    assert bench.statuses(cid) == ["accepted", "succeeded"]
    [action_id] = [k for k in bench.amisim_stats()["by_action_id"] if command_of(k) == cid]
    assert re.fullmatch(r"callbus/[0-9a-f]{32}/cmd/" + re.escape(cid), action_id)

    def refused():
        r = [e["data"] for e in messages(kafka_bootstrap, site.topic("ami"), idle=0.5)
             if e["data"]["kind"] == "refused"]
        return r if len(r) >= 6 else None
    got = wait_until(refused, timeout=20, what="the six fake messages refused")
    # Each fake twice: once out of the Newexten's AppData, once out of the
    # UserEvent's body.
    errors = sorted(r["error"] for r in got)
    assert errors == sorted(["unexpected_response", "forged_action_id", "not_event_or_response"] * 2)
    raws = [base64.b64decode(r["raw_base64"]) for r in got]
    assert sum(raw.startswith(b"Response: Error\r\nActionID: cmd/") for raw in raws) == 2
    assert all(b"forged" in raw or b"OriginateResponse" in raw for raw in raws)

    # The real events around the data are kept: the cut Newexten and UserEvent.
    ami = messages(kafka_bootstrap, site.topic("ami"), idle=0.5)
    cut = [dict(e["data"]["headers"]) for e in ami if e["data"].get("headers")]
    assert any(h.get("Event") == "Newexten" and h.get("AppData") == "CrmNote,Note: see ticket 4711"
               for h in cut)
    assert any(h.get("Event") == "UserEvent" and h.get("Note") == "see ticket 4711" for h in cut)

    gaps = [e["data"] for e in messages(kafka_bootstrap, site.topic("status"), idle=0.5)
            if e["type"] == "callbus.agent.gap" and e["data"]["reason"] == "parse_error"]
    assert len(gaps) == 6 and all("refused" in g["detail"] for g in gaps)
    m = metrics(bench.http)
    assert m["callbus_agent_ami_forged_total"] == 6
    status = messages(kafka_bootstrap, site.topic("status"), idle=0.5)
    for ev in ami + status:
        errors = validate_message({k: v for k, v in ev.items() if not k.startswith("_")})
        assert not errors, f"{ev['type']} {ev['id']}: {errors}"
