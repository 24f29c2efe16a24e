"""Gateway figures for `make bench`:

1. concurrent authenticated WebSocket clients one gateway holds, and its RSS
   per connection (issue 14 goal 4: 19,000 clients under 10 KB each);
2. latency from an AMI event at amisim to its arrival at a WebSocket client
   (the update of the call's state record that the event changed),
   p50/p99, with amisim making BENCH_RATE calls/s (about 140 AMI events
   per call, half of them VarSet: 20 calls/s is ~2,800 AMI events/s, which
   the bench counts and prints); split at the
   Kafka record's timestamp (set by the agent's producer when it takes the
   message) into "agent" (AMI event -> produce) and "Kafka + gateway"
   (produce -> WebSocket client), and the gateway's CPU meanwhile; next to
   it, the anchor measured meanwhile: Kafka's own produce -> consume
   (bench.py's KafkaEcho, 50 messages/s to a topic of their own).

Environment: BENCH_WS_CLIENTS (10000), BENCH_RUNS (3), BENCH_SECONDS (20),
BENCH_RATE (20 calls/s), BENCH_WS_PER_PROC (5000 clients per client process),
BENCH_AGENT_KAFKA (librdkafka properties for the agent only, "k=v,k=v"),
BENCH_GATEWAY_KAFKA (the same for the gateway only), BENCH_DUMP=FILE (each
update's id, time, AMI event time, Kafka timestamp and arrival, as JSON),
BENCH_KEEP=1 (keep the work directory with the programs' logs).

Clients are raw asyncio sockets speaking just enough RFC 6455 (masked text
frames out, unmasked frames in). The idle clients are held by child
processes of this script (`--hold PORT SITE FIRST COUNT PARALLEL [ROLE]`), at most
BENCH_WS_PER_PROC each: a process may not open more files than the hard
limit (20,000 on the development machine), and the measuring client then
shares its event loop and its core with none of them. The gateway's own
limit is the same hard limit, so the bench sizes max_connections and
max_unauthed to fit under it (docs/benchmarks.md)."""

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
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import KafkaEcho, pct

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CALLBUS_BUILD", ROOT / "build"))
SECRET = "bench-secret-0123456789abcdef0123456789"
CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "10000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
RATE = float(os.environ.get("BENCH_RATE", "20"))
PER_PROC = int(os.environ.get("BENCH_WS_PER_PROC", "5000"))
# librdkafka properties for the agent only, e.g. "linger.ms=0" (comma-separated)
AGENT_KAFKA = [p for p in os.environ.get("BENCH_AGENT_KAFKA", "").split(",") if p]
GATEWAY_KAFKA = [p for p in os.environ.get("BENCH_GATEWAY_KAFKA", "").split(",") if p]
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
  jwt_alg = "HS256"; jwt_secret = "{SECRET}"; max_connections = {CLIENTS + 10};
  max_unauthed = {MAX_UNAUTHED}; max_unauthed_per_address = 0;
  max_msgs_per_s = 100; idle_timeout = 3600; }};
""")
    return conf


# The gateway's fds: max_connections + max_unauthed + 256 is what it asks
# for (gateway/server.c raise_fd_limit); with 19,010 + 500 + 256 that fits
# under a hard limit of 20,000. All clients come from 127.0.0.1, so the
# per-address limit of sessions not authenticated yet is off.
MAX_UNAUTHED = 500
CONNECTING = 400       # connects in flight over all client processes (< MAX_UNAUTHED)


async def hold_clients(port, site, first, n, parallel, role="operator"):
    conns, t0 = [], time.monotonic()
    sem = asyncio.Semaphore(parallel)

    async def one(i):
        async with sem:
            conns.append(await ws_connect(port, token(site, f"{PREFIX}{i}", role)))
    await asyncio.gather(*(one(i) for i in range(first, first + n)))
    return conns, time.monotonic() - t0


def hold_main(port, site, first, n, parallel, role="operator"):
    """A client process: connects its n clients (ids PREFIX + first..., all
    of the given role), says "held N SECONDS",
    keeps them (reading whatever comes, so that no queue grows at the
    gateway) until its stdin closes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main():
        conns, took = await hold_clients(port, site, first, n, parallel, role)
        print(f"held {len(conns)} {took:.2f}", flush=True)

        async def drain(reader):
            try:
                while await reader.read(65536):
                    pass
            except (ConnectionError, asyncio.CancelledError):
                pass
        drains = [asyncio.ensure_future(drain(r)) for r, _ in conns]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for d in drains:
            d.cancel()
        for _, w in conns:
            w.close()
    asyncio.run(main())


def spawn_clients(port, site, n):
    """Child processes holding n clients between them: (procs, held, seconds)."""
    nprocs = max(1, -(-n // PER_PROC))
    procs, first, t0 = [], 0, time.monotonic()
    for k in range(nprocs):
        count = n // nprocs + (1 if k < n % nprocs else 0)
        procs.append(subprocess.Popen([sys.executable, __file__, "--hold", str(port), site, str(first), str(count),
                                       str(max(1, CONNECTING // nprocs))],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        first += count
    held = 0
    for p in procs:
        line = p.stdout.readline().split()
        if not line or line[0] != "held":
            raise RuntimeError(f"a client process failed (exit {p.poll()})")
        held += int(line[1])
    return procs, held, time.monotonic() - t0


def stop_clients(procs):
    for p in procs:
        try:
            p.stdin.close()
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def amisim_events(stats_path, proc):
    """amisim's events_sent now (it writes its stats file on SIGUSR1)."""
    before = stats_path.stat().st_mtime_ns if stats_path.exists() else 0
    proc.send_signal(signal.SIGUSR1)
    end = time.time() + 5
    while time.time() < end:
        if stats_path.exists() and stats_path.stat().st_mtime_ns != before:
            try:
                return json.loads(stats_path.read_text())["events_sent"]
            except (ValueError, KeyError):
                pass
        time.sleep(0.02)
    return None


async def measure_latency(port, site, seconds):
    """A supervisor sees every change of every call and operator (its state
    record's update); latency = arrival - the record's time, the time of the
    AMI event that changed it (Asterisk's Timestamp, i.e. amisim's clock on
    this machine). Keyed by (kind, id, time)."""
    reader, writer = await ws_connect(port, token(site, "sup1", "supervisor"))
    lat, end = {}, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            op, data = await asyncio.wait_for(read_frame(reader), timeout=1)
        except asyncio.TimeoutError:
            continue
        now = time.time()
        msg = json.loads(data)
        if msg.get("type") != "update" or msg["kind"] not in ("call", "operator") or not msg.get("time"):
            continue
        lat.setdefault((msg["kind"], msg["id"], msg["time"]), (rfc3339_s(msg["time"]), now))
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


def run(bootstrap):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateway inherits it
    work = Path(subprocess.check_output(["mktemp", "-d", "/tmp/callbus-bench-gw.XXXXXX"], text=True).strip())
    site = "g" + uuid.uuid4().hex[:8]
    # RATE inbound calls/s with enough operators (10 per call/s: talk 2-5 s
    # and wrap-up keep none waiting): about 140 AMI events per call.
    amisim = start([BUILD / "amisim", "--listen", "127.0.0.1:0", "--simulate", "--operators",
                    str(max(200, int(RATE * 10))), "--queues", "support", "--rate", f"{RATE:g}", "--talk", "2-5",
                    "--abandon", "0", "--stats-file", work / "amisim.json"],
                   work / "amisim.log")
    ami_port = int(re.search(r":(\d+)$", amisim.stdout.readline().strip()).group(1))
    conf = write_conf(work, site, bootstrap, ami_port, GATEWAY_KAFKA)
    agent_conf = write_conf(work, site, bootstrap, ami_port, AGENT_KAFKA, name="agent")
    agent = start([BUILD / "callbus-agent", "-c", agent_conf], work / "agent.log")
    gw, procs, echo = None, [], None
    try:
        wait_log(work / "agent.log", r"ami: logged in")
        time.sleep(3)
        gw = subprocess.Popen([BUILD / "callbus-gateway", "-c", conf], stderr=open(work / "gateway.log", "w"))
        port = int(wait_log(work / "gateway.log", r"listening on https?://[0-9.]+:(\d+)").group(1))
        base = rss_kb(gw.pid)
        procs, nconns, took = spawn_clients(port, site, CLIENTS)
        time.sleep(2)
        held = rss_kb(gw.pid)
        per_conn = (held - base) * 1024 / nconns
        print(f"gateway clients: {nconns} authenticated WebSocket clients connected in {took:.1f} s "
              f"from {len(procs)} client processes; gateway RSS {base / 1024:.1f} MB before, "
              f"{held / 1024:.1f} MB after: {per_conn / 1024:.2f} KB per connection")
        loop = asyncio.new_event_loop()
        echo = KafkaEcho(bootstrap, f"bench.echo.{site}")
        echo.pinging(50)
        ev0 = amisim_events(work / "amisim.json", amisim)
        cpu0, t0 = cpu_s(gw.pid), time.monotonic()
        got = loop.run_until_complete(measure_latency(port, site, SECONDS))
        took_s = time.monotonic() - t0
        gw_cpu = (cpu_s(gw.pid) - cpu0) / took_s * 100
        ev1 = amisim_events(work / "amisim.json", amisim)
        # The latency counts from the Timestamp: how late amisim wrote the events after it.
        sim_lag = json.loads((work / "amisim.json").read_text()).get("sim_lag_p50_s", float("nan")) * 1000
        echo_ms = echo.latencies()
        echo.close()
        ami_rate = (ev1 - ev0) / took_s if ev0 is not None and ev1 is not None else float("nan")
        loop.close()
        stop_clients(procs)
        procs = []
        op_lat = [(now - ts) * 1000 for (kind, _, _), (ts, now) in got.items() if kind == "operator"]
        got = {(i, t): v for (kind, i, t), v in got.items() if kind == "call"}
        lat = [(now - ts) * 1000 for ts, now in got.values()]
        kts = produce_times(bootstrap, f"callbus.{site}.state.calls", set(got))
        if os.environ.get("BENCH_DUMP"):   # each update's times, to split the latency further
            Path(os.environ["BENCH_DUMP"]).write_text(json.dumps(
                [[i[0], i[1], got[i][0], kts.get(i), got[i][1]] for i in got]))
        agent_ms = [(kts[i] - got[i][0]) * 1000 for i in kts]
        rest_ms = [(got[i][1] - kts[i]) * 1000 for i in kts]
        r = dict(clients=nconns, kb_per_conn=per_conn / 1024, ami_rate=ami_rate, p50=pct(lat, .5), p99=pct(lat, .99),
                 max=max(lat), agent_p50=pct(agent_ms, .5), agent_p99=pct(agent_ms, .99),
                 gw_p50=pct(rest_ms, .5), gw_p99=pct(rest_ms, .99), gw_cpu=gw_cpu,
                 echo_p50=pct(echo_ms, .5), echo_p99=pct(echo_ms, .99),
                 op_p50=pct(op_lat, .5), op_p99=pct(op_lat, .99), sim_lag=sim_lag)
        print(f"gateway latency: {len(lat)} call state updates over {SECONDS} s at {ami_rate:,.0f} AMI events/s "
              f"({RATE:g} calls/s), {nconns} clients connected: AMI event -> WebSocket client p50 {r['p50']:.2f} ms, "
              f"p99 {r['p99']:.2f} ms, max {r['max']:.1f} ms; of which AMI -> Kafka produce (agent) "
              f"p50 {r['agent_p50']:.2f} / p99 {r['agent_p99']:.2f} ms, produce -> WebSocket client "
              f"(Kafka + gateway) p50 {r['gw_p50']:.2f} / p99 {r['gw_p99']:.2f} ms "
              f"({len(kts)} matched; Kafka's timestamps are whole milliseconds, so this split is good to "
              f"1 ms); amisim wrote the events p50 {sim_lag:.2f} ms after their Timestamp; {len(op_lat)} operator state updates: p50 {r['op_p50']:.2f} ms, "
              f"p99 {r['op_p99']:.2f} ms; gateway CPU {gw_cpu:.0f} % of a core; anchor, Kafka produce -> "
              f"consume of an echo topic at 50/s meanwhile: p50 {r['echo_p50']:.2f} / p99 {r['echo_p99']:.2f} ms "
              f"({len(echo_ms)} messages)")
        return r
    finally:
        if echo:
            echo.close()
        stop_clients(procs)
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
    if sys.argv[1] == "--hold":
        hold_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), *sys.argv[7:8])
        sys.exit(0)
    runs = [run(sys.argv[1]) for _ in range(int(os.environ.get("BENCH_RUNS", "3")))]
    med = lambda k: statistics.median(r[k] for r in runs)
    each = ", ".join(f"{r['p99']:.1f}" for r in runs)
    kbs = ", ".join(f"{r['kb_per_conn']:.2f}" for r in runs)
    print(f"RESULT gateway (median of {len(runs)}): {med('clients'):.0f} clients held, "
          f"{med('kb_per_conn'):.2f} KB RSS per connection (runs: "
          f"{kbs}); at {med('ami_rate'):,.0f} AMI "
          f"events/s, AMI event -> WebSocket client "
          f"p50 {med('p50'):.2f} ms, p99 {med('p99'):.2f} ms (runs: "
          f"{each}); agent part p50 {med('agent_p50'):.2f} / "
          f"p99 {med('agent_p99'):.2f} ms, Kafka + gateway part p50 {med('gw_p50'):.2f} / "
          f"p99 {med('gw_p99'):.2f} ms; operator state updates p50 {med('op_p50'):.2f} / "
          f"p99 {med('op_p99'):.2f} ms; gateway CPU {med('gw_cpu'):.0f} %; anchor, Kafka produce -> consume "
          f"of an echo topic in the same runs: p50 {med('echo_p50'):.2f} / p99 {med('echo_p99'):.2f} ms")
