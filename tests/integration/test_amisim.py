"""amisim: the AMI simulator speaks Asterisk 22's protocol and looks like the captures.

No Kafka needed. Starts build/amisim (CALLBUS_BUILD overrides "build") on a
free port and talks to it over a plain socket.
"""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CALLBUS_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
AMISIM = BUILD / "amisim"
SAMPLES = ROOT / "tests" / "fixtures" / "ami-samples"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"



@pytest.fixture(autouse=True)
def amisim_built():
    """A missing amisim fails every test here (never a skip)."""
    if not AMISIM.exists():
        pytest.fail(f"{AMISIM} not built (make all)", pytrace=False)


class Amisim:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [str(AMISIM), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"amisim: listening on ([\d.]+):(\d+)", line)
        assert m, f"no listening line: {line!r} {self.proc.stderr.read()!r}"
        self.port = int(m.group(2))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def sim():
    started = []

    def start(*args):
        s = Amisim(*args)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


class Conn:
    """A client that splits the stream into messages without parsing values."""

    def __init__(self, port, timeout=10, tls=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buf = b""

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def read_line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_raw(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        msg, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return msg + b"\r\n\r\n"

    def read_msg(self):
        return parse(self.read_raw())

    def send(self, *pairs):
        self.sock.sendall(b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n")

    def login(self, user="callbus", secret="callbus", events="on", actionid="login-1"):
        assert self.read_line() == BANNER
        self.send(("Action", "Login"), ("ActionID", actionid), ("Username", user),
                  ("Secret", secret), ("Events", events))
        return self.read_msg()

    def read_until(self, pred, limit=100000):
        for _ in range(limit):
            m = self.read_msg()
            if pred(m):
                return m
        raise AssertionError("not found")

    def close(self):
        self.sock.close()


def parse(raw):
    """Ordered [(key, value)] of one message."""
    out = []
    for line in raw.decode().split("\r\n"):
        if line:
            k, _, v = line.partition(": ")
            out.append((k, v))
    return out


def get(msg, key):
    for k, v in msg:
        if k == key:
            return v
    return None


def capture_messages(name):
    return [json.loads(line) for line in open(SAMPLES / f"{name}.events.jsonl")]


# ---- session ----

def test_banner_login_ping_logoff(sim):
    s = sim()
    c = Conn(s.port)
    resp = c.login(actionid="a1")
    assert resp == [("Response", "Success"), ("ActionID", "a1"),
                    ("Message", "Authentication accepted")]
    booted = c.read_msg()
    assert [k for k, _ in booted] == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
    assert get(booted, "Privilege") == "system,all" and get(booted, "Status") == "Fully Booted"
    c.send(("Action", "Ping"), ("ActionID", "p1"))
    pong = c.read_msg()
    assert [k for k, _ in pong] == ["Response", "ActionID", "Ping", "Timestamp"]
    assert get(pong, "Ping") == "Pong" and re.fullmatch(r"\d+\.\d{6}", get(pong, "Timestamp"))
    c.send(("Action", "NoSuchThing"), ("ActionID", "u1"))
    err = c.read_msg()
    assert err[:2] == [("Response", "Error"), ("ActionID", "u1")]
    assert get(err, "Message").startswith("Invalid/unknown command")
    c.send(("Action", "Events"), ("ActionID", "e1"), ("EventMask", "off"))
    assert c.read_msg() == [("Response", "Success"), ("ActionID", "e1"), ("Events", "Off")]
    c.send(("Action", "Logoff"), ("ActionID", "bye"))
    assert c.read_msg() == [("Response", "Goodbye"), ("ActionID", "bye"),
                            ("Message", "Thanks for all the fish.")]
    with pytest.raises(EOFError):
        c.fill()


def test_wrong_secret_rejected_and_closed(sim):
    s = sim("--user", "agent1", "--secret", "s3cret", "--auth-fail-delay", "100")
    c = Conn(s.port)
    assert c.login("agent1", "nope", actionid="x") == [
        ("Response", "Error"), ("ActionID", "x"), ("Message", "Authentication failed")]
    with pytest.raises(EOFError):
        c.fill()
    c = Conn(s.port)
    assert get(c.login("agent1", "s3cret"), "Response") == "Success"


def test_actions_need_login_and_events_off_has_no_fully_booted(sim):
    s = sim()
    c = Conn(s.port)
    assert c.read_line() == BANNER
    c.send(("Action", "Ping"), ("ActionID", "early"))
    assert c.read_msg() == [("Response", "Error"), ("ActionID", "early"),
                            ("Message", "Permission denied")]
    c.send(("Action", "Login"), ("Username", "callbus"), ("Secret", "callbus"), ("Events", "off"))
    assert c.read_msg() == [("Response", "Success"), ("Message", "Authentication accepted")]
    c.send(("Action", "Ping"))
    assert get(c.read_msg(), "Ping") == "Pong"   # next message is the pong, no FullyBooted


def test_action_limits_refuse_the_action_as_asterisk(sim):
    """Asterisk's limits on an action (main/manager.c: get_input's 1024-byte
    line with its CRLF, AST_MAX_MANHEADERS 128): past either, do_message
    answers an error with the ActionID and reads the next action."""
    s = sim()
    c = Conn(s.port)
    assert c.login(events="off", actionid="l") == [
        ("Response", "Success"), ("ActionID", "l"), ("Message", "Authentication accepted")]

    def pad(total):   # an "X-Pad: yyy" line of total bytes before its CRLF
        return ("X-Pad", "y" * (total - len("X-Pad: ")))

    c.send(("Action", "Ping"), ("ActionID", "p1022"), pad(1022))
    assert get(c.read_msg(), "ActionID") == "p1022"
    c.send(("Action", "Ping"), ("ActionID", "p1023"), pad(1023), ("After", "1"))
    assert c.read_msg() == [("Response", "Error"), ("ActionID", "p1023"),
                            ("Message", "Failed to parse message: line too long")]
    c.send(("Action", "Ping"), ("ActionID", "next"))
    assert get(c.read_msg(), "Ping") == "Pong"

    many = [("Action", "Ping"), ("ActionID", "h128")] + [(f"X-H{i}", "v") for i in range(126)]
    c.send(*many)
    assert get(c.read_msg(), "ActionID") == "h128"
    c.send(*(many[:1] + [("ActionID", "h129")] + many[2:] + [("X-H126", "v")]))
    assert c.read_msg() == [("Response", "Error"), ("ActionID", "h129"),
                            ("Message", "Too many lines in message or allocation failure")]
    # Blanks after the colon are skipped, as astman_get_header does.
    c.sock.sendall(b"Action:   Ping\r\nActionID:\t spaced\r\n\r\n")
    pong = c.read_msg()
    assert get(pong, "ActionID") == "spaced" and get(pong, "Ping") == "Pong"


def test_nothing_is_read_after_logoff(sim):
    """Actions behind a Logoff in the same packet get no answer."""
    s = sim()
    c = Conn(s.port)
    c.login(events="off")
    c.sock.sendall(b"Action: Logoff\r\nActionID: bye\r\n\r\nAction: Ping\r\nActionID: late\r\n\r\n")
    assert get(c.read_msg(), "Response") == "Goodbye"
    with pytest.raises(EOFError):
        c.read_msg()


# ---- replay ----

def capture_events_section(name):
    """Bytes after the capture's login response and FullyBooted, up to its Logoff reply."""
    msgs = capture_messages(name)
    data = (SAMPLES / f"{name}.ami").read_bytes()
    booted = next(m for m in msgs if dict(m.get("headers", [])).get("Event") == "FullyBooted")
    goodbye = next(m for m in msgs if dict(m.get("headers", [])).get("Response") == "Goodbye")
    start = booted["offset"] + booted["length"]
    return data[start:goodbye["offset"]], sum(
        1 for m in msgs if m["seq"] > booted["seq"] and m["seq"] < goodbye["seq"])


def read_bytes(c, n):
    while len(c.buf) < n:
        c.fill()
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


def test_replay_max_is_byte_identical(sim):
    name = "01-inbound-queue-answered"
    expected, count = capture_events_section(name)
    s = sim("--replay", str(SAMPLES / f"{name}.ami"), "--max")
    c = Conn(s.port)
    c.login()
    booted = c.read_msg()
    assert get(booted, "Event") == "FullyBooted"
    assert read_bytes(c, len(expected)) == expected
    assert count == 166
    # The stream is over; the session still answers.
    c.send(("Action", "Ping"), ("ActionID", "after"))
    assert get(c.read_msg(), "ActionID") == "after"


def test_replay_speed_paces(sim):
    name = "01-inbound-queue-answered"
    expected, _ = capture_events_section(name)
    s = sim("--replay", str(SAMPLES / f"{name}.ami"), "--speed", "10")
    c = Conn(s.port)
    c.login()
    c.read_msg()
    t0 = time.monotonic()
    got = read_bytes(c, len(expected))
    elapsed = time.monotonic() - t0
    assert got == expected
    assert 0.8 <= elapsed <= 3.0, elapsed


def test_replay_exit_after_and_stats(sim, tmp_path):
    stats = tmp_path / "stats.json"
    name = "02-inbound-queue-paused-abandon"
    expected, count = capture_events_section(name)
    s = sim("--replay", str(SAMPLES / f"{name}.ami"), "--max", "--loop", "3", "--exit-after",
            "--stats-file", str(stats))
    c = Conn(s.port)
    c.login()
    c.read_msg()
    assert read_bytes(c, 3 * len(expected)) == expected * 3
    with pytest.raises(EOFError):
        while True:
            c.fill()
    assert s.proc.wait(5) == 0
    doc = json.loads(stats.read_text())
    assert doc["actions"] == {"Login": 1}
    assert doc["events_sent"] == 3 * count + 1   # + our FullyBooted
    assert doc["clients"] == 1


def test_raw_replay_sends_file_as_is(sim, tmp_path):
    junk = tmp_path / "junk.ami"
    junk.write_bytes(b"Asterisk Call Manager/11.0.0\r\nEvent: X\nno colon here\r\n\r\n\r\n\x00\xff")
    s = sim("--raw-replay", str(junk), "--exit-after")
    c = Conn(s.port)
    data = b""
    try:
        while True:
            c.fill()
    except EOFError:
        data = c.buf
    assert data == junk.read_bytes()


def test_throughput_smoke(sim):
    name = "01-inbound-queue-answered"
    expected, count = capture_events_section(name)
    loops = 1000
    s = sim("--replay", str(SAMPLES / f"{name}.ami"), "--max", "--loop", str(loops))
    c = Conn(s.port, timeout=60)
    c.login()
    c.read_msg()
    want = loops * len(expected)
    got = len(c.buf)
    c.buf = b""
    t0 = time.monotonic()
    while got < want:
        data = c.sock.recv(1 << 20)
        assert data
        got += len(data)
    elapsed = time.monotonic() - t0
    assert got == want
    print(f"\nreplay --max: {loops * count / elapsed:,.0f} events/s to a python reader")


# ---- simulate ----

def read_all_until_close(c):
    msgs = []
    try:
        while True:
            msgs.append(c.read_msg())
    except EOFError:
        pass
    return msgs


def run_simulation(sim, calls, *extra):
    s = sim("--simulate", "--max", "--calls", str(calls), "--exit-after", "--operators", "3",
            "--queues", "support,sales", "--rate", "0.5", "--talk", "5-20", "--seed", "7", *extra)
    c = Conn(s.port)
    c.login()
    return read_all_until_close(c)


def test_simulated_calls_end_with_hangups(sim):
    msgs = run_simulation(sim, 20, "--abandon", "30")
    events = [m for m in msgs if get(m, "Event")]
    by_call = {}
    for m in events:
        lid = get(m, "Linkedid") or get(m, "DestLinkedid") or get(m, "LocalOneLinkedid")
        if lid:
            by_call.setdefault(lid, []).append(m)
    assert len(by_call) == 20
    answered = abandoned = 0
    for lid, evs in by_call.items():
        names = [get(m, "Event") for m in evs]
        assert names[0] == "Newchannel" and names[-1] == "Hangup", (lid, names[-3:])
        hangups = [m for m in evs if get(m, "Event") == "Hangup"]
        assert len(hangups) in (2, 4)
        if "AgentConnect" in names:
            answered += 1
            assert "AgentComplete" in names and names.index("AgentConnect") < names.index("AgentComplete")
            assert len(hangups) == 4
        else:
            abandoned += 1
            assert "QueueCallerAbandon" in names
    assert answered and abandoned
    # Uniqueids increase, channel counters start at 0 after each start.
    first = events[1] if get(events[0], "Event") == "FullyBooted" else events[0]
    assert get(first, "Channel").endswith("-00000000;1")
    assert get(first, "Uniqueid").endswith(".0")
    stamps = [float(get(m, "Timestamp")) for m in events if get(m, "Timestamp")]
    assert stamps == sorted(stamps)


def first_of_each_event(names):
    seen = {}
    for name in names:
        for m in capture_messages(name):
            h = m.get("headers")
            if not h:
                continue
            ev = dict(h).get("Event")
            if ev and ev not in seen:
                seen[ev] = [k for k, _ in h]
    return seen


@pytest.mark.sanitizer
def test_simulated_event_keys_match_captures(sim):
    reference = first_of_each_event(["01-inbound-queue-answered", "02-inbound-queue-paused-abandon"])
    msgs = run_simulation(sim, 12, "--abandon", "40")
    checked = set()
    for m in msgs:
        ev = get(m, "Event")
        if not ev or ev == "FullyBooted" or ev in checked:
            continue
        assert ev in reference, f"{ev} is not in captures 01/02"
        assert [k for k, _ in m] == reference[ev], ev
        checked.add(ev)
    for ev in ("Newchannel", "Newexten", "VarSet", "Newstate", "QueueCallerJoin", "AgentCalled",
               "DialBegin", "DialEnd", "AgentConnect", "BridgeCreate", "BridgeEnter",
               "QueueCallerLeave", "BridgeLeave", "Hangup", "AgentComplete", "BridgeDestroy",
               "QueueMemberStatus", "DeviceStateChange", "QueueCallerAbandon", "LocalBridge"):
        assert ev in checked, ev


def first_action_item(name, event):
    """First message with Event: event in the capture's second (actions) session."""
    data = (SAMPLES / f"{name}.actions.ami").read_bytes().split(b"\r\n", 1)[1]
    for raw in data.split(b"\r\n\r\n"):
        m = parse(raw.strip(b"\r\n") + b"\r\n")
        if get(m, "Event") == event:
            return m
    raise AssertionError(event)


def list_items(c, action, actionid, **headers):
    c.send(("Action", action), ("ActionID", actionid), *headers.items())
    start = c.read_until(lambda m: get(m, "ActionID") == actionid)
    assert start[:3] == [("Response", "Success"), ("ActionID", actionid), ("EventList", "start")]
    items = []
    while True:
        m = c.read_until(lambda m: get(m, "ActionID") == actionid)
        if get(m, "EventList") == "Complete":
            assert [k for k, _ in m] == ["Event", "ActionID", "EventList", "ListItems"]
            assert int(get(m, "ListItems")) == len(items)
            return items, m
        items.append(m)


def test_resync_lists_show_live_state(sim):
    s = sim("--simulate", "--speed", "20", "--operators", "2", "--queues", "support",
            "--rate", "2", "--talk", "600-600", "--abandon", "0", "--seed", "3")
    c = Conn(s.port)
    c.login()
    # Wait until a call is bridged, then ask for the channels.
    c.read_until(lambda m: get(m, "Event") == "BridgeEnter" and get(m, "BridgeNumChannels") == "2")
    items, done = list_items(c, "CoreShowChannels", "csc")
    assert get(done, "Event") == "CoreShowChannelsComplete"
    ref_keys = [k for k, _ in first_action_item("06-hangup-and-info-actions", "CoreShowChannel")]
    assert len(items) >= 4
    for m in items:
        assert [k for k, _ in m] == ref_keys
    names = {get(m, "Channel") for m in items}
    assert any(n.startswith("Local/800@from-trunk-") and n.endswith(";2") for n in names)
    assert any(n.startswith("Local/op10") for n in names)
    bridged = [m for m in items if get(m, "BridgeId")]
    assert len(bridged) >= 2

    items, done = list_items(c, "QueueStatus", "qs")
    kinds = [get(m, "Event") for m in items]
    assert kinds[0] == "QueueParams" and kinds.count("QueueMember") == 2
    capture = "04-queue-member-management"
    for kind in ("QueueParams", "QueueMember"):
        ref = [k for k, _ in first_action_item(capture, kind)]
        for m in items:
            if get(m, "Event") == kind:
                assert [k for k, _ in m] == ref, kind
    assert any(get(m, "InCall") == "1" for m in items if get(m, "Event") == "QueueMember")


def test_shutdown_after(sim):
    s = sim("--simulate", "--rate", "0", "--shutdown-after", "0.5")
    c = Conn(s.port)
    c.login()
    m = c.read_until(lambda m: get(m, "Event") == "Shutdown")
    assert [k for k, _ in m] == ["Event", "Privilege", "Timestamp", "Shutdown", "Restart"]
    assert get(m, "Shutdown") == "Cleanly" and get(m, "Restart") == "True"
    with pytest.raises(EOFError):
        while True:
            c.fill()
    assert s.proc.wait(5) == 0


def test_stats_on_sigusr1(sim, tmp_path):
    stats = tmp_path / "s.json"
    s = sim("--stats-file", str(stats))
    c = Conn(s.port)
    c.login()
    c.read_msg()
    for i in range(3):
        c.send(("Action", "Ping"), ("ActionID", str(i)))
        c.read_msg()
    s.proc.send_signal(signal.SIGUSR1)
    for _ in range(50):
        if stats.exists():
            break
        time.sleep(0.05)
    doc = json.loads(stats.read_text())
    assert doc["actions"] == {"Login": 1, "Ping": 3}
    assert doc["clients"] == 1


def test_tls_as_asterisk_tlsenable(sim, tmp_path):
    """--tls-cert: AMI inside TLS, as manager.conf's tlsenable serves it;
    a client that does not speak TLS gets no banner and amisim goes on."""
    from callbus_harness import tls_files
    ca, cert, key = tls_files(tmp_path)
    s = sim("--tls-cert", cert, "--tls-key", key, "--simulate", "--rate", "5", "--talk", "1-2")
    c = Conn(s.port, tls=ssl.create_default_context(cafile=str(ca)))
    assert get(c.login(), "Response") == "Success"
    c.read_until(lambda m: get(m, "Event") == "Newchannel")
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")

    plain = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    plain.sendall(b"Action: Login\r\nUsername: callbus\r\nSecret: callbus\r\n\r\n")
    got = b""
    try:
        while chunk := plain.recv(4096):
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    assert BANNER not in got
    plain.close()
    c2 = Conn(s.port, tls=ssl.create_default_context(cafile=str(ca)))
    assert get(c2.login(), "Response") == "Success"
    assert s.proc.poll() is None
