"""Shared pytest fixtures and helpers for the callbus integration tests.

Run through tests/run-integration.sh (one broker for the session, exported as
KAFKA_BOOTSTRAP). Run directly (python3 -m pytest tests/integration), the
session fixture starts its own broker with tests/kafka/kafka.sh.

Fixtures:
  kafka_bootstrap      session: "host:port" of the session cluster
  callbus_build        session: Path of the build dir (CALLBUS_BUILD, default build)
  unique_topic_prefix  function: a topic prefix unique to this test ("t-<test>-<hex>")
  unique_site          function: a site id unique to this test ("s<hex>")
  site                 function: Site(prefix, id) with .topic(kind) / .topics
  private_broker       function: a started KafkaBroker of the test's own (fault tests)
  procs                function: ProcGroup; procs.start(args, name=...) -> Proc,
                       all stopped at teardown (then procs.cleanups run), log
                       tails shown on failure
  no_sanitizer_reports autouse: a sanitizer report of any process (reports go
                       to CALLBUS_SAN_LOG_DIR) fails the running test

Markers: `sanitizer` selects the tests `make integration-san` runs against
the ASan+UBSan programs (-m sanitizer). With CALLBUS_NO_SKIP=1 (make test) a
skipped test is a failure.

Helpers (import from conftest):
  KafkaBroker(dir, security=None).start(timeout=90) / .stop() / .restart() / .bootstrap / .running
      (security="sasl_ssl": SASL_SSL clients' listener, .ca and .password(user) for them)
  consume_all(bootstrap, topic, expected_count=None, timeout=30, idle=1.0) -> [Record]
      Record is a (key, value, partition, offset, timestamp) tuple (+ .headers)
  produce(bootstrap, topic, [(key, value) | (key, value, headers)])
  create_topic(bootstrap, name, partitions=3, config=None)
  free_port(host="127.0.0.1") -> int  (tests/ports.py: below the ephemeral range, never twice)
  wait_until(predicate, timeout=30, interval=0.1, what="condition")
  Proc(args, name, log_dir, env=None, cwd=None): .start() .wait_for(regex, timeout)
      .stop(timeout=10) .log_tail(n) .output() .alive .returncode
  build_path(name) -> Path of a built program, fails clearly when missing
"""

import collections
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from ports import free_port  # noqa: E402,F401  (one implementation: tests/ports.py)

KAFKA_SH = ROOT / "tests" / "kafka" / "kafka.sh"


def build_dir():
    b = Path(os.environ.get("CALLBUS_BUILD", "build"))
    return b if b.is_absolute() else ROOT / b


def build_path(name):
    """Path of a program in the build dir; fails the test if it is missing."""
    p = build_dir() / name
    if not p.exists():
        pytest.fail(f"{p} not built (run make all)", pytrace=False)
    return p


# ---------------------------------------------------------------- small helpers

def wait_until(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Poll predicate() until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _sanitize(s, maxlen=40):
    return re.sub(r"[^a-zA-Z0-9-]+", "-", s).strip("-")[:maxlen] or "t"


# ---------------------------------------------------------------- Kafka broker

class KafkaBroker:
    """A private single-node KRaft broker in `dir`, driven by tests/kafka/kafka.sh.

    The dir keeps data and ports, so stop() then start() is a restart on the
    same port with the same data. Ignores KAFKA_BOOTSTRAP: always a real
    broker of its own.
    """

    def __init__(self, dir, extra_config=None, security=None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if extra_config:
            (self.dir / "extra.properties").write_text(
                "".join(f"{k}={v}\n" for k, v in extra_config.items()))
        self.env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "KAFKA_SECURITY")}
        if security:
            self.env["KAFKA_SECURITY"] = security   # "sasl_ssl": see kafka.sh

    @property
    def ca(self):
        """The CA file clients of a sasl_ssl broker trust."""
        return self.dir / "tls" / "ca.pem"

    def password(self, user):
        """A SCRAM/PLAIN user's password on a sasl_ssl broker."""
        for line in (self.dir / "users").read_text().splitlines():
            name, pw = line.split()
            if name == user:
                return pw
        raise KeyError(user)

    def _run(self, *args, timeout=180):
        r = subprocess.run([str(KAFKA_SH), *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed ({r.returncode}):\n"
                               f"{r.stderr}\n{r.stdout}\n{self.log_tail()}")
        return r.stdout.strip()

    def start(self, timeout=90):
        """Start (or restart) the broker; returns its bootstrap address."""
        self.env["KAFKA_START_TIMEOUT"] = str(int(timeout))
        out = self._run("start", str(self.dir), timeout=timeout + 60)
        return out.splitlines()[-1]

    def stop(self, timeout=30):
        self.env["KAFKA_STOP_TIMEOUT"] = str(int(timeout))
        self._run("stop", str(self.dir), timeout=timeout + 30)

    def kill(self):
        """SIGKILL the broker (crash, no clean shutdown)."""
        pid = self.pid
        if pid:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _pid_alive(pid), 10, what="broker exit")
            (self.dir / "pid").unlink(missing_ok=True)

    def restart(self, down_seconds=0, timeout=90):
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        return self.start(timeout=timeout)

    @property
    def pid(self):
        try:
            return int((self.dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    @property
    def running(self):
        pid = self.pid
        return bool(pid) and _pid_alive(pid)

    @property
    def bootstrap(self):
        return (self.dir / "bootstrap").read_text().strip()

    @property
    def port(self):
        return int((self.dir / "port").read_text())

    def log_tail(self, n=40):
        return _tail(self.dir / "server.log", n)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- Kafka clients

class Record(collections.namedtuple("Record", "key value partition offset timestamp")):
    """(key bytes|None, value bytes|None, partition, offset, timestamp ms);
    .headers is the list of (name, bytes) headers."""
    headers = None


def _record(m):
    r = Record(m.key(), m.value(), m.partition(), m.offset(), m.timestamp()[1])
    r.headers = m.headers() or []
    return r


def consume_all(bootstrap, topic, expected_count=None, timeout=30.0, idle=1.0):
    """Read `topic` from the beginning (all partitions, no consumer group).

    With expected_count: until that many records were read or timeout.
    Without: until every partition is at its end and nothing new arrived for
    `idle` seconds (or timeout). Waits for the topic to exist. Returns a list
    of Record (key, value, partition, offset, timestamp), per-partition order.
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "callbus-test-reader",  # required by the client, never joined
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 1000,
    })
    out = []
    deadline = time.monotonic() + timeout
    try:
        parts = None
        while parts is None:
            md = c.list_topics(topic, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                parts = sorted(t.partitions)
            elif time.monotonic() > deadline:
                return out
            else:
                time.sleep(0.2)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_eof = set()
        last = time.monotonic()
        while time.monotonic() < deadline:
            if expected_count is not None and len(out) >= expected_count:
                break
            m = c.poll(0.2)
            if m is None:
                if (expected_count is None and len(at_eof) == len(parts)
                        and time.monotonic() - last >= idle):
                    break
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(m.partition())
                    continue
                if m.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise RuntimeError(f"consume {topic}: {m.error()}")
            at_eof.discard(m.partition())
            last = time.monotonic()
            out.append(_record(m))
    finally:
        c.close()
    return out


def produce(bootstrap, topic, messages, timeout=30.0):
    """Produce [(key, value) or (key, value, headers)] and wait for delivery."""
    from confluent_kafka import Producer

    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})

    def dr(err, msg):
        if err:
            errors.append(err)

    for m in messages:
        key, value = m[0], m[1]
        headers = m[2] if len(m) > 2 else None
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        p.produce(topic, key=key, value=value, headers=headers, on_delivery=dr)
        p.poll(0)
    left = p.flush(timeout)
    if left or errors:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, errors {errors[:3]}")


def create_topic(bootstrap, name, partitions=3, config=None, timeout=30.0):
    """Create a topic (replication 1); config e.g. {"cleanup.policy": "compact"}."""
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], request_timeout=timeout)
    fs[name].result(timeout)


def producer_ids(bootstrap, topic):
    """The idempotent or transactional producers that wrote to a partition
    of topic that holds records and are still active (the broker's
    DescribeProducers, through Kafka's own tool: one JVM per partition)."""
    from concurrent.futures import ThreadPoolExecutor
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "callbus-test-producers"})
    try:
        parts = [p for p in c.list_topics(topic, timeout=10).topics[topic].partitions
                 if c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] > 0]
    finally:
        c.close()

    def describe(p):
        r = subprocess.run([str(KAFKA_SH), "run-class", "org.apache.kafka.tools.TransactionsCommand",
                            "--bootstrap-server", bootstrap, "describe-producers", "--topic", topic,
                            "--partition", str(p)], capture_output=True, text=True, timeout=120, check=True)
        return {int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()}
    with ThreadPoolExecutor(4) as pool:
        return set().union(*pool.map(describe, parts))


# ---------------------------------------------------------------- processes

# The ERROR MirrorMaker 2 logs by design with checkpoints off, once per flow
# (compose/mm2.properties; docs/operations.md, "MirrorMaker 2's log").
MM2_EXPECTED_ERROR = re.compile(r" ERROR Failed to configure MirrorCheckpointConnector connector for (\S+->\S+) ")


def mm2_errors(proc):
    """MM2's ERROR lines so far: (flows with the expected checkpoint
    connector ERROR, every other ERROR line)."""
    lines = [line for p in (proc.out_path, proc.err_path) if p.exists()
             for line in p.read_text(errors="replace").splitlines() if " ERROR " in line]
    expected = {m.group(1) for m in map(MM2_EXPECTED_ERROR.search, lines) if m}
    return expected, [line for line in lines if not MM2_EXPECTED_ERROR.search(line)]


class Proc:
    """A subprocess with stdout/stderr in log_dir/<name>.out / <name>.err."""

    def __init__(self, args, name=None, log_dir=".", env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.log_dir = Path(log_dir)
        self.env = env
        self.cwd = cwd
        self.popen = None
        self.out_path = self.log_dir / f"{self.name}.out"
        self.err_path = self.log_dir / f"{self.name}.err"
        self._search_from = {}

    def start(self):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update({k: str(v) for k, v in self.env.items()})
        # append: a restarted Proc keeps its earlier output
        self._out = open(self.out_path, "ab")
        self._err = open(self.err_path, "ab")
        self._search_from = {self.out_path: self._out.tell(), self.err_path: self._err.tell()}
        self.popen = subprocess.Popen(self.args, stdout=self._out, stderr=self._err,
                                      stdin=subprocess.DEVNULL, env=env, cwd=self.cwd)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    @property
    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll() if self.popen else None

    def output(self, which="both"):
        paths = {"out": [self.out_path], "err": [self.err_path],
                 "both": [self.out_path, self.err_path]}[which]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def wait_for(self, pattern, timeout=30.0, which="both", since_start=True):
        """Wait until regex `pattern` appears in the output (by default: the
        output since the last start()). Returns the re.Match. Fails the test
        (with the log tail) if the process exits first or on timeout."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        paths = {"out": [self.out_path], "err": [self.err_path],
                 "both": [self.out_path, self.err_path]}[which]
        deadline = time.monotonic() + timeout
        while True:
            for p in paths:
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                if since_start:
                    data = data[self._search_from.get(p, 0):]
                m = rx.search(data.decode("utf-8", "replace"))
                if m:
                    return m
            if not self.alive:
                pytest.fail(f"{self.name} exited ({self.returncode}) before /{rx.pattern}/:\n"
                            f"{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no /{rx.pattern}/ within {timeout}s:\n"
                            f"{self.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def send_signal(self, sig):
        if self.alive:
            self.popen.send_signal(sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM (or sig), wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        for f in (self._out, self._err):
            f.close()
        return self.popen.returncode

    def wait(self, timeout=30.0):
        """Wait for the process to exit by itself; returns the exit code."""
        return self.popen.wait(timeout)

    def log_tail(self, n=40):
        parts = []
        for p in (self.out_path, self.err_path):
            t = _tail(p, n)
            if t:
                parts.append(f"--- {p} (last {n} lines)\n{t}")
        return "\n".join(parts) or f"--- {self.name}: no output"


class ProcGroup:
    """Processes of one test: started in the test's tmp dir, stopped at teardown."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.procs = []
        self.cleanups = []  # callables run at teardown, after the processes stop

    def start(self, args, name=None, env=None, cwd=None, wait_for=None, timeout=30.0):
        names = {p.name for p in self.procs}
        base = name or Path(str(args[0])).name
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}-{i}"
        p = Proc(args, name=name, log_dir=self.log_dir, env=env, cwd=cwd)
        self.procs.append(p)
        p.start()
        if wait_for:
            p.wait_for(wait_for, timeout=timeout)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:
                pass
        for f in self.cleanups:
            f()

    def tails(self, n=40):
        return "\n".join(f"=== {p.name} (pid {p.pid}, exit {p.returncode})\n{p.log_tail(n)}"
                         for p in self.procs)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """host:port of the session Kafka cluster (KAFKA_BOOTSTRAP, else started here)."""
    bs = os.environ.get("KAFKA_BOOTSTRAP")
    if bs:
        yield bs
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("session-kafka"))
    bs = broker.start()
    os.environ["KAFKA_BOOTSTRAP"] = bs  # for subprocesses of the tests
    try:
        yield bs
    finally:
        os.environ.pop("KAFKA_BOOTSTRAP", None)
        broker.stop()


@pytest.fixture(scope="session")
def callbus_build():
    return build_dir()


@pytest.fixture
def unique_topic_prefix(request):
    """Topic prefix unique to this test, e.g. "t-test-foo-1a2b3c"."""
    return f"t-{_sanitize(request.node.name)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def unique_site():
    return f"s{uuid.uuid4().hex[:8]}"


class Site:
    """A site of one test: topics are <prefix>.<site>.<kind> (docs/messages.md, Topics)."""
    KINDS = ("ami", "calls", "operators", "commands", "results", "status")

    def __init__(self, prefix, id):
        self.prefix = prefix
        self.id = id

    def topic(self, kind):
        return f"{self.prefix}.{self.id}.{kind}"

    @property
    def topics(self):
        return {k: self.topic(k) for k in self.KINDS}

    def __repr__(self):
        return f"Site({self.prefix!r}, {self.id!r})"


@pytest.fixture
def site(unique_topic_prefix, unique_site):
    return Site(unique_topic_prefix, unique_site)


@pytest.fixture
def private_broker(tmp_path):
    """A started private KafkaBroker for this test (stopped at teardown)."""
    b = KafkaBroker(tmp_path / "kafka")
    b.start()
    yield b
    try:
        b.stop()
    except Exception:
        b.kill()


@pytest.fixture
def procs(request, tmp_path):
    g = ProcGroup(tmp_path)
    request.node._callbus_procs = g
    yield g
    g.stop_all()


# ---------------------------------------------------------------- sanitizers

# Every process of the session (the ones started through `procs`, the CLI
# runs, the scripts' children) writes its ASan/LSan/UBSan reports to
# SAN_LOG_DIR/san.<pid> instead of stderr, so a report fails the test that
# was running even when nobody looked at that process's output.
SAN_LOG_DIR = Path(os.environ.setdefault(
    "CALLBUS_SAN_LOG_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"callbus-san-{os.getpid()}")))
SAN_LOG_DIR.mkdir(parents=True, exist_ok=True)
for _var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    _opts = [o for o in os.environ.get(_var, "").split(":") if o and not o.startswith("log_path=")]
    os.environ[_var] = ":".join([*_opts, f"log_path={SAN_LOG_DIR}/san"])
SAN_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(seen):
    """{file: text} of the sanitizer logs not in `seen` that hold a report."""
    out = {}
    for f in sorted(SAN_LOG_DIR.glob("san.*")):
        if f.name in seen:
            continue
        text = f.read_text(errors="replace")
        if any(m in text for m in SAN_MARKERS):
            out[f.name] = text
    return out


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Fails the test if any process wrote a sanitizer report meanwhile."""
    before = {f.name for f in SAN_LOG_DIR.glob("san.*")}
    yield
    found = sanitizer_reports(before)
    if found:
        pytest.fail("sanitizer report(s):\n" + "\n".join(f"--- {name}\n{text[-6000:]}"
                                                         for name, text in found.items()),
                    pytrace=False)


# ---------------------------------------------------------------- markers, skips

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sanitizer: also run against the ASan+UBSan programs (make integration-san)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # In `make test` (CALLBUS_NO_SKIP=1) a missing prerequisite is a failure:
    # a skipped browser or simulator test would hide that nothing ran.
    if rep.skipped and not hasattr(rep, "wasxfail") and os.environ.get("CALLBUS_NO_SKIP") == "1":
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = f"skipped, and CALLBUS_NO_SKIP=1 (make test) makes a skip a failure: {reason}"
    if rep.failed and rep.when in ("call", "setup"):
        g = getattr(item, "_callbus_procs", None)
        if g is not None and g.procs:
            rep.sections.append(("callbus processes (log tails)", g.tails()))


