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
                     kafka_extra=(), agent_extra="", top_extra=""):
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
          reconnect_min_ms = 100; reconnect_max_ms = 1000; ping_interval = 2; ping_timeout = 3; }};
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


def metrics(http_port):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
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
                 sockopt=None):
        import websocket
        url = base_url.replace("http", "ws", 1) + "/ws"
        kw = {"subprotocols": ["callbus.v1"], "timeout": 10}
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
