"""amisim executes the actions the command executor sends, as Asterisk 22 does.

Like the captures' second session: one Events: off session sends actions, an
Events: on session watches. No Kafka. --speed 20 keeps the lab's timings
(2 s operator ring, 3 s PSTN answer, 8 s talk) short.
"""
import json
import os
import signal
import time

import pytest

from test_amisim import AMISIM, SAMPLES, Conn, capture_messages, get, parse, sim  # noqa: F401



@pytest.fixture(autouse=True)
def amisim_built():
    """A missing amisim fails every test here (never a skip)."""
    if not AMISIM.exists():
        pytest.fail(f"{AMISIM} not built (make all)", pytrace=False)

SPEED = "20"


def start(sim, *extra):  # noqa: F811
    s = sim("--simulate", "--rate", "0", "--operators", "5", "--speed", SPEED, *extra)
    ev = Conn(s.port)
    ev.login(actionid="ev-login")
    assert get(ev.read_msg(), "Event") == "FullyBooted"
    act = Conn(s.port)
    assert get(act.login(events="off", actionid="act-login"), "Message") == "Authentication accepted"
    return s, ev, act


def action(conn, name, actionid, *pairs):
    conn.send(("Action", name), ("ActionID", actionid), *pairs)
    return conn.read_msg()


def originate(conn, actionid, op, number, *extra, timeout="30000"):
    return action(conn, "Originate", actionid,
                  ("Channel", f"Local/{op}@phones"), ("Context", "c2c-outbound"),
                  ("Exten", number), ("Priority", "1"),
                  ("CallerID", f'"Click2Call" <{number}>'), ("Timeout", timeout),
                  ("Variable", "__CC_CAMPAIGN=c2c-demo"), ("Variable", "__CC_TICKET=TCK-1"),
                  ("Async", "true"), *extra)


def events_until(ev, pred, limit=5000):
    """Every message up to and including the first one pred accepts."""
    out = []
    for _ in range(limit):
        m = ev.read_msg()
        out.append(m)
        if pred(m):
            return out
    raise AssertionError("not found")


def named(msgs, event):
    return [m for m in msgs if get(m, "Event") == event]


def hangup_of(channel_part):
    return lambda m: get(m, "Event") == "Hangup" and channel_part in (get(m, "Channel") or "")


def wait_bridged(ev, calls):
    """Until calls bridges have their second member."""
    for _ in range(calls):
        ev.read_until(lambda m: get(m, "Event") == "BridgeEnter" and get(m, "BridgeNumChannels") == "2")


def action_replies(name):
    raw = (SAMPLES / f"{name}.actions.ami").read_bytes().split(b"\r\n", 1)[1]
    return [parse(m + b"\r\n") for m in raw.split(b"\r\n\r\n") if m.strip()]


def keys(msg):
    return ["ChanVariable()" if k.startswith("ChanVariable(") else k
            for k, _ in msg if k != "Timestamp"]


def capture_events(name):
    return [[tuple(h) for h in o["headers"]] for o in capture_messages(name) if "headers" in o]


def capture_first(name, event):
    for m in capture_events(name):
        if get(m, "Event") == event:
            return m
    raise AssertionError(f"{event} not in {name}")


def ok(reply, message):
    assert get(reply, "Response") == "Success", reply
    assert get(reply, "Message") == message, reply


def err(reply, message):
    assert get(reply, "Response") == "Error", reply
    assert get(reply, "Message") == message, reply


# ---- click-to-call ----

def test_c2c_answered_ends_by_itself(sim):  # noqa: F811
    s, ev, act = start(sim)
    ok(originate(act, "c2c-1", "op101", "5552001", ("ChannelId", "c2c-2001-op"),
                 ("OtherChannelId", "c2c-2001-op-phone")),
       "Originate successfully queued")
    msgs = events_until(ev, hangup_of("op101@phones-00000000;2"))
    resp = named(msgs, "OriginateResponse")[0]
    assert get(resp, "Response") == "Success" and get(resp, "Reason") == "4"
    assert get(resp, "ActionID") == "c2c-1"
    assert get(resp, "Uniqueid") == "c2c-2001-op"
    first = named(msgs, "Newchannel")[:2]
    assert [get(m, "Uniqueid") for m in first] == ["c2c-2001-op", "c2c-2001-op-phone"]
    assert {get(m, "Linkedid") for m in first} == {"c2c-2001-op"}
    ends = [get(m, "DialStatus") for m in named(msgs, "DialEnd")]
    assert ends == ["ANSWER", "ANSWER"]
    causes = {get(m, "Channel"): get(m, "Cause") for m in named(msgs, "Hangup")}
    assert len(causes) == 4 and set(causes.values()) == {"16"}
    # header for header as in 03a
    for name in ("OriginateResponse", "DialBegin", "DialEnd", "Hangup", "Newchannel",
                 "BridgeEnter", "QueueMemberStatus"):
        mine = named(msgs, name)[0]
        theirs = capture_first("03a-c2c-answered", name)
        assert keys(mine) == keys(theirs), name
    mine = named(msgs, "OriginateResponse")[0]
    assert [k for k, _ in mine if k.startswith("ChanVariable(")] == [
        f"ChanVariable({get(mine, 'Channel')})"] * 2


def test_c2c_busy(sim):  # noqa: F811
    s, ev, act = start(sim)
    originate(act, "c2c-busy", "op102", "5553001")
    msgs = events_until(ev, hangup_of("op102@phones-00000000;2"))
    assert get(named(msgs, "OriginateResponse")[0], "Reason") == "4"
    assert [get(m, "DialStatus") for m in named(msgs, "DialEnd")] == ["ANSWER", "BUSY"]
    causes = {get(m, "Channel").split("-")[-1] + get(m, "Channel").split("@")[1][:4]:
              get(m, "Cause") for m in named(msgs, "Hangup")}
    assert causes == {"00000001;1pstn": "0", "00000001;2pstn": "17",
                      "00000000;1phon": "16", "00000000;2phon": "16"}
    assert keys(named(msgs, "DialEnd")[1]) == keys(
        [m for m in capture_events("03b-c2c-busy") if get(m, "DialStatus") == "BUSY"][0])


def test_c2c_invalid_number(sim):  # noqa: F811
    s, ev, act = start(sim)
    originate(act, "c2c-bad", "op101", "12345")
    msgs = events_until(ev, hangup_of("op101@phones-00000000;2"))
    assert get(named(msgs, "OriginateResponse")[0], "Response") == "Success"
    dials = [m for m in named(msgs, "DialBegin") if "pstn" in (get(m, "DestChannel") or "")]
    assert dials == []
    statuses = [get(m, "Value") for m in named(msgs, "VarSet") if get(m, "Variable") == "DIALSTATUS"]
    assert statuses[-1] == "CHANUNAVAIL"


def test_c2c_no_answer_rings_until_timeout(sim):  # noqa: F811
    s, ev, act = start(sim)
    originate(act, "c2c-na", "op101", "5554001", timeout="5000")
    msgs = events_until(ev, hangup_of("op101@phones-00000000;2"))
    assert [get(m, "DialStatus") for m in named(msgs, "DialEnd")] == ["ANSWER", "NOANSWER"]
    pstn = [m for m in named(msgs, "Hangup") if "pstn" in get(m, "Channel")]
    assert {get(m, "Cause") for m in pstn} == {"19"}
    begin = float(get(named(msgs, "DialBegin")[1], "Timestamp"))
    end = float(get(named(msgs, "DialEnd")[1], "Timestamp"))
    assert 4.9 < end - begin < 5.2


def test_c2c_unknown_operator_fails(sim):  # noqa: F811
    s, ev, act = start(sim)
    ok(originate(act, "c2c-nobody", "op999", "5552001"), "Originate successfully queued")
    resp = ev.read_until(lambda m: get(m, "Event") == "OriginateResponse")
    assert get(resp, "Response") == "Failure" and get(resp, "Reason") == "0"
    assert get(resp, "Uniqueid") == "<unknown>"
    assert get(resp, "Channel") == "Local/op999@phones"


def test_hangup_by_name_regex_and_unknown(sim):  # noqa: F811
    s, ev, act = start(sim)
    originate(act, "h-1", "op101", "5556001")
    originate(act, "h-2", "op102", "5556002")
    pstn = {}
    for _ in range(2):
        m = ev.read_until(lambda m: get(m, "Event") == "BridgeEnter" and "pstn" in get(m, "Channel"))
        pstn[get(m, "Channel").split("@")[0]] = get(m, "Channel")
    wait_bridged(ev, 1)
    # by name, with Cause 16
    ok(action(act, "Hangup", "h-3", ("Channel", pstn["Local/5556001"]), ("Cause", "16")),
       "Channel Hungup")
    msgs = events_until(ev, hangup_of("op101@phones-00000000;2"))
    assert {get(m, "Cause") for m in named(msgs, "Hangup")} == {"16"}
    # by regex, with Cause 21: a list with ChannelHungup items (06)
    act.send(("Action", "Hangup"), ("ActionID", "h-4"),
             ("Channel", "/^Local/5556002@pstn-.*;2$/"), ("Cause", "21"))
    start_reply = act.read_msg()
    assert get(start_reply, "EventList") == "start"
    assert get(start_reply, "Message") == "Channels hung up will follow"
    item = act.read_msg()
    p2 = pstn["Local/5556002"].replace(";1", ";2")
    assert item == [("Event", "ChannelHungup"), ("Channel", p2), ("ActionID", "h-4")]
    done = act.read_msg()
    assert get(done, "Event") == "ChannelsHungupListComplete" and get(done, "ListItems") == "1"
    msgs = events_until(ev, hangup_of("op102@phones-00000001;2"))
    causes = {get(m, "Channel"): get(m, "Cause") for m in named(msgs, "Hangup")}
    assert causes[p2] == "21"
    assert causes[pstn["Local/5556002"]] == "21"
    assert causes["Local/op102@phones-00000001;1"] == "16"
    assert keys(named(msgs, "Hangup")[0]) == keys(capture_first("06-hangup-and-info-actions", "Hangup"))
    err(action(act, "Hangup", "h-5", ("Channel", "Local/nosuch@nowhere-00000000;1")),
        "No such channel")


# ---- Redirect ----

def inbound(act, actionid, patience="60"):
    return action(act, "Originate", actionid, ("Channel", "Local/800@from-trunk"),
                  ("Application", "Wait"), ("Data", patience),
                  ("CallerID", '"Erin Customer" <5551005>'), ("Timeout", "30000"),
                  ("Async", "true"), ("Variable", "CC_TICKET=TCK-1005"))


def test_redirect_queue_caller_to_transfer(sim):  # noqa: F811
    s, ev, act = start(sim, "--operators", "3")
    # only op102 takes queue calls, so the caller lands there
    for op in ("op101", "op103"):
        ok(action(act, "QueuePause", f"p-{op}", ("Queue", "support"),
                  ("Interface", f"Local/{op}@phones"), ("Paused", "true"), ("Reason", "test")),
           "Interface paused successfully")
    ok(inbound(act, "in-1", "25"), "Originate successfully queued")
    msgs = events_until(ev, lambda m: get(m, "Event") == "AgentConnect")
    caller = get(named(msgs, "QueueCallerJoin")[0], "Channel")
    assert get(msgs[-1], "MemberName") == "Operator 102"
    ok(action(act, "Redirect", "r-1", ("Channel", caller), ("Context", "transfer"),
              ("Exten", "103"), ("Priority", "1")), "Redirect successful")
    msgs = events_until(ev, lambda m: get(m, "Event") == "DialBegin")
    msgs += events_until(ev, lambda m: get(m, "Event") == "BridgeEnter"
                         and get(m, "Channel") == caller)
    gone = [get(m, "Channel") for m in named(msgs, "Hangup")]
    assert any("op102@phones" in ch for ch in gone)
    dials = named(msgs, "DialBegin")
    assert get(dials[0], "DestChannel").startswith("Local/op103@phones-")
    assert [get(m, "DialStatus") for m in named(msgs, "DialEnd")] == ["ANSWER"]
    # the caller's patience ends the call; the AgentComplete names op102
    msgs = events_until(ev, hangup_of(caller))
    done = named(msgs, "AgentComplete")
    assert len(done) == 1 and get(done[0], "MemberName") == "Operator 102"
    err(action(act, "Redirect", "r-2", ("Channel", "Local/none@nowhere-00000000;1"),
               ("Context", "transfer"), ("Exten", "103"), ("Priority", "1")), "No such channel")


def test_redirect_waiting_caller_to_answer(sim):  # noqa: F811
    s, ev, act = start(sim, "--operators", "2")
    for op in ("op101", "op102"):
        action(act, "QueuePause", f"p-{op}", ("Interface", f"Local/{op}@phones"),
               ("Paused", "true"))
    inbound(act, "in-2")
    join = ev.read_until(lambda m: get(m, "Event") == "QueueCallerJoin")
    caller = get(join, "Channel")
    ok(action(act, "Redirect", "r-3", ("Channel", caller), ("Context", "answer"),
              ("Exten", "op102"), ("Priority", "1")), "Redirect successful")
    msgs = events_until(ev, lambda m: get(m, "Event") == "BridgeEnter" and get(m, "Channel") == caller)
    assert named(msgs, "QueueCallerLeave")
    assert get(named(msgs, "DialBegin")[0], "DestChannel").startswith("Local/op102@phones-")


# ---- queue members ----

def test_queue_member_actions_and_errors(sim):  # noqa: F811
    s, ev, act = start(sim, "--queues", "support,sales:dynamic")
    ok(action(act, "QueueAdd", "q-1", ("Queue", "sales"), ("Interface", "Local/op104@phones"),
              ("Penalty", "0"), ("Paused", "false"), ("MemberName", "Operator 104")),
       "Added interface to queue")
    added = ev.read_until(lambda m: get(m, "Event") == "QueueMemberAdded")
    assert keys(added) == keys(capture_first("04-queue-member-management", "QueueMemberAdded"))
    assert get(added, "Membership") == "dynamic"
    err(action(act, "QueueAdd", "q-2", ("Queue", "sales"), ("Interface", "Local/op104@phones"),
               ("MemberName", "Operator 104")), "Unable to add interface: Already there")
    err(action(act, "QueueAdd", "q-3", ("Queue", "nosuchqueue"),
               ("Interface", "Local/op104@phones")),
        "Unable to add interface to queue: No such queue")
    ok(action(act, "QueuePause", "q-4", ("Queue", "sales"), ("Interface", "Local/op104@phones"),
              ("Paused", "true"), ("Reason", "Lunch")), "Interface paused successfully")
    pause = ev.read_until(lambda m: get(m, "Event") == "QueueMemberPause")
    assert keys(pause) == keys(capture_first("04-queue-member-management", "QueueMemberPause"))
    assert get(pause, "Paused") == "1" and get(pause, "PausedReason") == "Lunch"
    ok(action(act, "QueuePause", "q-5", ("Interface", "Local/op104@phones"), ("Paused", "false")),
       "Interface unpaused successfully")
    err(action(act, "QueuePause", "q-6", ("Interface", "Local/op999@phones"), ("Paused", "true")),
        "Interface not found")
    ok(action(act, "QueuePenalty", "q-7", ("Queue", "sales"), ("Interface", "Local/op104@phones"),
              ("Penalty", "3")), "Interface penalty set successfully")
    ok(action(act, "QueueRemove", "q-8", ("Queue", "sales"), ("Interface", "Local/op104@phones")),
       "Removed interface from queue")
    err(action(act, "QueueRemove", "q-9", ("Queue", "sales"), ("Interface", "Local/op104@phones")),
        "Unable to remove interface: Not there")
    err(action(act, "QueueRemove", "q-10", ("Queue", "nosuch"), ("Interface", "Local/op104@phones")),
        "Unable to remove interface from queue: No such queue")
    removed = ev.read_until(lambda m: get(m, "Event") == "QueueMemberRemoved")
    assert get(removed, "Interface") == "Local/op104@phones"


def test_paused_members_are_not_offered_calls(sim):  # noqa: F811
    s, ev, act = start(sim, "--operators", "2")
    action(act, "QueuePause", "p-1", ("Interface", "Local/op101@phones"), ("Paused", "true"))
    inbound(act, "in-3")
    called = ev.read_until(lambda m: get(m, "Event") == "AgentCalled")
    assert get(called, "MemberName") == "Operator 102"


# ---- ChanSpy ----

def test_chanspy_start_and_stop(sim):  # noqa: F811
    s, ev, act = start(sim)
    originate(act, "spy-target", "op101", "5556001")
    wait_bridged(ev, 1)
    ok(action(act, "Originate", "spy-1", ("Channel", "Local/op105@phones"),
              ("Application", "ChanSpy"), ("Data", "Local/op101@phones,qw"),
              ("CallerID", '"Supervisor" <105>'), ("Async", "true")),
       "Originate successfully queued")
    msgs = events_until(ev, lambda m: get(m, "Event") == "ChanSpyStart")
    assert get(named(msgs, "OriginateResponse")[0], "Response") == "Success"
    spy = msgs[-1]
    assert get(spy, "SpyerChannel").startswith("Local/op105@phones-")
    assert get(spy, "SpyeeChannel").startswith("Local/op101@phones-")
    ok(action(act, "Hangup", "spy-2", ("Channel", "/^Local/5556001@pstn-.*;1$/")),
       "Channels hung up will follow")
    stop = ev.read_until(lambda m: get(m, "Event") == "ChanSpyStop")
    assert get(stop, "SpyerChannel") == get(spy, "SpyerChannel")


# ---- info actions ----

def test_info_actions(sim):  # noqa: F811
    s, ev, act = start(sim)
    reply = action(act, "CoreSettings", "i-1")
    replies = action_replies("06-hangup-and-info-actions")
    assert keys(reply) == keys([m for m in replies if get(m, "AMIversion")][0])
    assert get(reply, "AsteriskVersion") == "22.10.1" and get(reply, "AMIversion") == "11.0.0"
    reply = action(act, "Getvar", "i-2", ("Variable", "COMPANY_CID"))
    assert get(reply, "Value") == "18005550100"
    err(action(act, "Getvar", "i-3", ("Channel", "Local/x@y-00000000;1"), ("Variable", "A")),
        "No such channel")
    reply = action(act, "Command", "i-4", ("Command", "core show version"))
    assert get(reply, "Message") == "Command output follows"
    assert get(reply, "Output").startswith("Asterisk 22.10.1")
    reply = action(act, "Command", "i-5", ("Command", "no such cli command"))
    assert get(reply, "Response") == "Error"
    originate(act, "i-6", "op101", "5556001")
    wait_bridged(ev, 1)
    ok(action(act, "Setvar", "i-7", ("Channel", "Local/5556001@pstn-00000001;1"),
              ("Variable", "CC_NOTE"), ("Value", "vip")), "Variable Set")
    reply = action(act, "Getvar", "i-8", ("Channel", "Local/5556001@pstn-00000001;1"),
                   ("Variable", "CC_NOTE"))
    assert get(reply, "Value") == "vip"
    act.send(("Action", "Status"), ("ActionID", "i-9"), ("Channel", "Local/5556001@pstn-00000001;1"),
             ("Variables", "CC_CAMPAIGN,CC_TICKET,DIALSTATUS"))
    assert get(act.read_msg(), "EventList") == "start"
    item = act.read_msg()
    theirs = [m for m in replies if get(m, "Event") == "Status" and get(m, "Variable")][0]
    assert keys(item) == keys(theirs)
    done = act.read_msg()
    assert get(done, "Event") == "StatusComplete" and get(done, "Items") == "1"


# ---- stats ----

@pytest.mark.sanitizer
def test_stats_by_action_id_and_originates(sim, tmp_path):  # noqa: F811
    stats = tmp_path / "stats.json"
    s, ev, act = start(sim, "--stats-file", str(stats), "--stats-interval", "0.2")
    originate(act, "cmd-7f3a", "op101", "5552001")
    action(act, "QueuePause", "cmd-8b", ("Interface", "Local/op102@phones"), ("Paused", "true"))
    action(act, "QueuePause", "cmd-8b", ("Interface", "Local/op102@phones"), ("Paused", "true"))
    action(act, "Ping", "ping-1")
    deadline = time.time() + 5
    data = {}
    while time.time() < deadline:
        if stats.exists():
            data = json.loads(stats.read_text())
            if "cmd-8b" in data.get("by_action_id", {}) and \
                    data["by_action_id"]["cmd-8b"]["count"] == 2:
                break
        time.sleep(0.1)
    entry = data["by_action_id"]["cmd-7f3a"]
    assert entry["action"] == "Originate" and entry["count"] == 1
    assert abs(entry["first_at"] - time.time()) < 60  # arrival time, for latency benchmarks
    assert {k: data["by_action_id"]["cmd-8b"][k] for k in ("action", "count")} == \
        {"action": "QueuePause", "count": 2}
    assert "ping-1" not in data["by_action_id"] and "act-login" not in data["by_action_id"]
    assert data["originates"] == [{
        "action_id": "cmd-7f3a", "channel": "Local/op101@phones", "exten": "5552001",
        "variables": {"__CC_CAMPAIGN": "c2c-demo", "__CC_TICKET": "TCK-1"}}]
    assert data["actions"]["Originate"] == 1
    s.proc.send_signal(signal.SIGUSR1)


def test_actions_without_simulation(sim):  # noqa: F811
    s = sim()
    act = Conn(s.port)
    act.login(events="off")
    ok(originate(act, "n-1", "op101", "5552001"), "Originate successfully queued")
    err(action(act, "Hangup", "n-2", ("Channel", "Local/x@y-00000000;1")), "No such channel")
    ok(action(act, "QueuePause", "n-3", ("Interface", "Local/op101@phones"), ("Paused", "true")),
       "Interface paused successfully")
    assert get(action(act, "CoreSettings", "n-4"), "AsteriskVersion") == "22.10.1"
