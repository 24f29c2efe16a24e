"""Multi-site topology on one machine, for test_multisite.py and the
catch-up benchmark (tests/bench/bench_multisite.py).

    site tallinn (LAN)                WAN (Toxiproxy)           centre
    amisim -> agent -> Kafka --LAN-- gateway
                       Kafka --WAN listener-- proxy "tallinn" --+
    site moscow: the same, proxy "moscow" ----------------------+-- MM2 -- Kafka central <-- CRM

Each site broker has a second listener, WAN, advertised at its Toxiproxy
proxy's address, so MirrorMaker 2 (which only knows the proxy addresses)
reaches a site only through the proxy: disabling the proxy cuts the WAN,
toxics degrade it. Agents and gateways use the LAN listener, which the proxy
never touches. MM2 runs compose/mm2.properties, the file the compose
deployment ships, with the test's shorter intervals appended.
"""

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from callbus_harness import start_agent, start_amisim, start_gateway, write_agent_conf, write_gateway_conf
from conftest import KAFKA_SH, KafkaBroker, ProcGroup, Site, create_topic, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
MM2_PROPERTIES = ROOT / "compose" / "mm2.properties"
SITES = ("tallinn", "moscow")
PREFIX = "callbus"
UP_KINDS = ("ami", "calls", "operators", "results", "status")
# The live state (docs/messages.md), up as well; made as docs/operations.md
# says an operator makes them by hand.
STATE_KINDS = ("state.calls", "state.operators", "state.queues")
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1",
                      "max.compaction.lag.ms": "120000", "delete.retention.ms": "3600000"}
COMMANDS_CONF = 'commands: { operator_phone = "Local/%s@phones"; };'

# Shorter than production (compose/mm2.properties) so a test sees topics and
# recovers within seconds.
MM2_TEST_OVERRIDES = {
    "refresh.topics.interval.seconds": "5",
    "refresh.groups.interval.seconds": "5",
    "sync.topic.configs.interval.seconds": "30",
    "emit.heartbeats.interval.seconds": "2",
}
# Connect worker settings: MM2 only applies them with a target cluster prefix.
for _c in ("central",) + SITES:
    MM2_TEST_OVERRIDES[f"{_c}.offset.flush.interval.ms"] = "2000"
    MM2_TEST_OVERRIDES[f"{_c}.scheduled.rebalance.max.delay.ms"] = "3000"


def toxiproxy_binary():
    """toxiproxy-server: $TOXIPROXY_SERVER, the cache (tools/setup.sh deps), PATH."""
    cands = [os.environ.get("TOXIPROXY_SERVER"),
             str(Path(os.environ.get("CALLBUS_CACHE", Path.home() / ".cache" / "callbus"))
                 / "bin" / "toxiproxy-server"),
             shutil.which("toxiproxy-server")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("toxiproxy-server not found (run: tools/setup.sh deps)")


def port_accepts(port, host="127.0.0.1", timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Toxiproxy:
    """A toxiproxy-server process and its HTTP API (no client library)."""

    def __init__(self, procs):
        self.binary = toxiproxy_binary()
        self.port = free_port()
        self.proc = procs.start([self.binary, "-host", "127.0.0.1", "-port", str(self.port)],
                                name="toxiproxy", env={"LOG_LEVEL": "warn"})
        wait_until(lambda: port_accepts(self.port), timeout=20, what="toxiproxy API")
        self.version = self.api("GET", "/version").get("version", "?")
        v = Path(self.binary + ".version")
        if v.exists():  # go install -buildvcs=false reports "git"; setup.sh records the tag
            self.version = v.read_text().strip()

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"toxiproxy {method} {path}: {e.code} {e.read().decode()}") from e
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return {"version": text.strip()}

    def create(self, name, listen_port, upstream):
        self.api("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{listen_port}",
                                      "upstream": upstream, "enabled": True})

    def set_enabled(self, name, enabled):
        # Disabling closes the listener and every open connection: a cut.
        self.api("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(self, proxy, name, type, stream="downstream", toxicity=1.0, **attributes):
        self.api("POST", f"/proxies/{proxy}/toxics",
                 {"name": name, "type": type, "stream": stream, "toxicity": toxicity,
                  "attributes": attributes})

    def toxics(self, proxy):
        return self.api("GET", f"/proxies/{proxy}/toxics")

    def clear_toxics(self, proxy):
        for t in self.toxics(proxy):
            self.api("DELETE", f"/proxies/{proxy}/toxics/{t['name']}")


class SiteNode:
    """One site: its broker (LAN + WAN listeners), amisim, agent, gateway."""

    def __init__(self, name, root):
        self.name = name
        self.site = Site(PREFIX, name)
        self.dir = root / name
        self.pick_ports()
        self.broker = None
        self.amisim = self.agent = self.gateway = None
        self.ami_port = self.url = None
        self.stats_file = self.dir / "amisim-stats.json"

    def pick_ports(self):
        self.lan_port, self.wan_port, self.proxy_port = free_port(), free_port(), free_port()

    @property
    def lan(self):
        return f"127.0.0.1:{self.lan_port}"

    @property
    def wan(self):
        """The site's address as the centre sees it: through the proxy."""
        return f"127.0.0.1:{self.proxy_port}"

    def topic(self, kind):
        return self.site.topic(kind)

    def make_broker(self, heap):
        # kafka.sh reuses the ports it finds in DIR, so the listeners below
        # (appended to server.properties, later keys win) can name them.
        self.dir.mkdir(parents=True, exist_ok=True)
        cport = free_port()
        (self.dir / "port").write_text(f"{self.lan_port}\n")
        (self.dir / "controller_port").write_text(f"{cport}\n")
        self.broker = KafkaBroker(self.dir)
        (self.dir / "extra.properties").write_text(
            f"listeners=PLAINTEXT://127.0.0.1:{self.lan_port},CONTROLLER://127.0.0.1:{cport},"
            f"WAN://127.0.0.1:{self.wan_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.lan_port},WAN://{self.wan}\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,WAN:PLAINTEXT\n")
        self.broker.env["KAFKA_HEAP_OPTS"] = heap
        return self.broker


class Topology:
    """Three brokers, Toxiproxy, MM2, and per site amisim + agent + gateway."""

    def __init__(self, root, rate=0.5, operators=6, talk="3-8", broker_heap="-Xmx384m -Xms128m",
                 mm2_heap="-Xmx512m -Xms128m", mm2_jvm_opts="", mm2_overrides=None, gateways=True,
                 agent_log_level="debug", log=print):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.procs = ProcGroup(self.root / "logs")
        self.rate, self.operators, self.talk = rate, operators, talk
        self.broker_heap, self.mm2_heap, self.mm2_jvm_opts = broker_heap, mm2_heap, mm2_jvm_opts
        self.mm2_overrides = dict(MM2_TEST_OVERRIDES, **(mm2_overrides or {}))
        self.gateways = gateways
        self.agent_log_level = agent_log_level
        self.log = log
        self.sites = {name: SiteNode(name, self.root) for name in SITES}
        self.central_dir = self.root / "central"
        self.central = None
        self.toxi = None
        self.mm2 = None

    # ------------------------------------------------------------ start/stop

    def start(self):
        t0 = time.monotonic()
        self._start_brokers()
        self.toxi = Toxiproxy(self.procs)
        for s in self.sites.values():
            self.toxi.create(s.name, s.proxy_port, f"127.0.0.1:{s.wan_port}")
        self._create_topics()
        self.start_mm2()
        self.wait_mm2_ready()
        for s in self.sites.values():
            self._start_site(s)
        self.log(f"multisite: topology up in {time.monotonic() - t0:.0f}s: "
                 + ", ".join(f"{s.name} LAN {s.lan} WAN {s.wan}" for s in self.sites.values())
                 + f", central {self.central_bootstrap}")
        self.log(f"multisite: WAN = Toxiproxy {self.toxi.version} ({self.toxi.binary}), "
                 "one proxy per site in front of the broker's WAN listener; "
                 "MirrorMaker 2 reaches the sites only through it")
        return self

    def _start_brokers(self):
        # Ports are picked before the brokers bind them: another test on the
        # machine may take one first. A broker that finds its port in use
        # gets new ones and starts again.
        self.central = KafkaBroker(self.central_dir)
        self.central.env["KAFKA_HEAP_OPTS"] = self.broker_heap
        todo = list(self.sites.values()) + [None]
        for attempt in range(3):
            errors = {}

            def start(node):
                b = self.central if node is None else node.make_broker(self.broker_heap)
                if node is None:
                    for f in ("port", "controller_port"):
                        (self.central_dir / f).write_text(f"{free_port()}\n")
                try:
                    b.start(timeout=150)
                except Exception as e:  # collected, retried or raised below
                    errors[node] = e
            threads = [threading.Thread(target=start, args=(n,)) for n in todo]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if not errors:
                return
            for node, e in errors.items():
                if "already in use" not in str(e) or attempt == 2:
                    raise e
                self.log(f"multisite: port taken, new ports for {node.name if node else 'central'}")
                if node is not None:
                    node.pick_ports()
            todo = list(errors)

    @property
    def central_bootstrap(self):
        return self.central.bootstrap

    def _create_topics(self):
        # The topics exist before MM2 starts, so its first topic scan finds
        # them; partitions as the agent would get them (num.partitions=3).
        for s in self.sites.values():
            for kind in UP_KINDS + ("commands",):
                cfg = {"cleanup.policy": "compact"} if kind == "status" else None
                create_topic(s.lan, s.topic(kind), partitions=3, config=cfg)
            for kind in STATE_KINDS:
                create_topic(s.lan, s.topic(kind), partitions=1, config=STATE_TOPIC_CONFIG)
            create_topic(self.central_bootstrap, s.topic("commands"), partitions=3)

    def mm2_config(self):
        """compose/mm2.properties + the test's overrides (later keys win)."""
        path = self.root / "mm2.properties"
        over = dict(self.mm2_overrides)
        over.setdefault("listeners", f"http://127.0.0.1:{free_port()}")
        path.write_text(MM2_PROPERTIES.read_text()
                        + "\n# ---- test overrides (tests/integration/multisite.py)\n"
                        + "".join(f"{k}={v}\n" for k, v in over.items()))
        return path

    def start_mm2(self):
        log4j = self.root / "mm2-log4j2.properties"
        log4j.write_text(
            "status = warn\nappender.err.type = Console\nappender.err.name = STDERR\n"
            "appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n"
            "appender.err.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = info\n"
            "rootLogger.appenderRef.err.ref = STDERR\n"
            "logger.kc.name = org.apache.kafka.clients\nlogger.kc.level = warn\n"
            "logger.cfg.name = org.apache.kafka.common.config.AbstractConfig\nlogger.cfg.level = warn\n")
        env = {"TALLINN_BOOTSTRAP": self.sites["tallinn"].wan,
               "MOSCOW_BOOTSTRAP": self.sites["moscow"].wan,
               "CENTRAL_BOOTSTRAP": self.central_bootstrap,
               "KAFKA_HEAP_OPTS": self.mm2_heap,
               # after kafka.sh's own JVM options: these win
               "KAFKA_OPTS": self.mm2_jvm_opts,
               "KAFKA_LOG4J_OPTS": f"-Dlog4j2.configurationFile={log4j}"}
        full_env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
        full_env.update(env)
        self.mm2 = self.procs.start([KAFKA_SH, "mirror-maker", self.mm2_config()], name="mm2",
                                    env=full_env)
        return self.mm2

    def wait_mm2_ready(self, timeout=180):
        """MM2 has created every replicated topic on its target cluster."""
        want = [(self.central_bootstrap, s.topic(k)) for s in self.sites.values() for k in UP_KINDS + STATE_KINDS]
        want += [(s.lan, "central.heartbeats") for s in self.sites.values()]
        wait_until(lambda: all(topic_exists(bs, t) for bs, t in want), timeout=timeout,
                   interval=1, what="MirrorMaker 2 to create the replicated topics")

    def _start_site(self, s):
        s.amisim, s.ami_port = start_amisim(
            self.procs, "--simulate", "--operators", str(self.operators), "--queues", "support",
            "--rate", str(self.rate), "--talk", self.talk, "--abandon", "10",
            "--seed", str(1 if s.name == "tallinn" else 2),
            "--stats-file", s.stats_file, "--stats-interval", "1", name=f"amisim-{s.name}")
        conf, _ = write_agent_conf(s.dir, s.site, s.lan, s.ami_port, name=f"agent-{s.name}",
                                   http=False, top_extra=COMMANDS_CONF)
        conf.write_text(conf.read_text().replace('log_level = "debug"',
                                                 f'log_level = "{self.agent_log_level}"'))
        s.agent = start_agent(self.procs, conf, name=f"agent-{s.name}")
        if self.gateways:
            gconf = write_gateway_conf(s.dir, s.site, s.lan, name=f"gateway-{s.name}")
            s.gateway, s.url = start_gateway(self.procs, gconf, name=f"gateway-{s.name}")

    def stop(self):
        self.procs.stop_all()
        for b in [s.broker for s in self.sites.values()] + [self.central]:
            if b is None:
                continue
            try:
                b.stop(timeout=20)
            except Exception:
                b.kill()

    # ------------------------------------------------------------ the WAN

    def cut(self, name):
        self.toxi.set_enabled(name, False)

    def restore(self, name):
        self.toxi.set_enabled(name, True)

    def degrade(self, name, latency_ms=100, jitter_ms=10, rate_kbs=256, slice_bytes=512,
                reset_toxicity=0.05, reset_after_ms=5000):
        """~2*latency_ms RTT, a bandwidth cap, segments sliced small, and a
        lossy link: some connections reset by the peer mid-stream."""
        t = self.toxi
        for stream in ("upstream", "downstream"):
            t.add_toxic(name, f"latency-{stream}", "latency", stream, latency=latency_ms,
                        jitter=jitter_ms)
        t.add_toxic(name, "bandwidth", "bandwidth", "downstream", rate=rate_kbs)
        t.add_toxic(name, "slicer", "slicer", "downstream", average_size=slice_bytes,
                    size_variation=slice_bytes // 2, delay=200)
        t.add_toxic(name, "reset", "reset_peer", "downstream", toxicity=reset_toxicity,
                    timeout=reset_after_ms)
        return t.toxics(name)

    def heal(self, name):
        self.toxi.clear_toxics(name)


# ---------------------------------------------------------------- reading topics

def end_offsets(bootstrap, topics, timeout=15.0):
    """{(topic, partition): high watermark}."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-multisite-offsets",
                  "enable.auto.commit": False})
    try:
        out = {}
        for t in topics:
            md = c.list_topics(t, timeout=timeout).topics[t]
            for p in md.partitions:
                _, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=timeout)
                out[(t, p)] = hi
        return out
    finally:
        c.close()


def read_upto(bootstrap, marks, timeout=120.0):
    """The CloudEvents of every (topic, partition) from the start up to
    marks[(topic, partition)], in partition order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    todo = {tp: hi for tp, hi in marks.items() if hi > 0}
    out = []
    if not todo:
        return out
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-multisite-reader",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                tp = (m.topic(), m.partition())
                if tp not in todo or m.offset() >= todo[tp]:
                    continue
                out.append(_event(m))
                if m.offset() + 1 >= todo[tp]:
                    del todo[tp]
        if todo:
            raise TimeoutError(f"read_upto: {len(todo)} partitions not read to their mark")
    finally:
        c.close()
    return out


def latest_records(bootstrap, topics, timeout=60.0):
    """A state reader's view of compacted topics, read to their ends now:
    {(topic, key): record}, a record being the CloudEvent, or None for a key
    whose last record is a tombstone (committed records only)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    marks = {tp: hi for tp, hi in end_offsets(bootstrap, topics).items() if hi > 0}
    out = {}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-multisite-state",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in marks])
        deadline = time.monotonic() + timeout
        while marks and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                tp = (m.topic(), m.partition())
                if tp not in marks:
                    continue
                if not m.error() and m.offset() < marks[tp]:
                    key = (m.topic(), (m.key() or b"").decode())
                    out[key] = json.loads(m.value()) if m.value() is not None else None
                # Transaction markers take offsets too: the end is at or past the mark.
                if (m.error() and m.error().code() == KafkaError._PARTITION_EOF) or \
                        (not m.error() and m.offset() + 1 >= marks[tp]):
                    marks.pop(tp, None)
        if marks:
            raise TimeoutError(f"latest_records: {len(marks)} partitions not read to their end")
    finally:
        c.close()
    return out


def _event(m):
    ev = json.loads(m.value())
    ev["_topic"], ev["_key"] = m.topic(), (m.key() or b"").decode()
    ev["_partition"], ev["_offset"] = m.partition(), m.offset()
    return ev


class CentralView:
    """Follows topics on the central cluster from the beginning and keeps
    what a careful consumer would: ids seen (duplicates dropped and
    counted), per-key order ((epoch, seq) must grow per topic and key)."""

    def __init__(self, bootstrap, topics):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-multisite-view",
                           "enable.auto.commit": False, "isolation.level": "read_committed"})
        parts = []
        for t in topics:
            md = self.c.list_topics(t, timeout=15).topics[t]
            parts += [TopicPartition(t, p, OFFSET_BEGINNING) for p in md.partitions]
        self.c.assign(parts)
        self.ids = {}          # id -> event
        self.duplicates = 0
        self.dup_ids = set()
        self.order_violations = []
        self.last = {}         # (topic, key) -> (epoch, seq)

    def poll(self, seconds=1.0):
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            msgs = self.c.consume(2000, 0.2)
            for m in msgs:
                if m.error() or m.value() is None:
                    continue
                self._take(_event(m))
                n += 1
            if not msgs:
                break
        return n

    def _take(self, ev):
        if ev["id"] in self.ids:
            self.duplicates += 1
            self.dup_ids.add(ev["id"])
            return
        self.ids[ev["id"]] = ev
        if "seq" not in ev:
            return
        k = order_scope(ev)
        pos = (ev.get("epoch", 0), ev["seq"])
        if k in self.last and pos <= self.last[k]:
            self.order_violations.append((k, self.last[k], pos, ev["id"]))
        self.last[k] = pos

    def missing(self, events):
        """Events (read at a site) not seen here yet."""
        return [e for e in events if e["id"] not in self.ids]

    def close(self):
        self.c.close()


def wait_caught_up(view, site_events, timeout, interval=0.5):
    """Seconds until every one of site_events is in view (polling it)."""
    t0 = time.monotonic()
    left = view.missing(site_events)
    while left:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{len(left)} of {len(site_events)} site events still missing "
                               f"at the centre after {timeout}s, e.g. {left[0]['id']}")
        view.poll(interval)
        left = view.missing(left)
    return time.monotonic() - t0


def order_scope(ev):
    """What order is kept for: the key; for keyless events (AMI events
    without a Linkedid or Uniqueid, spread over partitions) the partition."""
    return (ev["_topic"], ev["_key"] or f"#partition{ev['_partition']}")


def site_order_violations(events):
    """Per-key order at the site itself (the reference)."""
    last, bad = {}, 0
    for e in events:
        if "seq" not in e:
            continue
        k = order_scope(e)
        pos = (e.get("epoch", 0), e["seq"])
        if k in last and pos <= last[k]:
            bad += 1
        last[k] = pos
    return bad


def kafka_rtt_ms(port, host="127.0.0.1", samples=3, attempts=20):
    """(median milliseconds of one Kafka request/response, ApiVersions v0, on
    a fresh connection to host:port; connections reset on the way). On a
    lossy link some probes are reset: they are counted, not timed."""
    import struct
    client = b"callbus-rtt"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    req = struct.pack(">i", len(body)) + body
    times, resets = [], 0
    for _ in range(attempts):
        try:
            with socket.create_connection((host, port), timeout=10) as s:
                t0 = time.monotonic()
                s.sendall(req)
                if not s.recv(4):
                    raise ConnectionResetError("closed before the answer")
                times.append((time.monotonic() - t0) * 1000)
        except ConnectionResetError:
            resets += 1
        if len(times) >= samples:
            break
    if not times:
        raise OSError(f"no Kafka answer through {host}:{port} in {attempts} tries")
    return sorted(times)[len(times) // 2], resets


def topic_exists(bootstrap, topic):
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return topic in md.topics and md.topics[topic].error is None


def kafka_reachable(bootstrap, timeout=5.0):
    """True if a Kafka client gets metadata from bootstrap within timeout."""
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 3000,
                     "log_level": 0})
    try:
        a.list_topics(timeout=timeout)
        return True
    except Exception:
        return False
    finally:
        del a
