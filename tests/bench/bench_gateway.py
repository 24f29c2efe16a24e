"""Gateway figures for `make bench`:

1. concurrent authenticated WebSocket clients one gateway holds, and its RSS
   per connection (goal: 10,000 clients under 20 KB each);
2. latency from an AMI event at amisim to its arrival at a WebSocket client
   (the update of the call's state record that the event changed),
   p50/p99, with amisim producing about 1,000 AMI events/s; split at the
   Kafka record's timestamp (set by the agent's producer when it takes the
   message) into "agent" (AMI event -> produce) and "Kafka + gateway"
   (produce -> WebSocket client), and the gateway's CPU meanwhile.

Environment: BENCH_WS_CLIENTS (10000), BENCH_RUNS (3), BENCH_SECONDS (20),
BENCH_AGENT_KAFKA (librdkafka properties for the agent only, "k=v,k=v"),
BENCH_KEEP=1 (keep the work directory with the programs' logs).

Clients are raw asyncio sockets speaking just enough RFC 6455 (masked text
frames out, unmasked frames in), so one Python process can hold 10,000."""

import asyncio
import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
SECRET = "bench-secret-0123456789abcdef0123456789"
CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "10000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
# librdkafka properties for the agent only, e.g. "linger.ms=0" (comma-separated)
AGENT_KAFKA = [p for p in os.environ.get("BENCH_AGENT_KAFKA", "").split(",") if p]
# Client operator ids; "op" makes some of them the simulated operators.
PREFIX = os.environ.get("BENCH_WS_PREFIX", "idle")


def token(site, sub, role="operator"):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "site": site, "role": role,
                           "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


async def ws_upgrade(port):
    """A raw WebSocket to the gateway's /ws (subprotocol callbus.v1):
    (reader, writer) once the 101 came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: callbus.v1\r\n\r\n").encode())
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in status.split(b"\r\n", 1)[0]:
        raise RuntimeError(status[:100])
    return reader, writer


async def ws_connect(port, tok):
    reader, writer = await ws_upgrade(port)
    writer.write(frame(json.dumps({"type": "auth", "token": tok})))
    # welcome, then the snapshot
    seen = set()
    while "snapshot" not in seen:
        op, data = await read_frame(reader)
        if op == 8:
            raise RuntimeError(f"closed: {data[:2].hex()} {data[2:]}")
        seen.add(json.loads(data)["type"])
    return reader, writer


def rss_kb(pid):
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)


def wait_log(path, rx, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(rx, Path(path).read_text())
        if m:
            return m
        time.sleep(0.1)
    raise RuntimeError(f"no /{rx}/ in {path}")


def write_conf(work, site, bootstrap, ami_port, extra_kafka=(), name="gateway"):
    conf = work / f"{name}.conf"
    kafka = ", ".join(f'"{p}"' for p in (f"bootstrap.servers={bootstrap}", *extra_kafka))
    conf.write_text(f"""site = "{site}"; state_dir = "{work / site}";
kafka = [ {kafka} ];
agent: {{ ami: {{ port = {ami_port}; secret = "callbus"; }}; }};
commands: {{ operator_phone = "Local/%s@phones"; }};
gateway: {{ id = "gwb"; listen = "127.0.0.1:0"; www_dir = "{ROOT / 'gateway' / 'www'}";
  jwt_alg = "HS256"; jwt_secret = "{SECRET}"; max_connections = {CLIENTS + 1000};
  max_msgs_per_s = 100; idle_timeout = 3600; }};
""")
    return conf


async def hold_clients(port, site, n):
    conns, t0 = [], time.monotonic()
    sem = asyncio.Semaphore(200)

    async def one(i):
        async with sem:
            conns.append(await ws_connect(port, token(site, f"{PREFIX}{i}")))
    await asyncio.gather(*(one(i) for i in range(n)))
    return conns, time.monotonic() - t0


async def measure_latency(port, site, seconds):
    """A supervisor sees every change of every call (its state record's
    update); latency = arrival - the record's time, the time of the AMI event
    that changed it (Asterisk's Timestamp, i.e. amisim's clock on this
    machine). Keyed by (call id, time)."""
    reader, writer = await ws_connect(port, token(site, "sup1", "supervisor"))
    lat, end = {}, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            op, data = await asyncio.wait_for(read_frame(reader), timeout=1)
        except asyncio.TimeoutError:
            continue
        now = time.time()
        msg = json.loads(data)
        if msg.get("type") != "update" or msg["kind"] != "call" or not msg.get("time"):
            continue
        lat.setdefault((msg["id"], msg["time"]), (rfc3339_s(msg["time"]), now))
    writer.close()
    return lat


def rfc3339_s(t):
    return calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + t[19:-1])


def produce_times(bootstrap, topic, ids):
    """(call id, time) -> the Kafka record's timestamp (s) of its first
    record in the state.calls topic."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-gw", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    out, quiet = {}, time.monotonic() + 5
    while len(out) < len(ids) and time.monotonic() < quiet:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        quiet = time.monotonic() + 5
        if m.value() is None:
            continue
        eid = (m.key().decode(), json.loads(m.value())["time"])
        if eid in ids and eid not in out:
            out[eid] = m.timestamp()[1] / 1000
    c.close()
    return out


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, int(len(xs) * p) - 1)] if p < 1 else xs[-1]


def run(bootstrap):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateway inherits it
    work = Path(subprocess.check_output(["mktemp", "-d", "/tmp/callbus-bench-gw.XXXXXX"], text=True).strip())
    site = "g" + uuid.uuid4().hex[:8]
    # ~20 inbound calls/s with enough operators: about 1,000 AMI events/s.
    amisim = start([BUILD / "amisim", "--listen", "127.0.0.1:0", "--simulate", "--operators", "200",
                    "--queues", "support", "--rate", "20", "--talk", "2-5", "--abandon", "0"],
                   work / "amisim.log")
    ami_port = int(re.search(r":(\d+)$", amisim.stdout.readline().strip()).group(1))
    conf = write_conf(work, site, bootstrap, ami_port)
    agent_conf = write_conf(work, site, bootstrap, ami_port, AGENT_KAFKA, name="agent")
    agent = start([BUILD / "callbus-agent", "-c", agent_conf], work / "agent.log")
    gw = None
    try:
        wait_log(work / "agent.log", r"ami: logged in")
        time.sleep(3)
        gw = subprocess.Popen([BUILD / "callbus-gateway", "-c", conf], stderr=open(work / "gateway.log", "w"))
        port = int(wait_log(work / "gateway.log", r"listening on https?://[0-9.]+:(\d+)").group(1))
        base = rss_kb(gw.pid)
        loop = asyncio.new_event_loop()
        conns, took = loop.run_until_complete(hold_clients(port, site, CLIENTS))
        time.sleep(2)
        held = rss_kb(gw.pid)
        per_conn = (held - base) * 1024 / len(conns)
        print(f"gateway clients: {len(conns)} authenticated WebSocket clients connected in {took:.1f} s; "
              f"gateway RSS {base / 1024:.1f} MB before, {held / 1024:.1f} MB after: "
              f"{per_conn / 1024:.1f} KB per connection")
        cpu0, t0 = cpu_s(gw.pid), time.monotonic()
        got = loop.run_until_complete(measure_latency(port, site, SECONDS))
        gw_cpu = (cpu_s(gw.pid) - cpu0) / (time.monotonic() - t0) * 100
        for _, w in conns:
            w.close()
        loop.close()
        lat = [(now - ts) * 1000 for ts, now in got.values()]
        kts = produce_times(bootstrap, f"callbus.{site}.state.calls", set(got))
        agent_ms = [(kts[i] - got[i][0]) * 1000 for i in kts]
        rest_ms = [(got[i][1] - kts[i]) * 1000 for i in kts]
        r = dict(clients=len(conns), kb_per_conn=per_conn / 1024, p50=pct(lat, .5), p99=pct(lat, .99),
                 max=max(lat), agent_p50=pct(agent_ms, .5), agent_p99=pct(agent_ms, .99),
                 gw_p50=pct(rest_ms, .5), gw_p99=pct(rest_ms, .99), gw_cpu=gw_cpu)
        print(f"gateway latency: {len(lat)} call state updates over {SECONDS} s at ~1,000 AMI events/s, "
              f"{len(conns)} clients connected: AMI event -> WebSocket client p50 {r['p50']:.2f} ms, "
              f"p99 {r['p99']:.2f} ms, max {r['max']:.1f} ms; of which AMI -> Kafka produce (agent) "
              f"p50 {r['agent_p50']:.2f} / p99 {r['agent_p99']:.2f} ms, produce -> WebSocket client "
              f"(Kafka + gateway) p50 {r['gw_p50']:.2f} / p99 {r['gw_p99']:.2f} ms "
              f"({len(kts)} matched); gateway CPU {gw_cpu:.0f} % of a core")
        return r
    finally:
        for p in (gw, agent, amisim):
            if p:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    runs = [run(sys.argv[1]) for _ in range(int(os.environ.get("BENCH_RUNS", "3")))]
    med = lambda k: statistics.median(r[k] for r in runs)
    each = ", ".join(f"{r['p99']:.1f}" for r in runs)
    print(f"RESULT gateway (median of {len(runs)}): {med('clients'):.0f} clients held, "
          f"{med('kb_per_conn'):.1f} KB RSS per connection; AMI event -> WebSocket client "
          f"p50 {med('p50'):.2f} ms, p99 {med('p99'):.2f} ms (runs: "
          f"{each}); agent part p50 {med('agent_p50'):.2f} / "
          f"p99 {med('agent_p99'):.2f} ms, Kafka + gateway part p50 {med('gw_p50'):.2f} / "
          f"p99 {med('gw_p99'):.2f} ms; gateway CPU {med('gw_cpu'):.0f} %")
