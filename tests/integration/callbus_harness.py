"""Starting callbus programs for integration tests: amisim, the agent, and
reading back what they published.

Kept apart from conftest.py (generic Kafka/process helpers) so the test files
read as scenarios."""

import json
import re
from pathlib import Path

from conftest import build_path, consume_all, free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "ami-samples"


def tls_files(dir, names=("IP:127.0.0.1", "DNS:localhost"), prefix="server"):
    """A CA and a certificate it signed for names (subjectAltName entries),
    made with openssl in dir: returns (ca.pem, cert.pem, key.pem). Each call
    with another prefix makes another CA."""
    import subprocess
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    ca, ca_key = dir / f"{prefix}-ca.pem", dir / f"{prefix}-ca.key"
    cert, key, csr = dir / f"{prefix}.pem", dir / f"{prefix}.key", dir / f"{prefix}.csr"
    ext = dir / f"{prefix}.ext"
    ext.write_text(f"subjectAltName={','.join(names)}\n")

    def run(*args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={prefix} test CA",
        "-keyout", ca_key, "-out", ca)
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[0].split(':', 1)[1]}", "-keyout", key,
        "-out", csr)
    run("x509", "-req", "-days", "2", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", ext,
        "-out", cert)
    return ca, cert, key


def start_amisim(procs, *args, name="amisim"):
    """Starts amisim on a free loopback port; returns (Proc, port)."""
    p = procs.start([build_path("amisim"), "--listen", "127.0.0.1:0", *args], name=name)
    m = p.wait_for(r"listening on 127\.0\.0\.1:(\d+)", timeout=15, which="out")
    return p, int(m.group(1))


def restart_amisim(procs, port, *args, name="amisim"):
    """Starts amisim again on a given port (an Asterisk restart)."""
    p = procs.start([build_path("amisim"), "--listen", f"127.0.0.1:{port}", *args], name=name)
    p.wait_for(r"listening on", timeout=15, which="out")
    return p


def write_agent_conf(tmp_path, site, bootstrap, ami_port, name="agent1", http=True,
                     kafka_extra=(), agent_extra="", top_extra="", ping_interval=2, ami_extra=""):
    """Writes an agent.conf for one test; returns (path, http_port)."""
    http_port = free_port() if http else None
    kafka = ", ".join(json.dumps(p) for p in [f"bootstrap.servers={bootstrap}", *kafka_extra])
    conf = f"""
site = "{site.id}";
topic_prefix = "{site.prefix}";
state_dir = "{tmp_path / (name + '-state')}";
log_level = "debug";
kafka = [ {kafka} ];
{top_extra}
agent: {{
  id = "{name}";
  ami: {{ host = "127.0.0.1"; port = {ami_port}; username = "callbus"; secret = "callbus";
          reconnect_min_ms = 100; reconnect_max_ms = 1000; ping_interval = {ping_interval}; ping_timeout = 3;
          {ami_extra} }};
  http: {{ listen = "{f'127.0.0.1:{http_port}' if http else ''}"; }};
  {agent_extra}
}};
"""
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    return path, http_port


def start_agent(procs, conf, name="agent", wait_login=True):
    p = procs.start([build_path("callbus-agent"), "-c", conf], name=name)
    if wait_login:
        p.wait_for(r"ami: logged in", timeout=30, which="err")
    return p


def messages(bootstrap, topic, expected_count=None, timeout=30.0, idle=1.5):
    """Decoded CloudEvents of a topic, with their Kafka key and partition."""
    out = []
    for r in consume_all(bootstrap, topic, expected_count=expected_count, timeout=timeout, idle=idle):
        ev = json.loads(r.value)
        ev["_key"] = r.key.decode() if r.key is not None else None
        ev["_partition"] = r.partition
        ev["_offset"] = r.offset
        ev["_size"] = len(r.value)
        out.append(ev)
    return out


def capture_messages(name):
    """The messages of a capture's events.jsonl (headers lists), in order."""
    out = []
    for line in (SAMPLES / f"{name}.events.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "headers" in rec:
            out.append(rec)
    return out


def capture_bytes(name):
    return (SAMPLES / f"{name}.ami").read_bytes()


def serialize(headers):
    """The canonical AMI wire form of an ordered header list."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"


def wire_bytes(data):
    """Exact received bytes of a callbus.ami.event's data."""
    import base64
    if "raw_base64" in data:
        return base64.b64decode(data["raw_base64"])
    return serialize(data["headers"])


def command_of(action_id):
    """The command id an agent's ActionID names ("callbus/<nonce>/cmd/<id>",
    the nonce 32 hex digits, new every run), or None."""
    m = re.fullmatch(r"callbus/[0-9a-f]{32}/cmd/(.+)", action_id or "", re.S)
    return m.group(1) if m else None


def by_command(stats):
    """amisim's stats "by_action_id" entries of agent commands, by command id."""
    return {command_of(k): v for k, v in stats.get("by_action_id", {}).items() if command_of(k)}


def metrics(http_port):
    """The agent's /metrics as {name: value}; every metric must come with
    its # HELP and # TYPE lines, as Prometheus expects."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    helped = set(re.findall(r"^# HELP (\w+) \S", text, re.M))
    typed = set(re.findall(r"^# TYPE (\w+) (?:counter|gauge)$", text, re.M))
    for name in set(re.findall(r"^(\w+)[{ ]", text, re.M)):
        assert name in helped and name in typed, f"/metrics: {name} has no # HELP or # TYPE line"
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(\w+) ([0-9.e+-]+)$", text, re.M)}


class TcpProxy:
    """A loopback TCP relay the test can cut: the link between the agent and
    Asterisk going down while Asterisk itself keeps running."""

    def __init__(self, target_port):
        import socket
        import threading
        self.target_port = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.up = True
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                s = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            threading.Thread(target=self._pipe, args=(c, s), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        """Drops every relayed connection and refuses new ones."""
        import socket
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        self.up = True

    def retarget(self, port):
        """New connections go to `port` (another Asterisk at the same address);
        the ones relayed now stay where they are."""
        self.target_port = port

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


# ---------------------------------------------------------------- gateway

GATEWAY_SECRET = "callbus-test-secret-0123456789abcdef"


def hs256_token(claims, secret=GATEWAY_SECRET, alg="HS256"):
    """A JWT signed with HMAC-SHA256 (no PyJWT needed)."""
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def operator_token(site, sub, role="operator", ttl=600, secret=GATEWAY_SECRET, **extra):
    import time
    claims = {"sub": sub, "site": site.id if hasattr(site, "id") else site, "role": role,
              "exp": int(time.time()) + ttl, "iat": int(time.time())}
    claims.update(extra)
    return hs256_token(claims, secret)


HS256_AUTH = f'jwt_alg = "HS256";\n  jwt_secret = "{GATEWAY_SECRET}";'


def write_gateway_conf(tmp_path, site, bootstrap, gateway_extra="", name="gateway", auth=HS256_AUTH):
    """A gateway config for one test (port 0: any free port); auth: the
    jwt_* settings."""
    conf = f"""
site = "{site.id}";
topic_prefix = "{site.prefix}";
log_level = "debug";
kafka = [ "bootstrap.servers={bootstrap}" ];
gateway: {{
  id = "gwtest";
  listen = "127.0.0.1:0";
  www_dir = "{ROOT / 'gateway' / 'www'}";
  {auth}
  {gateway_extra}
}};
"""
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    return path


def start_gateway(procs, conf, name="gateway"):
    """Starts callbus-gateway; returns (Proc, base URL "http(s)://127.0.0.1:PORT")."""
    p = procs.start([build_path("callbus-gateway"), "-c", conf], name=name)
    m = p.wait_for(r"gateway: listening on (https?://[0-9.]+:\d+)", timeout=60, which="err")
    print(f"gateway: listening on {m.group(1)}")
    return p, m.group(1)


class GwClient:
    """A WebSocket client of the gateway (websocket-client), JSON in and out.
    Every client made is kept in GwClient.made, so that a test module can
    check all that the gateway sent (test_gateway.py: against the AsyncAPI
    document)."""

    made = []

    def __init__(self, base_url, token=None, resume=None, sslopt=None, origin=None, auth=True,
                 sockopt=None, source=None):
        """source: the local address to connect from (plain ws only), such
        as "127.0.0.2" for a second client host on loopback."""
        import socket
        import websocket
        url = base_url.replace("http", "ws", 1) + "/ws"
        kw = {"subprotocols": ["callbus.v1"], "timeout": 10}
        if source:
            host, port = base_url.split("://", 1)[1].rsplit(":", 1)
            kw["socket"] = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
        if sockopt:
            kw["sockopt"] = sockopt
        if sslopt:
            kw["sslopt"] = sslopt
        if origin:
            kw["origin"] = origin
        self.ws = websocket.create_connection(url, **kw)
        self.seen = []
        GwClient.made.append(self)
        self.welcome = self.first = None
        if token and auth:
            msg = {"type": "auth", "token": token}
            if resume:
                msg["resume"] = resume
            self.send(msg)
            self.welcome = self.recv()
            self.first = self.recv()

    def send(self, obj):
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout=10):
        self.ws.settimeout(timeout)
        m = json.loads(self.ws.recv())
        self.seen.append(m)
        return m

    def recv_until(self, pred, timeout=20, what="message", seen=True):
        """The first message (already received, unless seen=False, or arriving
        within timeout) that pred accepts."""
        import time
        if seen:
            for m in self.seen:
                if pred(m):
                    return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout}s")
            try:
                m = self.recv(timeout=left)
            except Exception as e:  # websocket timeout
                if "timed out" in str(e).lower():
                    raise TimeoutError(f"no {what} within {timeout}s") from e
                raise
            if pred(m):
                return m

    def drain(self, quiet=0.5):
        """Everything that arrives until nothing did for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(self.recv(timeout=quiet))
            except Exception as e:
                if "timed out" in str(e).lower():
                    return out
                raise

    def close_code(self, timeout=10):
        """Reads until the server closes; returns its close code. Text
        messages on the way are kept in .seen."""
        import websocket
        self.ws.settimeout(timeout)
        while True:
            try:
                f = self.ws.recv_frame()
            except (websocket.WebSocketConnectionClosedException, OSError):
                return None
            if f.opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(f.data[:2], "big") if len(f.data) >= 2 else None
            if f.opcode == websocket.ABNF.OPCODE_TEXT and f.fin:
                self.seen.append(json.loads(f.data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


# ---------------------------------------------------------------- state records

STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1",
                      "max.compaction.lag.ms": "120000", "delete.retention.ms": "3600000"}


def rfc3339(t):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1000000:06d}Z"


class StateWriter:
    """Writes the agent's state records (docs/messages.md, "State topics")
    the way the agent does: CloudEvents keyed by operator id, call id or
    queue name on the three compacted topics, a tombstone when a call ends.
    For tests that need a site in a given state without an Asterisk (1,000
    operators, hundreds of calls), and so the gateway's tests do not depend
    on the agent's reducer. Each method returns the record's data."""

    TOPICS = {"operator": "state.operators", "call": "state.calls", "queue": "state.queues"}
    TYPES = {"operator": "callbus.state.operator", "call": "callbus.state.call", "queue": "callbus.queue.stats"}

    def __init__(self, bootstrap, site, agent="agent1", create=True):
        import time
        from conftest import create_topic
        self.bootstrap, self.site, self.agent = bootstrap, site, agent
        self.epoch = int(time.time())
        self.seq = {}
        self.pending = []
        if create:
            for kind in self.TOPICS.values():
                try:
                    create_topic(bootstrap, site.topic(kind), partitions=1, config=STATE_TOPIC_CONFIG)
                except Exception as e:  # already there (the agent made it)
                    if "already exists" not in str(e).lower():
                        raise

    def envelope(self, kind, key, data, t=None):
        import time
        topic = self.TOPICS[kind]
        seq = self.seq[topic] = self.seq.get(topic, 0) + 1
        return {"specversion": "1.0", "id": f"{self.site.id}:{self.agent}:{topic}:{self.epoch}:{seq}",
                "source": f"callbus://{self.site.id}/agent/{self.agent}", "type": self.TYPES[kind],
                "time": rfc3339(t or time.time()), "subject": key, "datacontenttype": "application/json",
                "epoch": self.epoch, "seq": seq, "data": data}

    def put(self, kind, key, data, flush=True):
        value = None if data is None else json.dumps(self.envelope(kind, key, data))
        self.pending.append((self.TOPICS[kind], key, value))
        if flush:
            self.flush()
        return data

    def flush(self):
        from conftest import produce
        by_topic = {}
        for topic, key, value in self.pending:
            by_topic.setdefault(topic, []).append((key, value))
        self.pending = []
        for topic, msgs in by_topic.items():
            produce(self.bootstrap, self.site.topic(topic), msgs)

    def operator(self, op, state="ready", queues=("support",), paused=False, reason=None, device=None,
                 offered=None, call=None, recent=(), handled=0, since=None, flush=True, **extra):
        import time
        dev = device or {"ready": "ready", "paused": "ready", "ringing": "ringing", "on_call": "busy",
                         "unavailable": "unavailable", "logged_out": "unknown"}[state]
        data = {"operator_id": op, "member_name": f"Operator {op}", "interface": f"PJSIP/{op}",
                "logged_in": bool(queues), "queues": [{"queue": q, "paused": paused, "reason": reason}
                                                      for q in queues],
                "state": state, "state_since": rfc3339(since or time.time()), "paused": paused,
                "pause_reason": reason if paused else None, "device": dev, "offered": offered, "call": call,
                "recent": list(recent), "today": {"date": time.strftime("%Y-%m-%d", time.gmtime()),
                                                  "handled": handled, "talk_s": 60.0 * handled, "missed": 0}}
        data.update(extra)
        return self.put("operator", op, data, flush)

    def call(self, call_id, state="queued", queue="support", caller="5551009", operator=None, offered_to=(),
             flush=True, **extra):
        now = rfc3339(__import__("time").time())
        data = {"call_id": call_id, "state": state, "direction": "inbound",
                "caller": {"number": caller, "name": "Carol"}, "party": None, "queue": queue,
                "position": 1 if state == "queued" else None, "operator_id": operator,
                "offered_to": list(offered_to), "operators": [operator] if operator else [],
                "started_at": now, "queued_at": now if queue else None,
                "answered_at": now if state in ("connected", "held") else None}
        data.update(extra)
        return self.put("call", call_id, data, flush)

    def end_call(self, call_id, flush=True):
        return self.put("call", call_id, None, flush)

    def queue(self, name, waiting=0, flush=True, **extra):
        import time
        data = {"queue": name, "date": time.strftime("%Y-%m-%d", time.gmtime()), "timezone": "UTC",
                "waiting": waiting, "oldest_waiting_since": rfc3339(time.time() - 30) if waiting else None,
                "longest_wait_s": 30 if waiting else 0, "offered": 100, "answered": 90, "abandoned": 6,
                "timed_out": 4, "answered_within_sl": 80, "sl_threshold_s": 20, "service_level": 0.8,
                "avg_wait_s": 9.5, "avg_talk_s": 70.0, "wait_s_total": 950, "talk_s_total": 6300.0,
                "talked": 90, "operators": {"logged_in": 3, "ready": 2, "paused": 1, "ringing": 0,
                                            "on_call": 0, "unavailable": 0}}
        data.update(extra)
        return self.put("queue", name, data, flush)

    @staticmethod
    def offer(call_id, caller="5551009", queue="support"):
        return {"call_id": call_id, "caller": {"number": caller, "name": "Carol"}, "queue": queue,
                "since": rfc3339(__import__("time").time())}

    @staticmethod
    def in_call(call_id, caller="5551009", queue="support"):
        return {"call_id": call_id, "caller": {"number": caller, "name": "Carol"}, "direction": "inbound",
                "queue": queue, "answered_at": rfc3339(__import__("time").time()), "held": False}

    @staticmethod
    def recent_call(call_id, caller="5551009", queue="support", talk=42.0):
        return {"call_id": call_id, "caller": {"number": caller, "name": "Carol"}, "direction": "inbound",
                "queue": queue, "disposition": "answered", "duration_s": talk + 3, "talk_s": talk,
                "ended_at": rfc3339(__import__("time").time())}
